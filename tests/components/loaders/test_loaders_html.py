"""The HTML loader: a page's main content (trafilatura) with its metadata; and the renderer: only visible
text, entities decoded, blocks on their own lines, headings as sections (those tests load whole pages)."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
from pathlib import Path
from typing import Literal

import pytest

from memflow.components.loaders.html import HTMLLoader, extract_html, sniff_charset
from memflow.types import Document

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>  Caf&eacute;   &amp; Bar  </title>
  <style>body { color: red; } .hidden-style {}</style>
  <script>var secret = "<p>script text</p>";</script>
  <link rel="stylesheet" href="x.css">
</head>
<body>
  <noscript>Enable JavaScript please</noscript>
  <header><nav><a href="/">Home</a> | <a href="/menu">Menu</a></nav></header>
  <h1>Welcome to   the <em>Caf&eacute;</em></h1>
  <p>We serve   coffee,
     tea &amp; cake&nbsp;daily. Prices &lt; &euro;5 &#8212; &#x2713; guaranteed.</p>
  <div>First div</div><div>Second div<br>after a break</div>
  <h2>Menu</h2>
  <ul><li>Espresso</li><li>Latte <strong>macchiato</strong></li></ul>
  <table><tr><th>Item</th><td>Price</td></tr><tr><td>Tea</td><td>2</td></tr></table>
  <pre>
  line one
      indented   line
</pre>
  <svg width="10"><text>svg label</text><title>svg title</title></svg>
  <template><p>template text</p></template>
  <h3>Contact</h3>
  <p>Write to us.<script>document.write("inline script")</script></p>
</body>
</html>
"""


def _load(
    tmp_path: Path, markup: str | bytes, name: str = "page.html", content: Literal["main", "page"] = "page"
) -> Document:
    path = tmp_path / name
    path.write_bytes(markup.encode("utf-8") if isinstance(markup, str) else markup)
    (doc,) = HTMLLoader(content=content).load_file(path)
    return doc


CHROME = ["Subscribe to the newsletter", "Home", "Archive", "Accept all cookies", "Related posts",
          "Copyright 2024 Example Media", "Privacy policy"]  # fmt: skip


def essay_page(essay: str) -> str:
    """A real essay as a blog publishes it: head metadata, navigation, a cookie banner, a sidebar, a footer."""
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in essay.split(". ")[:30] if p.strip())
    return f"""<!DOCTYPE html><html><head><title>Before the Startup | Example Media</title>
<meta name="author" content="Paul Graham"><meta property="article:published_time" content="2008-10-01">
<meta name="description" content="An essay on starting startups."></head><body>
<div class="cookie-banner">We use cookies. <button>Accept all cookies</button></div>
<header><nav><a href="/">Home</a> <a href="/archive">Archive</a>
<a href="/sub">Subscribe to the newsletter</a></nav></header>
<main><article><h1>Before the Startup</h1>{paragraphs}<h2>Conclusion</h2>
<p>The economy matters less than the founders do, and the best time to start is when you are ready.</p>
</article></main>
<aside><h3>Related posts</h3><ul><li><a href="/a">How to raise money</a></li>
<li><a href="/b">Startups</a></li></ul></aside>
<footer><p>Copyright 2024 Example Media. <a href="/privacy">Privacy policy</a></p></footer></body></html>"""


def test_main_content_drops_navigation_banners_sidebars_and_footers(tmp_path: Path, pg_essays: Path) -> None:
    essay = (pg_essays / "before.txt").read_text(encoding="utf-8")
    page = essay_page(essay)
    doc = _load(tmp_path, page, content="main")
    flat = " ".join(doc.text.split())
    for sentence in essay.split(". ")[1:30]:
        assert " ".join(html.unescape(html.escape(sentence)).split())[:60] in flat
    assert "the best time to start is when you are ready" in doc.text
    assert not [phrase for phrase in CHROME if phrase in doc.text]
    assert [s.title for s in doc.sections][:1] == ["Before the Startup"]
    assert "Conclusion" in [s.title for s in doc.sections]
    assert doc.title == "Before the Startup"
    assert {k: doc.metadata.get(k) for k in ("author", "date", "description", "content")} == {
        "author": "Paul Graham",
        "date": "2008-10-01",
        "description": "An essay on starting startups.",
        "content": "main",
    }
    # the default is the main content; content="page" keeps every visible part
    path = tmp_path / "page.html"
    (default,) = HTMLLoader().load_file(path)
    assert default.text == doc.text
    whole = _load(tmp_path, page, content="page")
    assert all(phrase in whole.text for phrase in CHROME) and whole.metadata["content"] == "page"


