"""The HTML loader: the main content of ``.html``/``.htm`` files as text, with ``h1``-``h6`` as sections.

By default trafilatura finds the page's main content (the article, not its navigation, sidebars, cookie
banners and footer) and its metadata (title, author, date, site name, description); ``content="page"``
keeps every visible part of the page instead, as does a page where trafilatura finds no main content.
The text is rendered with the standard library's ``html.parser``: what a browser would not show is
skipped (``script``, ``style``, ``noscript``, ``template``, ``svg``, ``math`` and the ``head``, whose
``<title>`` is the title when trafilatura finds none). Block elements start new lines (paragraph-like
ones a blank line), runs of whitespace in inline text collapse to one space, ``<pre>`` keeps its
whitespace, and entities are decoded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

from memflow.components.loaders._common import (
    SingleDocumentLoader,
    SkippedInput,
    TextBuilder,
    decode_bytes,
    normalize_newlines,
    sha256_hex,
)
from memflow.types import Document, Section

__all__ = ["HTMLLoader", "HTMLText", "extract_html", "sniff_charset"]

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object"})
# What may sit in <head>; any other start tag means the body began even if </head> and <body> were omitted.
_HEAD_CONTENT = frozenset({"title", "meta", "link", "base", "style", "script", "noscript", "template"})
_PARAGRAPH = frozenset(
    {
        "p", "pre", "blockquote", "table", "ul", "ol", "dl", "section", "article", "header", "footer",
        "nav", "aside", "main", "figure", "figcaption", "hr", "form", "fieldset", "address", "details",
        "caption", "h1", "h2", "h3", "h4", "h5", "h6",
    }
)  # fmt: skip
_LINE = frozenset({"div", "li", "tr", "dt", "dd", "option", "summary", "legend", "body", "html", "center"})
_CELL = frozenset({"td", "th"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}

# Only the start of a file is searched, as browsers do (they prescan 1024 bytes; 4096 allows long heads).
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# Browsers read these labels as windows-1252 (WHATWG Encoding); Python's latin-1 would garble 0x80-0x9F.
_WINDOWS_1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "ascii", "us-ascii"})


@dataclass(slots=True)
class HTMLText:
    """The visible text of an HTML fragment, its ``<title>`` (or ""), and its headings as sections."""

    text: str
    title: str = ""
    sections: list[Section] = field(default_factory=list)


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = TextBuilder()
        self.sections: list[Section] = []
        self.title_parts: list[str] = []
        self._skip: str | None = None
        self._skip_depth = 0
        self._in_head = False
        self._in_title = False
        self._pre = 0
        self._pre_start = False
        self._heading: int | None = None
        self._space = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip is not None:
            self._skip_depth += tag == self._skip
            return
        if tag == "head":
            self._in_head = True
            return
        if tag == "title":
            self._in_title = True
            return
        if self._in_head and tag not in _HEAD_CONTENT:
            self._in_head = False
        if tag in _SKIP:
            self._skip, self._skip_depth = tag, 1
        elif tag == "br":
            self.out.brk(min(self.out.pending + 1, 2))
            self._space = False
        elif tag in _HEADINGS:
            self._block(2)
            self._heading = _HEADINGS[tag]
            self.out.begin_capture()
        elif tag in _PARAGRAPH or tag in _LINE:
            self._block(2 if tag in _PARAGRAPH else 1)
            if tag == "pre":
                self._pre += 1
                self._pre_start = True
        elif tag in _CELL:
            self._space = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <svg/> or <script/> would otherwise open a skip that never closes.
        if tag in _SKIP or tag in ("head", "title"):
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self._skip is not None:
            if tag == self._skip:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip = None
            return
        if tag == "head":
            self._in_head = False
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADINGS and self._heading is not None:
            captured = self.out.end_capture()
            if captured is not None:
                start, title = captured
                self.sections.append(Section(start=start, title=title, level=self._heading))
            self._heading = None
            self._block(2)
        elif tag in _PARAGRAPH or tag in _LINE:
            self._block(2 if tag in _PARAGRAPH else 1)
            if tag == "pre" and self._pre:
                self._pre -= 1
        elif tag in _CELL:
            self._space = True

    def handle_data(self, data: str) -> None:
        if self._skip is not None:
            return
        if self._in_title:
            self.title_parts.append(data)
            return
        if self._in_head:
            return
        if self._pre:
            data = normalize_newlines(data)
            if self._pre_start:
                # As in browsers: a newline right after <pre> is part of the markup, not the text.
                data = data.removeprefix("\n")
                self._pre_start = False
            self.out.write(data, space=self._space)
            self._space = False
            return
        words = data.split()
        if not words:
            self._space = self._space or bool(data)
            return
        self.out.write(" ".join(words), space=self._space or data[0].isspace())
        self._space = data[-1].isspace()

    def _block(self, newlines: int) -> None:
        self.out.brk(newlines)
        self._space = False


def extract_html(markup: str) -> HTMLText:
    """The visible text of ``markup`` (a whole page or a fragment), with title and heading sections."""
    parser = _Extractor()
    parser.feed(markup)
    parser.close()
    title = " ".join("".join(parser.title_parts).split())
    return HTMLText(text=parser.out.text(), title=title, sections=parser.sections)


def sniff_charset(raw: bytes) -> str | None:
    """The charset a ``<meta>`` near the top of the page declares, as a browser would read it."""
    match = _META_CHARSET.search(raw[:4096])
    if match is None:
        return None
    label = match.group(1).decode("ascii", "replace").lower()
    return "cp1252" if label in _WINDOWS_1252_LABELS else label


#: trafilatura's metadata fields kept in a document's metadata, by the name memflow stores them under.
_PAGE_METADATA = {
    "title": "title",
    "author": "author",
    "date": "date",
    "sitename": "site",
    "description": "description",
}


def main_content(markup: str) -> tuple[str | None, dict[str, Any]]:
    """The main content of a page as HTML (None when trafilatura finds none) and the page's metadata."""
    import trafilatura

    # trafilatura logs what it discards at WARNING; a loader reports problems through the run context.
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    found = trafilatura.extract_with_metadata(
        markup, output_format="html", include_comments=False, include_tables=True, include_formatting=True
    )
    if found is None:
        return None, {}
    metadata = {
        name: value.strip()
        for field_name, name in _PAGE_METADATA.items()
        if isinstance(value := getattr(found, field_name, None), str) and value.strip()
    }
    return found.text or None, metadata


