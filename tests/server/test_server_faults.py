"""Storage faults through a real server process: a store locked by another writer answers writes with a
503 (and Retry-After) while reads keep being served; a full disk answers a 507, keeps what was stored before,
and keeps serving it; a store on a read-only mount is served for reads and answers writes with a 403."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from memflow import Client, Memory, ReadOnlyStoreError
from memflow.storage.store import Store
from memflow.testing import running_server
from tests.conftest import ReadOnlyMounts


def records(shared_data: Path, start: int, count: int) -> list[dict[str, Any]]:
    data = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    texts = [p["context"] for article in data for p in article["paragraphs"]][start : start + count]
    return [{"id": f"p{start + n}", "text": text} for n, text in enumerate(texts)]


def test_writes_to_a_locked_store_are_503_and_reads_go_on(tmp_path: Path, shared_data: Path) -> None:
    store = tmp_path / "store"
    with (
        running_server(store, env={"MEMFLOW_LOCK_TIMEOUT": "0.5"}) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        assert client.post("/documents", json={"records": records(shared_data, 0, 5)}).status_code == 200
        with Store(store) as other, other.writer(timeout=5):  # another writer holds the store
            refused = client.post("/documents", json={"records": records(shared_data, 5, 5)})
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert "lock" in refused.json()["error"]
            assert client.delete("/documents/p0").status_code == 503
            hits = client.post("/search", json={"query": "Super Bowl", "k": 3})
            assert hits.status_code == 200 and len(hits.json()["hits"]) == 3
        assert client.post("/documents", json={"records": records(shared_data, 5, 5)}).status_code == 200
        assert client.get("/stats").json()["documents"] == 10


@pytest.fixture()
def small_disk(mount_small_disk: Callable[[str], Path]) -> Path:
    """A 3 MB tmpfs: the disk a store fills up."""
    return mount_small_disk("3m")


def test_a_full_disk_is_507_and_what_was_stored_is_kept_and_served(small_disk: Path, shared_data: Path) -> None:
    store = small_disk / "store"
    statuses: list[int] = []
    stored = 0
    log = small_disk.parent / "serve.log"
    with running_server(store, log=log) as url, httpx.Client(base_url=url, timeout=60) as client:
        for batch in range(60):  # bounded: 3 MB fill up long before 60 x 20 paragraphs
            answer = client.post("/documents", json={"records": records(shared_data, batch * 20, 20)})
            statuses.append(answer.status_code)
            if answer.status_code != 200:
                body = answer.json()
                break
            stored += 20
        assert statuses[-1] == 507, (statuses, body, log.read_text()[-3000:])
        assert "is full" in body["error"] and "nothing of it was kept" in body["error"] and stored > 0
        assert set(statuses[:-1]) == {200}
        assert client.get("/stats").json()["documents"] == stored
        hits = client.post("/search", json={"query": "Which team won Super Bowl 50?", "k": 3})
        assert hits.status_code == 200 and len(hits.json()["hits"]) == 3
        assert client.get("/documents/p0").status_code == 200


def test_a_read_only_store_is_served_for_reads_and_writes_are_403(
    tmp_path: Path, shared_data: Path, mount_read_only: ReadOnlyMounts
) -> None:
    store = tmp_path / "store"
    with Memory(store) as memory:
        memory.add([r["text"] for r in records(shared_data, 0, 10)], ids=[f"p{n}" for n in range(10)])
    view = mount_read_only(store, tmp_path / "read-only")
    with running_server(view) as url, httpx.Client(base_url=url, timeout=60) as client:
        hits = client.post("/search", json={"query": "Which team won Super Bowl 50?", "k": 3})
        assert hits.status_code == 200 and len(hits.json()["hits"]) == 3
        assert client.get("/documents/p0").status_code == 200
        assert client.get("/stats").json()["documents"] == 10
        refused = client.post("/documents", json={"records": records(shared_data, 10, 2)})
        assert refused.status_code == 403 and "is read-only" in refused.json()["error"], refused.text
        assert client.delete("/documents/p0").status_code == 403
        with Client(url) as remote, pytest.raises(ReadOnlyStoreError, match="can be searched and read"):
            remote.delete(["p1"])
        assert client.get("/stats").json()["documents"] == 10
