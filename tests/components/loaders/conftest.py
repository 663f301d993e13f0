"""Helpers for the loader tests: a hand-written PDF with a real text layer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

MakePdf = Callable[..., bytes]


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def build_pdf(
    pages: list[list[str]],
    *,
    title: str | None = None,
    outline: Sequence[tuple[str, int]] = (),
    info: dict[str, str] | None = None,
) -> bytes:
    """A minimal valid PDF: one page per entry, each line drawn in Helvetica; optional /Title (and other
    document information entries, ``info={"Author": ...}``, written as PDF strings) and an outline of
    ``(title, 0-based page)`` bookmarks. Offsets in the xref table are computed exactly."""
    objects: dict[int, bytes] = {}
    n_pages = len(pages)
    page_ids = [4 + 2 * i for i in range(n_pages)]
    next_id = 4 + 2 * n_pages
    info_id = outlines_id = None
    entries = ({"Title": title} if title is not None else {}) | (info or {})
    if entries:
        info_id, next_id = next_id, next_id + 1
        fields = " ".join(f"/{key} {_pdf_string(value)}" for key, value in entries.items())
        objects[info_id] = f"<< {fields} >>".encode("latin-1")
    if outline:
        outlines_id, next_id = next_id, next_id + 1
        item_ids = list(range(next_id, next_id + len(outline)))
        next_id += len(outline)
        objects[outlines_id] = (
            f"<< /Type /Outlines /First {item_ids[0]} 0 R /Last {item_ids[-1]} 0 R /Count {len(outline)} >>"
        ).encode()
        for i, (label, page) in enumerate(outline):
            links = ""
            if i > 0:
                links += f" /Prev {item_ids[i - 1]} 0 R"
            if i + 1 < len(outline):
                links += f" /Next {item_ids[i + 1]} 0 R"
            objects[item_ids[i]] = (
                f"<< /Title {_pdf_string(label)} /Parent {outlines_id} 0 R{links} /Dest [{page_ids[page]} 0 R /Fit] >>"
            ).encode("latin-1")
    catalog = "<< /Type /Catalog /Pages 2 0 R"
    if outlines_id is not None:
        catalog += f" /Outlines {outlines_id} 0 R /PageMode /UseOutlines"
    objects[1] = (catalog + " >>").encode()
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode()
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    for page_id, lines in zip(page_ids, pages, strict=True):
        ops = " T* ".join(f"{_pdf_string(line)} Tj" for line in lines)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {ops} ET".encode("latin-1")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for obj_id in sorted(objects):
        offsets[obj_id] = len(out)
        out += b"%d 0 obj\n" % obj_id + objects[obj_id] + b"\nendobj\n"
    size = max(objects) + 1
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for obj_id in range(1, size):
        out += b"%010d 00000 n \n" % offsets[obj_id]
    trailer = f"<< /Size {size} /Root 1 0 R" + (f" /Info {info_id} 0 R" if info_id else "") + " >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


@pytest.fixture
def make_pdf() -> MakePdf:
    return build_pdf