class HTMLLoader(SingleDocumentLoader):
    """HTML pages. ``content`` is ``main`` (the page's main content, found by trafilatura) or ``page``
    (all its visible text). ``encoding`` forces a codec instead of BOM, ``<meta charset>``, UTF-8 and
    detection."""

    def __init__(self, *, content: Literal["main", "page"] = "main", encoding: str | None = None) -> None:
        self.content = content
        self.encoding = encoding

    def load_bytes(self, raw: bytes, path: Path) -> Document:
        markup, encoding = decode_bytes(raw, path, encoding=self.encoding, declared=sniff_charset(raw))
        page = extract_html(markup)
        extracted, kept = page, "page"
        described: dict[str, Any] = {}
        if self.content == "main":
            main, described = main_content(markup)
            body = extract_html(main) if main is not None else None
            if body is not None and body.text.strip():
                extracted, kept = body, "main"
        if not extracted.text.strip():
            raise SkippedInput(path, "empty file (no visible text)")
        h1 = next((s.title for s in extracted.sections if s.level == 1), "")
        return Document(
            uri=str(path),
            text=extracted.text,
            content_hash=sha256_hex(raw),
            title=described.get("title") or page.title or h1 or path.stem,
            metadata=described | {"path": str(path), "loader": "html", "encoding": encoding, "content": kept},
            sections=extracted.sections,
        )