def test_scripts_styles_and_other_invisible_content_are_dropped(tmp_path: Path) -> None:
    text = _load(tmp_path, PAGE).text
    for hidden in ["color: red", "secret", "script text", "Enable JavaScript", "svg label", "svg title",
                   "template text", "inline script", "x.css", "Bar"]:  # fmt: skip
        assert hidden not in text
    assert "<" not in text.replace("Prices < €5", "")


def test_entities_are_decoded_and_whitespace_collapsed(tmp_path: Path) -> None:
    doc = _load(tmp_path, PAGE)
    assert doc.title == "Café & Bar"
    assert "We serve coffee, tea & cake daily. Prices < €5 — ✓ guaranteed." in doc.text
    assert "Welcome to the Café" in doc.text


def test_block_elements_break_lines_and_pre_keeps_whitespace(tmp_path: Path) -> None:
    text = _load(tmp_path, PAGE).text
    assert "First div\nSecond div\nafter a break" in text
    assert "Espresso\nLatte macchiato" in text
    assert "Item Price\nTea 2" in text
    assert "  line one\n      indented   line" in text
    assert "\n\nMenu\n\n" in text
    assert text.startswith("Home | Menu\n\nWelcome")
    assert text.endswith("Write to us.")


def test_headings_become_sections_at_their_offsets(tmp_path: Path) -> None:
    doc = _load(tmp_path, PAGE)
    assert [(s.title, s.level) for s in doc.sections] == [
        ("Welcome to the Café", 1),
        ("Menu", 2),
        ("Contact", 3),
    ]
    for section in doc.sections:
        assert doc.text[section.start : section.start + len(section.title)] == section.title
    assert doc.section_at(doc.text.index("Espresso")) == "Menu"
    assert doc.section_at(0) is None


def test_document_fields(tmp_path: Path) -> None:
    doc = _load(tmp_path, PAGE)
    path = (tmp_path / "page.html").resolve()
    assert doc.uri == str(path)
    assert doc.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    modified = doc.metadata.pop("modified")
    assert doc.metadata == {"path": str(path), "loader": "html", "encoding": "utf-8", "content": "page"}
    assert modified == dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc).isoformat(timespec="seconds")


def test_title_falls_back_to_h1_then_stem(tmp_path: Path) -> None:
    assert _load(tmp_path, "<h2>Sub</h2><h1>Main <b>one</b></h1><p>x</p>").title == "Main one"
    assert _load(tmp_path, "<p>no headings</p>", name="plain.htm").title == "plain"


def test_omitted_head_and_body_tags_do_not_hide_the_body() -> None:
    extracted = extract_html("<html><head><title>T</title><p>Body text without a body tag.")
    assert extracted.title == "T"
    assert extracted.text == "Body text without a body tag."
    assert extract_html("<svg/><p>after self-closed svg</p>").text == "after self-closed svg"


def test_meta_charset_is_honored(tmp_path: Path) -> None:
    body = "<p>“Quoted” café — naïve</p>"
    declared = f'<html><head><meta charset="iso-8859-1"></head><body>{body}</body></html>'
    # Browsers read an iso-8859-1 label as windows-1252, whose 0x93/0x94 are curly quotes.
    doc = _load(tmp_path, declared.encode("cp1252"))
    assert doc.text == "“Quoted” café — naïve"
    assert doc.metadata["encoding"] == "cp1252"
    http_equiv = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
    assert sniff_charset(http_equiv.encode()) == "windows-1251"
    russian = f"{http_equiv}<p>Привет, мир</p>".encode("cp1251")
    assert _load(tmp_path, russian, name="ru.html").text == "Привет, мир"


def test_an_unusable_meta_charset_falls_back_to_utf8(tmp_path: Path) -> None:
    markup = '<meta charset="{}"><p>naïve “text”</p>'
    assert _load(tmp_path, markup.format("utf-8").encode()).text == "naïve “text”"
    assert _load(tmp_path, markup.format("bogus-codec").encode()).text == "naïve “text”"
    # Declared Shift-JIS cannot decode these UTF-8 bytes strictly, so the declaration is dropped.
    assert _load(tmp_path, markup.format("shift_jis").encode()).text == "naïve “text”"


@pytest.mark.parametrize("codec", ["utf-16", "utf-8-sig"])
def test_bom_wins(tmp_path: Path, codec: str) -> None:
    doc = _load(tmp_path, "<title>Ünïcödé</title><p>Grüße</p>".encode(codec))
    assert (doc.title, doc.text) == ("Ünïcödé", "Grüße")


def test_page_without_visible_text_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "blank.html"
    path.write_text("<html><head><title>Only a title</title><script>x()</script></head><body> </body></html>")
    loader = HTMLLoader()
    assert loader.run(paths=[str(path)])["documents"] == []
    (problem,) = loader.context.problems
    assert problem.source == str(path)
    assert "empty" in problem.reason
