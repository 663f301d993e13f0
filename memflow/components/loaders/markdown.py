"""The Markdown loader: ``.md`` files as plain text, with headings as sections.

markdown-it-py parses the file (CommonMark, plus GFM tables and strikethrough); the text is what a
reader sees with the markup stripped: emphasis marks go, links keep their text, images their alt text,
code spans and fenced blocks their code, HTML blocks their visible text (tags dropped), lists and quotes
their items. Blocks are separated by a blank line (items of a tight list by a newline, table cells by a
tab). Headings stay in the text as lines of their own and become sections. Front matter (YAML between
``---`` lines, or JSON; read by python-frontmatter) is removed from the text; its fields become the
document's metadata (dates as ISO strings; values JSON cannot hold are left out) and its ``title`` the
document's title.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from memflow.components.loaders._common import (
    SingleDocumentLoader,
    SkippedInput,
    TextBuilder,
    decode_bytes,
    normalize_newlines,
    sha256_hex,
)
from memflow.components.loaders.html import extract_html
from memflow.metadata import lenient_metadata
from memflow.types import Document, Section

__all__ = ["MarkdownLoader", "render_markdown", "split_front_matter"]

_BLOCK_BREAKS = frozenset({"blockquote_open", "blockquote_close", "hr", "table_open", "table_close"})
_LITERAL_INLINE = frozenset({"text", "code_inline", "text_special"})
_HIDDEN_OPEN = re.compile(r"<(script|style|noscript|template|svg)\b[^>]*(?<!/)>", re.IGNORECASE)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def split_front_matter(source: str) -> tuple[dict[str, Any], str]:
    """``(front matter, rest)``. A leading ``---`` block counts only if it is a YAML mapping (or empty):
    otherwise it is Markdown (a thematic break, or a setext heading's underline) and stays in the text."""
    handler = frontmatter.detect_format(source, frontmatter.handlers)
    if handler is None:
        return {}, source
    try:
        head, rest = handler.split(source)
        data = handler.load(head)
    except (ValueError, yaml.YAMLError):
        return {}, source
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return {}, source
    return data, rest.removeprefix("\n")


def _inline(children: Sequence[Token] | None, soft: str) -> str:
    parts: list[str] = []
    hidden: str | None = None  # an inline <script> etc. whose content is not text
    for child in children or ():
        if child.type == "html_inline":
            if hidden is None:
                opened = _HIDDEN_OPEN.match(child.content)
                hidden = opened.group(1).lower() if opened else None
            elif re.match(rf"</{hidden}\s*>", child.content, re.IGNORECASE):
                hidden = None
        elif hidden is not None:
            continue
        elif child.type in _LITERAL_INLINE:
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(soft)
        elif child.type == "image":
            parts.append(_inline(child.children, soft))
        # Everything else is markup: emphasis/link/strikethrough open and close marks, inline HTML tags.
    return "".join(parts)


def render_markdown(source: str) -> tuple[str, list[Section]]:
    """Plain text of Markdown ``source`` (front matter already removed) and its heading sections."""
    out = TextBuilder()
    sections: list[Section] = []
    heading: int | None = None
    row: list[str] | None = None
    list_depth = 0
    for token in _parser().parse(source):
        kind = token.type
        if kind == "inline":
            if row is not None:
                row.append(_inline(token.children, " ").strip())
            elif heading is not None:
                # A setext heading may span lines; as a title it reads as one line.
                title = _inline(token.children, " ").strip()
                if title:
                    sections.append(Section(start=out.write(title), title=title, level=heading))
            else:
                out.write(_inline(token.children, "\n").strip())
        elif kind == "heading_open":
            heading = int(token.tag[1:])
            out.brk(2)
        elif kind == "heading_close":
            heading = None
            out.brk(2)
        elif kind == "paragraph_open":
            out.brk(1 if token.hidden else 2)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            out.brk(2 if list_depth == 0 else 1)
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
            out.brk(2 if list_depth == 0 else 1)
        elif kind == "list_item_open":
            out.brk(1)
        elif kind in ("fence", "code_block"):
            out.brk(2)
            out.write(token.content.rstrip("\n"))
            out.brk(2)
        elif kind == "html_block":
            out.brk(2)
            out.write(extract_html(token.content).text.strip())
            out.brk(2)
        elif kind == "tr_open":
            row = []
            out.brk(1)
        elif kind == "tr_close":
            if row is not None and any(row):
                out.write("\t".join(row))
            row = None
        elif kind in _BLOCK_BREAKS:
            out.brk(2)
    return out.text(), sections


class MarkdownLoader(SingleDocumentLoader):
    """Markdown files. ``encoding`` forces a codec instead of BOM/UTF-8/detection."""

    def __init__(self, *, encoding: str | None = None) -> None:
        self.encoding = encoding

    def load_bytes(self, raw: bytes, path: Path) -> Document:
        source, encoding = decode_bytes(raw, path, encoding=self.encoding)
        front_matter, body = split_front_matter(normalize_newlines(source))
        text, sections = render_markdown(body)
        if not text.strip():
            raise SkippedInput(path, "empty file")
        fm_title = front_matter.get("title")
        h1 = next((s.title for s in sections if s.level == 1), "")
        title = fm_title.strip() if isinstance(fm_title, str) and fm_title.strip() else h1 or path.stem
        # The file's own fields are memflow's: a front matter 'path' cannot hide where the text came from.
        metadata = lenient_metadata(front_matter) | {"path": str(path), "loader": "markdown", "encoding": encoding}
        return Document(
            uri=str(path),
            text=text,
            content_hash=sha256_hex(raw),
            title=title,
            metadata=metadata,
            sections=sections,
        )
