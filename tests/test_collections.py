"""Collections keep users apart in one store: the same id in two collections, searches that never cross,
deletes by metadata within one, counts per collection; through every retriever of the default pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memflow import Memory, RecordError
from memflow.cli.main import cli


@pytest.fixture(scope="module")
def paragraphs(shared_data: Path) -> dict[str, list[dict[str, Any]]]:
    """Alice's records are SQuAD's Super Bowl 50 paragraphs, Bob's its Warsaw ones; both have ids p0, p1..."""
    squad = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    by_title = {article["title"]: article["paragraphs"] for article in squad["data"]}
    return {
        user: [
            {"id": f"p{n}", "text": p["context"], "metadata": {"user": user, "n": n}}
            for n, p in enumerate(by_title[title][:15])
        ]
        for user, title in (("alice", "Super_Bowl_50"), ("bob", "Warsaw"))
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, paragraphs: dict[str, list[dict[str, Any]]]) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("collections")
    with Memory(directory) as memory:
        for user, records in paragraphs.items():
            assert memory.add(records, collection=user) == [r["id"] for r in records]
    yield directory


# Each question is about the *other* user's records, so a leak would rank them first.
QUESTIONS = {"alice": "What is the capital of Poland and where does the Vistula flow?", "bob": "Who won Super Bowl 50?"}


@pytest.mark.parametrize("pipeline", [None, "dense", "bm25", "multihop"])
def test_a_search_never_returns_another_collections_documents(store: Path, pipeline: str | None) -> None:
    for user, question in QUESTIONS.items():
        with Memory(store, ask_pipeline=pipeline, collection=user) as memory:
            hits = memory.search(question, k=10)
            assert hits and {h.collection for h in hits} == {user}
            assert {h.metadata["user"] for h in hits} == {user}
            answer = memory.ask(question)
            cited = [*answer.citations, *(e.citation for e in answer.evidence)]
            assert cited and {c.collection for c in cited} == {user} and {c.metadata["user"] for c in cited} == {user}
            assert {h.collection for h in answer.hits} == {user}
            # with a filter too: the collection bounds what the filter can reach
            assert {h.collection for h in memory.search(question, k=5, where={"n": {"$lt": 5}})} <= {user}


def test_the_same_id_is_a_different_record_in_each_collection(
    store: Path, paragraphs: dict[str, list[dict[str, Any]]]
) -> None:
    with Memory(store) as memory:
        assert memory.collections() == {"alice": 15, "bob": 15}
        alice, bob = memory.get("p3", collection="alice"), memory.get("p3", collection="bob")
        assert alice is not None and bob is not None
        assert alice.text == paragraphs["alice"][3]["text"] and bob.text == paragraphs["bob"][3]["text"]
        assert (alice.collection, bob.collection) == ("alice", "bob")
        assert memory.get("p3") is None, "the default collection holds nothing"
        assert memory.search("Super Bowl", k=5) == []
        assert memory.stats(collection="alice").documents == 15
        whole = memory.store.stats()
        assert memory.stats(collection="alice").chunks + memory.stats(collection="bob").chunks == whole.chunks
        assert whole.documents == 30


def test_delete_and_forget_stay_in_their_collection(
    tmp_path: Path, paragraphs: dict[str, list[dict[str, Any]]]
) -> None:
    with Memory(tmp_path / "store") as memory:
        for user, records in paragraphs.items():
            memory.add(records[:6], collection=user)
        assert memory.delete(where={"n": {"$gte": 3}}, collection="alice") == 3
        assert memory.stats(collection="alice").documents == 3 and memory.stats(collection="bob").documents == 6
        assert memory.delete("p0", collection="bob") == 1
        assert memory.get("p0", collection="alice") is not None and memory.get("p0", collection="bob") is None
        assert memory.forget(["p1"], collection="alice") == 1
        assert memory.get("p1", collection="bob") is not None
        with pytest.raises(Exception, match="no document 'p9' in store .* \\(collection 'alice'\\)"):
            memory.forget(["p9"], collection="alice")
        with pytest.raises(RecordError, match="delete needs ids or where="):
            memory.delete(collection="alice")
        with pytest.raises(RecordError, match="collection must be a non-empty string"):
            memory.search("x", collection="")
        # what is left is exactly what each collection's searches see
        alice = {h.document for h in memory.search("Super Bowl 50", k=20, collection="alice")}
        assert alice == {"p0", "p2"}
        assert memory.collections() == {"alice": 2, "bob": 5}


def test_cli_collections(store: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["collections", "--store", str(store), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == {"alice": 15, "bob": 15}
    result = runner.invoke(cli, ["search", QUESTIONS["bob"], "--store", str(store), "--collection", "bob", "--json"])
    assert result.exit_code == 0, result.output
    assert {h["collection"] for h in json.loads(result.stdout)} == {"bob"}
    result = runner.invoke(cli, ["list", "--store", str(store), "--collection", "alice", "--where", "n<2", "--json"])
    assert [d["id"] for d in json.loads(result.stdout)] == ["p0", "p1"]
    result = runner.invoke(cli, ["search", "anything", "--store", str(store)])
    assert result.exit_code == 1 and "holds no documents" in result.stderr
    result = runner.invoke(cli, ["stats", "--store", str(store), "--collection", "bob", "--json"])
    assert json.loads(result.stdout)["documents"] == 15
