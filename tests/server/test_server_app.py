"""memflow serve, each endpoint against a real server process over a store filled through its own API with
real SQuAD paragraphs and the real encoder."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from memflow.testing import running_server
from memflow.types import Answer, Hit

TOKEN = "test-token-0123456789abcdef"
ARTICLES = 4
PER_ARTICLE = 6


def squad_records(shared_data: Path, *, articles: int, per_article: int, skip: int = 0) -> list[dict[str, Any]]:
    data = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    records = []
    for article in data[skip : skip + articles]:
        for n, paragraph in enumerate(article["paragraphs"][:per_article]):
            records.append(
                {
                    "id": f"{article['title']}/{n}",
                    "title": article["title"].replace("_", " "),
                    "text": paragraph["context"],
                    "metadata": {"article": article["title"], "n": n},
                }
            )
    return records


@pytest.fixture(scope="module")
def records(shared_data: Path) -> list[dict[str, Any]]:
    return squad_records(shared_data, articles=ARTICLES, per_article=PER_ARTICLE)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]]) -> Iterator[httpx.Client]:
    store = tmp_path_factory.mktemp("served-store")
    log = tmp_path_factory.mktemp("served-log") / "serve.log"
    with (
        running_server(store, "--max-body", "200000", "--offer", "dense", token=TOKEN, log=log) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client,
    ):
        added = client.post("/documents", json={"records": records})
        assert added.status_code == 200, added.text
        assert added.json()["ids"] == [r["id"] for r in records]
        yield client


def test_search_returns_the_cli_json_fields_within_the_filter(server: httpx.Client, records: list[dict]) -> None:
    answer = server.post("/search", json={"query": "Which NFL team represented the AFC at Super Bowl 50?", "k": 5})
    assert answer.status_code == 200, answer.text
    hits = answer.json()["hits"]
    assert len(hits) == 5
    assert set(hits[0]) == {f.name for f in fields(Hit)}
    assert hits[0]["document"].startswith("Super_Bowl_50/")
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    article = records[-1]["metadata"]["article"]
    filtered = server.post("/search", json={"query": "Super Bowl", "k": 3, "where": {"article": article}}).json()
    assert len(filtered["hits"]) == 3
    assert {h["metadata"]["article"] for h in filtered["hits"]} == {article}


def test_ask_answers_with_citations_and_streams_the_same_answer(server: httpx.Client) -> None:
    question = {"question": "Where did Super Bowl 50 take place?"}
    answer = server.post("/ask", json=question)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {f.name for f in fields(Answer)}
    assert body["text"] and body["citations"]
    assert body["citations"][0]["document"].startswith("Super_Bowl_50/")

    events = []
    with server.stream("POST", "/ask", json=question | {"stream": True}) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        for block in streamed.iter_text():
            events.append(block)
    parsed = _events("".join(events))
    assert [kind for kind, _ in parsed][-1] == "answer"
    text = "".join(data["text"] for kind, data in parsed if kind == "token")
    final = parsed[-1][1]
    assert text == final["text"] == body["text"]
    assert final["citations"] == body["citations"]


def _events(stream: str) -> list[tuple[str, Any]]:
    parsed = []
    for block in stream.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        parsed.append((lines["event"], json.loads(lines["data"])))
    return parsed


def test_records_are_added_read_listed_paged_and_deleted(server: httpx.Client, records: list[dict]) -> None:
    one = records[0]
    got = server.get(f"/documents/{one['id']}")
    assert got.status_code == 200, got.text
    assert got.json() | {"chunks": 0} == {
        "id": one["id"],
        "text": one["text"],
        "title": one["title"],
        "metadata": one["metadata"],
        "chunks": 0,
        "collection": "default",
    }
    page = server.get("/documents", params={"limit": 5, "offset": 2}).json()
    assert page["total"] == len(records)
    assert [d["id"] for d in page["documents"]] == [r["id"] for r in records[2:7]]
    article = records[0]["metadata"]["article"]
    matching = server.get("/documents", params={"where": json.dumps({"article": article, "n": {"$lt": 2}})}).json()
    assert [d["id"] for d in matching["documents"]] == [f"{article}/0", f"{article}/1"]

    extra = {"id": "notes/tea", "text": "Alice drinks green tea every morning.", "metadata": {"user": "alice"}}
    assert server.post("/documents", json={"records": [extra], "collection": "alice"}).json() == {"ids": ["notes/tea"]}
    assert server.get("/documents/notes/tea").status_code == 404  # another collection's record
    assert server.get("/documents/notes/tea", params={"collection": "alice"}).json()["text"] == extra["text"]
    assert server.get("/collections").json()["collections"] == {"default": len(records), "alice": 1}
    hits = server.post("/search", json={"query": "what does Alice drink", "collection": "alice"}).json()["hits"]
    assert [h["document"] for h in hits] == ["notes/tea"]
    assert server.delete("/documents/notes/tea", params={"collection": "alice"}).json() == {"deleted": 1}
    assert server.delete("/documents/notes/tea", params={"collection": "alice"}).status_code == 404
    assert server.get("/documents/notes/tea", params={"collection": "alice"}).status_code == 404
    assert server.post("/search", json={"query": "tea", "collection": "alice"}).json()["hits"] == []


def test_delete_by_where_and_stats(server: httpx.Client, shared_data: Path) -> None:
    more = squad_records(shared_data, articles=1, per_article=3, skip=10)
    server.post("/documents", json={"records": more, "collection": "scratch"}).raise_for_status()
    assert server.get("/stats", params={"collection": "scratch"}).json()["documents"] == 3
    deleted = server.post("/documents/delete", json={"where": {"n": {"$gte": 1}}, "collection": "scratch"}).json()
    assert deleted == {"deleted": 2}
    left = server.get("/documents", params={"collection": "scratch"}).json()["documents"]
    assert [d["id"] for d in left] == [more[0]["id"]]
    stats = server.get("/stats").json()
    assert stats["documents"] == ARTICLES * PER_ARTICLE
    assert stats["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_summary_of_a_record(server: httpx.Client, records: list[dict]) -> None:
    state = server.get(f"/documents/{records[3]['id']}/summary")
    assert state.status_code == 200, state.text
    body = state.json()
    assert body["document"] == records[3]["id"] and body["slots"]
    assert all("vector" not in slot for slot in body["slots"])
    assert records[3]["text"][body["slots"][0]["start"] : body["slots"][0]["end"]] == body["slots"][0]["text"]
    assert server.get("/documents/no-such-record/summary").status_code == 404


def test_searches_never_fail_while_records_are_added(server: httpx.Client, shared_data: Path) -> None:
    """Request threads of one server share its store: readers run while a writer adds batch after batch."""
    batches = [squad_records(shared_data, articles=1, per_article=8, skip=20 + n) for n in range(4)]
    failures: list[str] = []
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            answer = server.post("/search", json={"query": "When was the university founded?", "k": 5})
            if answer.status_code != 200 or len(answer.json()["hits"]) != 5:
                failures.append(f"{answer.status_code} {answer.text[:200]}")
            stats = server.get("/stats", params={"collection": "growing"})
            seen.append(stats.json()["documents"])

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for batch in batches:
            assert server.post("/documents", json={"records": batch, "collection": "growing"}).status_code == 200
    finally:
        done.set()
        for thread in readers:
            thread.join()
    assert failures == []
    assert len(seen) >= 6
    assert seen[-1] == sum(len(b) for b in batches)
    grown = server.post("/search", json={"query": "university", "k": 3, "collection": "growing"}).json()["hits"]
    assert len(grown) == 3


def test_a_request_chooses_among_the_pipelines_the_server_offers(server: httpx.Client) -> None:
    question = {"query": "Which NFL team represented the AFC at Super Bowl 50?", "k": 3}
    dense = server.post("/search", json=question | {"pipeline": "dense"}).json()["hits"]
    assert [set(h["scores"]) for h in dense] == [{"dense"}] * 3  # dense retrieval alone, no reranking
    default = server.post("/search", json=question | {"pipeline": "default"}).json()["hits"]
    assert "reranked" in default[0]["scores"]
    assert server.post("/ask", json={"question": question["query"], "pipeline": "dense"}).json()["citations"]
    refused = server.post("/search", json=question | {"pipeline": "multihop"})
    assert refused.status_code == 422 and refused.json()["field"] == "pipeline"
    assert "it offers: default, dense" in refused.json()["error"]
    file = server.post("/search", json=question | {"pipeline": "/etc/passwd"})
    assert file.status_code == 422  # a pipeline file is never read because a request names it
