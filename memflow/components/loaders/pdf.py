"""The PDF loader: the text layer of ``.pdf`` files, page by page (needs the ``pdf`` extra, pypdf).

Each page's text is stripped and the pages are joined with a blank line; ``metadata["page_starts"]``
holds the offset where each page begins (so a span maps back to its page). Sections come from the PDF's
outline (bookmarks) where it has one, each starting at its target page. The document information's
title, author, subject and date (creation, else modification) go into the metadata. A PDF with no text layer
(a scan) is skipped; one that pypdf cannot parse, or that needs a password, is an InputError.
"""

from __future__ import annotations

import io
import logging
from bisect import bisect_right
from pathlib import Path
from typing import Any

from memflow.components.loaders._common import (
    SingleDocumentLoader,
    SkippedInput,
    normalize_newlines,
    sha256_hex,
)
from memflow.errors import InputError, MissingDependencyError
from memflow.types import Document, Section

__all__ = ["PDFLoader", "page_of"]

log = logging.getLogger("memflow")


def _import_pypdf() -> Any:
    try:
        import pypdf
    except ImportError as exc:
        raise MissingDependencyError("pypdf", extra="pdf", purpose="reading PDF files") from exc
    return pypdf


def page_of(document: Document, offset: int) -> int | None:
    """The 1-based page of a PDF document that holds ``offset`` (None for other documents)."""
    starts = document.metadata.get("page_starts")
    if not starts:
        return None
    return max(bisect_right(starts, offset), 1)


def _outline_sections(reader: Any, page_starts: list[int]) -> list[Section]:
    sections: list[Section] = []

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            page = reader.get_destination_page_number(item)
            title = str(getattr(item, "title", "") or "").strip()
            if title and page is not None and 0 <= page < len(page_starts):
                sections.append(Section(start=page_starts[page], title=title, level=level))

    walk(list(reader.outline), 1)
    # Document.section_at expects sections in text order; the outline need not be.
    sections.sort(key=lambda s: s.start)
    return sections


def _described(info: Any) -> dict[str, Any]:
    """What the PDF's document information says of it: title, author, subject and date (its creation
    date, else its modification date, as ISO 8601), the fields it sets."""
    if info is None:
        return {}
    described: dict[str, Any] = {}
    for key, value in (("title", info.title), ("author", info.author), ("subject", info.subject)):
        if isinstance(value, str) and value.strip():
            described[key] = value.strip()
    for attribute in ("creation_date", "modification_date"):
        try:
            when = getattr(info, attribute)
        except Exception:  # pypdf raises on a malformed date string; the text matters more
            when = None
        if when is not None:
            described["date"] = when.isoformat()
            break
    return described


class PDFLoader(SingleDocumentLoader):
    """PDF files (text layer only: scanned pages without OCR have no text to extract)."""

    def load_bytes(self, raw: bytes, path: Path) -> Document:
        pypdf = _import_pypdf()
        if not raw:
            raise SkippedInput(path, "empty file")
        # pypdf raises far more than its own PyPdfError on malformed input (ValueError, KeyError,
        # struct/zlib errors, recursion on cyclic objects): any failure to parse is a bad file.
        try:
            reader = pypdf.PdfReader(io.BytesIO(raw), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise InputError(path, "encrypted PDF (needs a password)")
            pages = [normalize_newlines(page.extract_text() or "").strip() for page in reader.pages]
            info = reader.metadata
            pdf_title = str(info.title or "").strip() if info is not None else ""
            described = _described(info)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(path, f"cannot read PDF: {type(exc).__name__}: {exc}") from exc

        page_starts: list[int] = []
        offset = 0
        for text in pages:
            page_starts.append(offset)
            offset += len(text) + 2
        text = "\n\n".join(pages)
        if not text.strip():
            raise SkippedInput(path, "no extractable text (a scanned PDF?)")
        try:
            sections = _outline_sections(reader, page_starts)
        except Exception as exc:  # a broken outline should not cost us the text
            log.debug("%s: ignoring unreadable PDF outline: %s", path, exc)
            sections = []
        return Document(
            uri=str(path),
            text=text,
            content_hash=sha256_hex(raw),
            title=pdf_title or path.stem,
            metadata=described | {"path": str(path), "loader": "pdf", "pages": len(pages), "page_starts": page_starts},
            sections=sections,
        )
