"""Records: Memory.add / get / delete on real SQuAD paragraphs, upserts, and malformed input refused whole."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memflow import Memory, Record, RecordError
from memflow.errors import InputError
from memflow.records import MAX_ID_LENGTH, record_documents, records_from_jsonl


@pytest.fixture(scope="module")
def paragraphs(shared_data: Path) -> list[dict[str, Any]]:
    """The first 24 paragraphs of two SQuAD dev articles, as records with ids and metadata."""
    squad = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    records = []
    for article in squad["data"][:2]:
        for n, paragraph in enumerate(article["paragraphs"][:12]):
            records.append(
                {
                    "id": f"{article['title']}/{n}",
                    "text": paragraph["context"],
                    "metadata": {"article": article["title"], "paragraph": n},
                }
            )
    return records


@pytest.fixture()
def memory(tmp_path: Path, paragraphs: list[dict[str, Any]]) -> Iterator[Memory]:
    with Memory(tmp_path / "store") as memory:
        ids = memory.add(paragraphs)
        assert ids == [p["id"] for p in paragraphs]
        yield memory


def document_row_id(memory: Memory, record_id: str) -> int:
    found = memory.store.document(record_id)
    assert found is not None
    return found.id


def test_add_get_and_re_add_unchanged(memory: Memory, paragraphs: list[dict[str, Any]]) -> None:
    first = paragraphs[3]
    record = memory.get(first["id"])
    assert record == Record(first["id"], first["text"], "", first["metadata"], record.chunks if record else 0)
    assert record is not None and record.chunks >= 1
    assert memory.get("Super_Bowl_50/999") is None
    stats = memory.stats()
    assert stats.documents == len(paragraphs)
    row = document_row_id(memory, first["id"])
    # adding the same records again writes nothing: the stored rows are the same rows
    assert memory.add(paragraphs) == [p["id"] for p in paragraphs]
    assert document_row_id(memory, first["id"]) == row
    assert memory.stats() == stats
    hits = memory.search("Which team won Super Bowl 50?", k=3)
    assert hits[0].document.startswith("Super_Bowl_50/")


def test_upsert_replaces_text_chunks_and_vectors(memory: Memory) -> None:
    target = "Super_Bowl_50/0"
    before = memory.stats()
    old_row = document_row_id(memory, target)
    old = memory.get(target)
    assert old is not None
    new_text = "The Denver Broncos beat the Carolina Panthers 24-10 to win Super Bowl 50 in Santa Clara."
    assert memory.add(new_text, ids=target, metadata={"article": "Super_Bowl_50", "edited": True}) == [target]
    record = memory.get(target)
    assert (
        record is not None
        and record.text == new_text
        and record.metadata == {"article": "Super_Bowl_50", "edited": True}
    )
    assert document_row_id(memory, target) != old_row
    after = memory.stats()
    assert after.documents == before.documents
    assert after.chunks == after.vectors == before.chunks - old.chunks + record.chunks
    hits = memory.search("Broncos beat the Panthers 24-10", k=3)
    assert hits[0].document == target and hits[0].text == new_text
    # metadata alone changed: the record is rewritten with it
    memory.add(new_text, ids=target, metadata={"article": "Super_Bowl_50"})
    record = memory.get(target)
    assert record is not None and record.metadata == {"article": "Super_Bowl_50"}


def returned_documents(memory: Memory, question: str, pipeline: str | None = None) -> set[str]:
    """Every document any part of an answer comes from: hits, citations, evidence (summary slots included)."""
    asker = memory if pipeline is None else Memory(memory.store.directory, ask_pipeline=pipeline)
    try:
        answer = asker.ask(question)
        found = {h.document for h in answer.hits} | {c.document for c in answer.citations}
        found |= {e.citation.document for e in answer.evidence}
        found |= {h.document for h in asker.search(question, k=20)}
        return found
    finally:
        if asker is not memory:
            asker.close()


@pytest.mark.parametrize("pipeline", [None, "dense", "bm25", "multihop"])
def test_deleted_records_are_gone_from_every_search_path(memory: Memory, pipeline: str | None) -> None:
    deleted = ["Super_Bowl_50/0", "Super_Bowl_50/1"]
    question = "Which NFL team represented the AFC at Super Bowl 50?"
    assert set(deleted) & returned_documents(memory, question, pipeline), "the question must find them first"
    before = memory.stats()
    chunks = sum(memory.get(d).chunks for d in deleted)  # type: ignore[union-attr]
    assert memory.delete([*deleted, "never-stored"]) == 2
    assert memory.delete(deleted) == 0
    assert all(memory.get(d) is None for d in deleted)
    after = memory.stats()
    assert (after.documents, after.chunks, after.vectors) == (
        before.documents - 2,
        before.chunks - chunks,
        before.vectors - chunks,
    )
    assert not set(deleted) & returned_documents(memory, question, pipeline)
    for record_id in deleted:
        with pytest.raises(Exception, match="no document"):
            memory.summary(record_id)
    # a fresh process sees the same: the FAISS file on disk was saved without them
    with Memory(memory.store.directory) as reopened:
        assert reopened.stats().vectors == after.vectors
        assert not set(deleted) & {h.document for h in reopened.search(question, k=20)}


def test_generated_ids_are_digests_so_the_same_record_is_stored_once(tmp_path: Path) -> None:
    with Memory(tmp_path / "store") as memory:
        texts = ["Warsaw is the capital of Poland.", "Warsaw lies on the Vistula river."]
        ids = memory.add(texts, metadata={"source": "notes"})
        assert len(set(ids)) == 2 and all(len(i) == 16 for i in ids)
        assert memory.add(texts, metadata={"source": "notes"}) == ids
        assert memory.stats().documents == 2
        other = memory.add(texts[0], metadata={"source": "other"})
        assert other[0] not in ids and memory.stats().documents == 3


def test_dates_in_metadata_are_stored_as_iso_strings(tmp_path: Path) -> None:
    with Memory(tmp_path / "store") as memory:
        (record_id,) = memory.add(
            "Met Alice at the station.", metadata={"when": dt.date(2024, 5, 1), "tags": ("a", "b")}
        )
        record = memory.get(record_id)
        assert record is not None and record.metadata == {"when": "2024-05-01", "tags": ["a", "b"]}


@pytest.mark.parametrize(
    ("texts", "kwargs", "message"),
    [
        ([], {}, "texts is empty"),
        (["ok", "   "], {}, r"texts\[1\] is empty"),
        (["ok", 3], {}, r"texts\[1\] must be a string or a record dict, got int"),
        (["a", "b"], {"ids": ["x"]}, "ids has 1 entries for 2 texts"),
        (["a", "b"], {"ids": "x"}, "ids has 1 entries for 2 texts"),
        (["a", "b"], {"ids": ["x", "x"]}, r"texts\[1\]: id 'x' is also texts\[0\]'s"),
        (["a"], {"ids": [7]}, r"ids\[0\] must be a string, got int"),
        (["a"], {"ids": [""]}, r"ids\[0\] is empty"),
        (["a"], {"ids": ["x" * (MAX_ID_LENGTH + 1)]}, "ids are at most 2048"),
        (["a", "b"], {"metadata": [{}]}, "metadata has 1 entries for 2 texts"),
        (["a"], {"metadata": "user=alice"}, "metadata must be a list with one entry per text, got str"),
        (["a"], {"metadata": {"when": {1, 2}}}, r"metadata\['when'\]: a set cannot be stored"),
        (["a", "b"], {"metadata": [None, {"x": float("nan")}]}, r"metadata\[1\]\['x'\]: nan cannot be stored"),
        (["a"], {"metadata": {3: "x"}}, "key 3 is a int; metadata keys must be strings"),
        (["a"], {"metadata": [["x"]]}, r"metadata\[0\] must be a dict of metadata, got list"),
        ([{"text": "a", "body": "b"}], {}, r"texts\[0\]: unknown field 'body'"),
        ([{"id": "a"}], {}, r"texts\[0\]: the text must be a string, got NoneType"),
        ([{"id": "a", "text": "t"}], {"ids": ["b"]}, r"texts\[0\] has id 'a' and ids\[0\] is 'b'; give one"),
        ([{"text": "t", "metadata": {"o": object()}}], {}, r"texts\[0\]\['metadata'\]\['o'\]: a object cannot"),
    ],
)
def test_malformed_input_names_the_argument_and_writes_nothing(
    tmp_path: Path, texts: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecordError, match=message):
        record_documents(texts, **kwargs)
    with Memory(tmp_path / "store") as memory:
        with pytest.raises(RecordError, match=message):
            memory.add(texts, **kwargs)
        assert memory.stats().documents == 0
        assert "ingest" not in memory._pipelines, "a refused add must not even load the encoder"


def test_records_from_jsonl_name_the_line() -> None:
    lines = ['{"id": "a", "text": "one"}', "", '{"id": "b", "text": "two", "metadata": {"k": 1}}']
    assert [r["id"] for r in records_from_jsonl(lines, source="notes.jsonl")] == ["a", "b"]
    with pytest.raises(InputError, match=r"notes.jsonl:2: not valid JSON"):
        records_from_jsonl(['{"text": "a"}', "{oops"], source="notes.jsonl")
    with pytest.raises(InputError, match=r"notes.jsonl:1: a record must be a JSON object, got list"):
        records_from_jsonl(["[1]"], source="notes.jsonl")
    with pytest.raises(InputError, match=r"notes.jsonl:1: the record is empty"):
        records_from_jsonl(['{"text": ""}'], source="notes.jsonl")


def test_delete_checks_its_ids(tmp_path: Path) -> None:
    with Memory(tmp_path / "store") as memory:
        with pytest.raises(RecordError, match=r"ids\[1\] must be a string, got int"):
            memory.delete(["a", 2])  # type: ignore[list-item]
        assert memory.delete([]) == 0
