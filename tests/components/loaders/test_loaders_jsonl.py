"""The JSONL loader: the BEIR corpus format on real SciFact lines, and bad lines reported by number."""

from __future__ import annotations

import hashlib
import json
from itertools import islice
from pathlib import Path

import pytest

from memflow.components.loaders.jsonl import JSONLLoader
from memflow.errors import InputError


@pytest.fixture
def scifact_head(shared_data: Path, tmp_path: Path) -> Path:
    """The first 50 lines of the SciFact corpus, copied to a temporary file."""
    with (shared_data / "scifact" / "corpus.jsonl").open("rb") as fh:
        lines = list(islice(fh, 50))
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def test_beir_corpus_lines_load_one_document_each(scifact_head: Path) -> None:
    loader = JSONLLoader()
    documents = loader.run(paths=[str(scifact_head)])["documents"]
    assert loader.context.problems == []
    lines = scifact_head.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(documents) == len(records) == 50
    resolved = scifact_head.resolve()
    for line_no, (doc, record, line) in enumerate(zip(documents, records, lines, strict=True), start=1):
        assert doc.uri == f"{resolved}#{record['_id']}"
        assert doc.text == record["text"]
        assert doc.title == record["title"]
        assert not doc.text.startswith(record["title"])
        assert doc.content_hash == hashlib.sha256(line).hexdigest()
        assert doc.metadata == {
            "path": str(resolved),
            "loader": "jsonl",
            "id": record["_id"],
            "line": line_no,
            "modified": documents[0].metadata["modified"],
        }


def test_malformed_lines_are_reported_with_their_numbers_and_the_rest_loads(tmp_path: Path) -> None:
    lines = [
        '{"id": "a", "text": "first", "title": "Alpha", "metadata": {"year": 2020, "tags": ["x"]}}',
        "{not json",
        "",
        '{"id": "b"}',
        '{"id": "c", "text": 42}',
        "   ",
        '["a", "list"]',
        '{"id": "a", "text": "duplicate id"}',
        '{"_id": 7, "text": "integer id"}',
        '{"text": "no id at all"}',
        '{"id": "m", "text": "x", "metadata": "not an object"}',
        '{"id": "e", "text": "   "}',
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loader = JSONLLoader()
    documents = loader.run(paths=[str(path)])["documents"]
    resolved = path.resolve()
    assert [d.uri for d in documents] == [f"{resolved}#a", f"{resolved}#7", f"{resolved}#10"]
    assert [d.text for d in documents] == ["first", "integer id", "no id at all"]
    assert documents[0].title == "Alpha" and documents[1].title == "7"
    assert documents[0].metadata["year"] == 2020 and documents[0].metadata["tags"] == ["x"]
    problems = {p.source: p for p in loader.context.problems}
    assert sorted(problems) == sorted(f"{resolved}:{n}" for n in (2, 4, 5, 7, 8, 11, 12))
    assert "invalid JSON" in problems[f"{resolved}:2"].reason
    assert "missing 'text'" in problems[f"{resolved}:4"].reason
    assert "must be a string" in problems[f"{resolved}:5"].reason
    assert "expected a JSON object" in problems[f"{resolved}:7"].reason
    assert "duplicate id 'a' (first on line 1)" in problems[f"{resolved}:8"].reason
    assert "'metadata' must be an object" in problems[f"{resolved}:11"].reason
    assert problems[f"{resolved}:12"].kind == "skipped"


def test_load_file_without_a_handler_raises_at_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "text": "ok"}\n{"id": 2, "text": null}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        JSONLLoader().load_file(path)
    assert (err.value.path, err.value.line) == (str(path.resolve()), 2)
    assert str(err.value).startswith(f"{path.resolve()}:2: ")
    seen: list[InputError] = []
    documents = JSONLLoader().load_file(path, on_error=seen.append)
    assert [d.text for d in documents] == ["ok"] and [e.line for e in seen] == [2]


def test_crlf_bom_and_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "dos.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "x", "text": "caf\\u00e9\\r\\nbar"}\r\n{"id": "y", "text": "\xff"}\r\n')
    seen: list[InputError] = []
    (doc,) = JSONLLoader().load_file(path, on_error=seen.append)
    assert doc.text == "café\nbar"
    assert doc.content_hash == hashlib.sha256(b'{"id": "x", "text": "caf\\u00e9\\r\\nbar"}').hexdigest()
    assert [(e.line, e.reason.split(":")[0]) for e in seen] == [(2, "not valid UTF-8")]


def test_custom_field_names(tmp_path: Path) -> None:
    path = tmp_path / "custom.jsonl"
    path.write_text('{"doc": "d1", "body": "the body", "heading": "H", "id": "ignored"}\n', encoding="utf-8")
    loader = JSONLLoader(id_field="doc", text_field="body", title_field="heading")
    (doc,) = loader.load_file(path)
    assert (doc.uri.rsplit("#", 1)[1], doc.text, doc.title) == ("d1", "the body", "H")
    assert loader.params() == {"id_field": "doc", "text_field": "body", "title_field": "heading"}


def test_empty_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    loader = JSONLLoader()
    assert loader.run(paths=[str(path)])["documents"] == []
    (problem,) = loader.context.problems
    assert (problem.source, problem.reason) == (str(path.resolve()), "empty file")


def test_other_record_fields_become_metadata_and_metadata_wins(tmp_path: Path) -> None:
    line = {"id": "q1", "text": "A question.", "author": "Ada", "year": 1843, "metadata": {"year": 1842}}
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    (doc,) = JSONLLoader().load_file(path)
    assert doc.metadata["author"] == "Ada" and doc.metadata["year"] == 1842
    assert "text" not in doc.metadata and "metadata" not in doc.metadata and doc.metadata["id"] == "q1"
