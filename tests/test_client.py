"""memflow.Client and AsyncClient against a real `memflow serve` process: the same calls give the same
results as the in-process Memory over the same store, and the same errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import memflow
from memflow import AsyncClient, Client, Memory, RecordError, ServerError
from memflow.filters import FilterError
from memflow.testing import running_server

TOKEN = "client-token-0123456789abcdef"


def paragraphs(shared_data: Path, articles: int = 3, per_article: int = 5) -> list[tuple[str, str, dict]]:
    data = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    return [
        (f"{a['title']}#{n}", p["context"], {"article": a["title"], "n": n})
        for a in data[:articles]
        for n, p in enumerate(a["paragraphs"][:per_article])
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[tuple[Client, Memory]]:
    store = tmp_path_factory.mktemp("client-store")
    log = tmp_path_factory.mktemp("client-log") / "serve.log"
    items = paragraphs(shared_data)
    with running_server(store, token=TOKEN, log=log) as url, Client(url, token=TOKEN) as client:
        ids = client.add([text for _, text, _ in items], ids=[i for i, _, _ in items], metadata=[m for *_, m in items])
        assert ids == [i for i, _, _ in items]
        with Memory(store) as memory:  # the same store, in this process: what embedding it gives
            yield client, memory


def test_search_and_ask_give_what_the_embedded_memory_gives(served: tuple[Client, Memory]) -> None:
    client, memory = served
    question = "Which NFL team represented the NFC at Super Bowl 50?"
    remote, local = client.search(question, k=5), memory.search(question, k=5)
    # the same hits; scores equal up to float noise (two processes' encoder threads may sum in other orders)
    assert [replace(h, score=0.0) for h in remote] == [replace(h, score=0.0) for h in local]
    assert [h.metadata for h in remote] == [h.metadata for h in local]
    for mine, theirs in zip(remote, local, strict=True):
        assert mine.score == pytest.approx(theirs.score, abs=1e-4)
        assert dict(mine.scores) == pytest.approx(dict(theirs.scores), abs=1e-4)
    where = {"article": "Super_Bowl_50", "n": {"$gte": 2}}
    filtered = client.search("Super Bowl", k=3, where=where)
    assert [h.chunk_id for h in filtered] == [h.chunk_id for h in memory.search("Super Bowl", k=3, where=where)]

    answer, expected = client.ask(question), memory.ask(question)
    assert answer.text == expected.text and answer.text
    assert answer.citations == expected.citations
    assert [e.citation for e in answer.evidence] == [e.citation for e in expected.evidence]


def test_stream_yields_the_text_then_the_answer(served: tuple[Client, Memory]) -> None:
    client, _ = served
    pieces = list(client.stream("Where was Super Bowl 50 played?"))
    assert isinstance(pieces[-1], memflow.Answer)
    assert "".join(p for p in pieces[:-1] if isinstance(p, str)) == pieces[-1].text
    assert pieces[-1].citations


def test_records_round_trip(served: tuple[Client, Memory]) -> None:
    client, memory = served
    assert client.add("Alice prefers green tea.", ids="pref-alice", metadata={"user": "alice"}, collection="users")
    record = client.get("pref-alice", collection="users")
    assert record == memory.get("pref-alice", collection="users")
    assert record is not None and record.metadata == {"user": "alice"} and record.collection == "users"
    assert client.get("pref-alice") is None  # another collection
    assert client.collections() == memory.collections() == {"default": 15, "users": 1}
    listed = client.documents(where={"n": 0})
    assert listed == memory.documents(where={"n": 0})
    assert [d.uri for d in listed] == ["Super_Bowl_50#0", "Warsaw#0", "Normans#0"]
    assert client.stats(collection="users") == memory.stats(collection="users")
    state, expected = client.summary("Warsaw#1"), memory.summary("Warsaw#1")
    assert [s.text for s in state.slots] == [s.text for s in expected.slots]
    assert np.array_equal(state.slots[0].vector, expected.slots[0].vector)
    assert np.allclose(state.centroid_sum, expected.centroid_sum)
    assert client.delete("pref-alice", collection="users") == 1
    assert client.delete(["pref-alice", "never-added"], collection="users") == 0
    assert client.get("pref-alice", collection="users") is None
    assert client.delete(where={"user": "nobody"}) == 0


def test_errors_are_the_embedded_errors(served: tuple[Client, Memory]) -> None:
    client, _ = served
    with pytest.raises(FilterError, match=r"\$regex"):
        client.search("x", where={"a": {"$regex": "."}})
    with pytest.raises(RecordError, match=r"texts\[0\] is empty"):
        client.add([""])
    with pytest.raises(RecordError, match="k"):
        client.search("x", k=0)
    with pytest.raises(memflow.MemflowError, match="no document"):
        client.summary("never-added")
    with Client(client.url) as anonymous, pytest.raises(ServerError) as refused:
        anonymous.search("x")
    assert refused.value.status == 401


def test_async_client(served: tuple[Client, Memory]) -> None:
    client, memory = served

    async def run() -> None:
        async with AsyncClient(client.url, token=TOKEN, collection="async") as remote:
            assert await remote.add(["Bob drinks black coffee at night."], ids=["bob"]) == ["bob"]
            hits, searched = await asyncio.gather(remote.search("coffee", k=1), remote.search("tea", k=1))
            assert [h.document for h in hits] == ["bob"] == [h.document for h in searched]
            record = await remote.get("bob")
            assert record is not None and record.collection == "async"
            answer = await remote.ask("What does Bob drink?")
            assert answer.citations and answer.citations[0].document == "bob"
            pieces = [p async for p in remote.stream("What does Bob drink?")]
            assert isinstance(pieces[-1], memflow.Answer) and pieces[-1].text == answer.text
            assert (await remote.stats()).documents == 1
            assert (await remote.collections())["async"] == 1
            assert await remote.delete("bob") == 1
            assert await remote.get("bob") is None

    asyncio.run(run())
    assert memory.get("bob", collection="async") is None


def test_a_server_without_a_token_serves_this_machine(tmp_path: Path) -> None:
    with running_server(tmp_path / "open") as url, Client(url) as client:
        assert client.search("anything") == []  # an empty memory answers, it does not fail
        assert client.ask("anything").text == ""
        assert client.add(["The Eiffel Tower is in Paris."], ids=["tower"]) == ["tower"]
        assert [h.document for h in client.search("Where is the Eiffel Tower?", k=1)] == ["tower"]
