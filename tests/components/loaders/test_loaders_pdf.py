"""The PDF loader on PDFs written byte by byte (real text layers), a truncated one, and without pypdf."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from memflow.components.loaders.pdf import PDFLoader, page_of
from memflow.errors import InputError, MissingDependencyError

MakePdf = Callable[..., bytes]  # the make_pdf fixture (conftest.build_pdf)

PAGES = [
    ["Memory far larger than any context window.", "Second line (with parentheses)."],
    ["Page two talks about retrieval."],
    ["The third page concludes."],
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_text_of_every_page_is_extracted(tmp_path: Path, make_pdf: MakePdf) -> None:
    path = _write(tmp_path / "paper.pdf", make_pdf(PAGES, title="A Paper"))
    (doc,) = PDFLoader().load_file(path)
    pages = doc.text.split("\n\n")
    assert len(pages) == 3
    assert pages[0].split("\n") == PAGES[0]
    assert pages[1] == PAGES[1][0] and pages[2] == PAGES[2][0]
    assert doc.title == "A Paper"
    assert doc.uri == str(path.resolve())
    assert doc.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc.metadata["loader"] == "pdf"
    assert doc.metadata["pages"] == 3
    starts = doc.metadata["page_starts"]
    assert [doc.text[s : s + 9] for s in starts] == ["Memory fa", "Page two ", "The third"]
    assert page_of(doc, doc.text.index("retrieval")) == 2
    assert page_of(doc, len(doc.text) - 1) == 3
    assert doc.sections == []


def test_document_information_becomes_metadata(tmp_path: Path, make_pdf: MakePdf) -> None:
    info = {"Author": "Ada Lovelace", "Subject": "Engines", "CreationDate": "D:20240102133000Z"}
    path = _write(tmp_path / "notes.pdf", make_pdf(PAGES, title="Notes", info=info))
    (doc,) = PDFLoader().load_file(path)
    assert {k: doc.metadata[k] for k in ("title", "author", "subject", "date")} == {
        "title": "Notes",
        "author": "Ada Lovelace",
        "subject": "Engines",
        "date": "2024-01-02T13:30:00+00:00",
    }
    assert doc.metadata["modified"].endswith("+00:00") and doc.metadata["path"] == str(path.resolve())
    # a malformed date costs the date, not the file
    path = _write(tmp_path / "odd.pdf", make_pdf(PAGES, info={"CreationDate": "yesterday"}))
    (doc,) = PDFLoader().load_file(path)
    assert "date" not in doc.metadata and doc.text


def test_outline_becomes_sections(tmp_path: Path, make_pdf: MakePdf) -> None:
    path = _write(tmp_path / "book.pdf", make_pdf(PAGES, outline=[("Intro", 0), ("Conclusion", 2)]))
    (doc,) = PDFLoader().load_file(path)
    starts = doc.metadata["page_starts"]
    assert [(s.title, s.start, s.level) for s in doc.sections] == [
        ("Intro", starts[0], 1),
        ("Conclusion", starts[2], 1),
    ]
    assert doc.section_at(doc.text.index("retrieval")) == "Intro"
    assert doc.title == "book"


def test_truncated_and_garbage_pdfs_are_input_errors_naming_the_file(tmp_path: Path, make_pdf: MakePdf) -> None:
    data = make_pdf(PAGES)
    truncated = _write(tmp_path / "truncated.pdf", data[: len(data) // 2])
    garbage = _write(tmp_path / "garbage.pdf", b"this is not a PDF at all\n" * 10)
    good = _write(tmp_path / "good.pdf", data)
    for bad in (truncated, garbage):
        with pytest.raises(InputError) as err:
            PDFLoader().load_file(bad)
        assert err.value.path == str(bad)
        assert str(bad) in str(err.value)

    loader = PDFLoader()
    documents = loader.run(paths=[str(truncated), str(good), str(garbage)])["documents"]
    assert [d.uri for d in documents] == [str(good.resolve())]
    assert [p.source for p in loader.context.problems] == [str(truncated), str(garbage)]
    assert all(p.kind == "failed" for p in loader.context.problems)


def test_pdf_without_text_layer_is_skipped(tmp_path: Path, make_pdf: MakePdf) -> None:
    path = _write(tmp_path / "scan.pdf", make_pdf([[], []]))
    loader = PDFLoader()
    assert loader.run(paths=[str(path)])["documents"] == []
    (problem,) = loader.context.problems
    assert problem.kind == "skipped" and "no extractable text" in problem.reason


def test_missing_pypdf_names_the_extra(tmp_path: Path, make_pdf: MakePdf, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "paper.pdf", make_pdf(PAGES))
    monkeypatch.setitem(sys.modules, "pypdf", None)  # makes `import pypdf` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'memflow\[pdf\]'"):
        PDFLoader().load_file(path)
