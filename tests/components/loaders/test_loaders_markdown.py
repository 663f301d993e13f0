"""The Markdown loader: markup stripped, headings as sections at the right offsets, front matter."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from memflow.components.loaders.markdown import MarkdownLoader, render_markdown, split_front_matter
from memflow.types import Document

SOURCE = """\
---
title: "The Guide"
tags: [a, b]
date: 2024-01-02
---

# Getting *started*

Read the [manual](https://example.org/manual) first, then ![a diagram](d.png) and `pip install memflow`.
Escaped \\*stars\\* and **bold** and ~~gone~~ and <span class="x">inline</span> &amp; more.
A paragraph with <script>alert(1)</script>an inline script.

## Install

- first item
- second *item*
  - nested item

> quoted wisdom

```python
def hello():
    return 1
```

<div class="note">
<p>An <b>HTML</b> block.</p>
<script>alert("never")</script>
</div>

| name | value |
|------|-------|
| a    | 1     |

Setext heading
--------------

Last paragraph.
"""


def _load(tmp_path: Path, text: str, name: str = "guide.md") -> Document:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    (doc,) = MarkdownLoader().load_file(path)
    return doc


def test_headings_become_sections_at_their_offsets(tmp_path: Path) -> None:
    doc = _load(tmp_path, SOURCE)
    assert [(s.title, s.level) for s in doc.sections] == [
        ("Getting started", 1),
        ("Install", 2),
        ("Setext heading", 2),
    ]
    for section in doc.sections:
        assert doc.text[section.start : section.start + len(section.title)] == section.title
        assert section.start == 0 or doc.text[section.start - 1] == "\n"
    install = doc.text.index("first item")
    assert doc.section_at(install) == "Install"
    assert doc.section_at(doc.text.index("Last paragraph")) == "Setext heading"


def test_markup_is_stripped_and_content_kept(tmp_path: Path) -> None:
    text = _load(tmp_path, SOURCE).text
    for kept in [
        "Read the manual first, then a diagram and pip install memflow.",
        "Escaped *stars* and bold and gone and inline & more.\nA paragraph with an inline script.",
        "first item\nsecond item\nnested item",
        "quoted wisdom",
        "def hello():\n    return 1",
        "An HTML block.",
        "name\tvalue\na\t1",
        "Last paragraph.",
    ]:
        assert kept in text
    for markup in ["](", "**", "`", "<span", "<p>", "#", "> quoted", "- first", "https://", "---", "alert"]:
        assert markup not in text
    assert "title:" not in text and "The Guide" not in text


def test_blocks_are_separated_by_blank_lines(tmp_path: Path) -> None:
    text = _load(tmp_path, "# A\n\nFirst para\nsoft wrapped.\n\nSecond para.\n").text
    assert text == "A\n\nFirst para\nsoft wrapped.\n\nSecond para."


def test_front_matter_title_wins_and_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(SOURCE, encoding="utf-8")
    (doc,) = MarkdownLoader().load_file(path)
    assert doc.title == "The Guide"
    assert doc.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc.uri == str(path.resolve())
    assert doc.metadata["loader"] == "markdown"
    # Front matter fields are the document's metadata; the YAML date is stored as its ISO string.
    assert {k: doc.metadata[k] for k in ("title", "tags", "date")} == {
        "title": "The Guide",
        "tags": ["a", "b"],
        "date": "2024-01-02",
    }


def test_title_falls_back_to_first_h1_then_to_the_stem(tmp_path: Path) -> None:
    assert _load(tmp_path, "## Minor\n\n# Major\n\ntext\n").title == "Major"
    assert _load(tmp_path, "just text\n", name="notes.md").title == "notes"


def test_a_leading_thematic_break_is_not_front_matter() -> None:
    meta, rest = split_front_matter("---\nNot yaml: [unclosed\n---\n")
    assert meta == {} and rest.startswith("---")
    meta, rest = split_front_matter("---\nJust a sentence here\n---\nbody\n")
    assert meta == {}
    text, sections = render_markdown(rest)
    assert "Just a sentence here" in text
    assert [s.title for s in sections] == ["Just a sentence here"]


def test_crlf_source_gives_the_same_text(tmp_path: Path) -> None:
    unix = _load(tmp_path, SOURCE, name="unix.md")
    path = tmp_path / "dos.md"
    path.write_bytes(SOURCE.replace("\n", "\r\n").encode("utf-8"))
    (dos,) = MarkdownLoader().load_file(path)
    assert dos.text == unix.text
    assert dos.sections == unix.sections


def test_front_matter_only_file_is_reported_empty(tmp_path: Path) -> None:
    path = tmp_path / "meta.md"
    path.write_text("---\ntitle: nothing else\n---\n", encoding="utf-8")
    loader = MarkdownLoader()
    assert loader.run(paths=[str(path)])["documents"] == []
    (problem,) = loader.context.problems
    assert (problem.source, problem.reason, problem.kind) == (str(path), "empty file", "skipped")


@pytest.mark.parametrize("encoding", ["utf-16", "cp1252"])
def test_markdown_in_other_encodings(tmp_path: Path, encoding: str) -> None:
    source = "# Café “menu”\n\nCrème brûlée, déjà vu, naïveté, façade, über.\n"
    path = tmp_path / "menu.md"
    path.write_bytes(source.encode(encoding))
    (doc,) = MarkdownLoader().load_file(path)
    assert doc.title == "Café “menu”"
    assert doc.text == "Café “menu”\n\nCrème brûlée, déjà vu, naïveté, façade, über."
