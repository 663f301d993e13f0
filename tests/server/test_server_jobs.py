"""POST /ingest against a real server process: jobs over server-side folders confined to the --ingest-root
directories, uploaded files, progress and reports at GET /jobs/{id}, and searches that never fail while a
job writes."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memflow.testing import running_server

TOKEN = "jobs-token-0123456789abcdef"
FILES = 40


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """root/corpus/*.txt (SQuAD paragraphs), root/escape -> outside/, root/leaky/leak.txt -> outside/secret.txt"""
    base = tmp_path_factory.mktemp("jobs")
    root, outside = base / "root", base / "outside"
    data = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    texts = [p["context"] for article in data[5:15] for p in article["paragraphs"][:4]][:FILES]
    (root / "corpus").mkdir(parents=True)
    for n, text in enumerate(texts):
        (root / "corpus" / f"p{n:03d}.txt").write_text(text + "\n", encoding="utf-8")
    outside.mkdir()
    (outside / "secret.txt").write_text("The launch code is 0000.\n", encoding="utf-8")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "leaky").mkdir()
    (root / "leaky" / "fine.txt").write_text("A harmless note.\n", encoding="utf-8")
    (root / "leaky" / "leak.txt").symlink_to(outside / "secret.txt")
    return base


@pytest.fixture(scope="module")
def server(layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    store = layout / "store"
    log = tmp_path_factory.mktemp("jobs-log") / "serve.log"
    root = layout / "root"
    with (
        running_server(store, "--ingest-root", str(root), token=TOKEN, log=log) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client,
    ):
        yield client, store


def wait(client: httpx.Client, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_a_job_ingests_a_folder_while_searches_keep_answering(server: tuple[httpx.Client, Path]) -> None:
    client, _ = server
    client.post("/documents", json={"records": [{"id": "seed", "text": "A seed record so search has vectors."}]})
    failures: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            answer = client.post("/search", json={"query": "When was the university founded?", "k": 3})
            if answer.status_code != 200 or not answer.json()["hits"]:
                failures.append(f"{answer.status_code} {answer.text[:200]}")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        queued = client.post("/ingest", json={"paths": ["corpus"], "collection": "docs"})
        assert queued.status_code == 202, queued.text
        job = queued.json()
        assert job["state"] in ("queued", "running") and job["files"] == FILES
        finished = wait(client, job["id"])
    finally:
        done.set()
        reader.join()
    assert finished["state"] == "done", finished
    assert finished["files_done"] == FILES
    report = finished["report"]
    assert len(report["ingested"]) == FILES and report["problems"] == [] and report["chunks"] >= FILES
    assert failures == []
    assert client.get("/stats", params={"collection": "docs"}).json()["documents"] == FILES
    hits = client.post("/search", json={"query": "university", "k": 3, "collection": "docs"}).json()["hits"]
    assert len(hits) == 3

    again = wait(client, client.post("/ingest", json={"paths": ["corpus"], "collection": "docs"}).json()["id"])
    assert again["report"]["ingested"] == [] and len(again["report"]["unchanged"]) == FILES
    assert [j["id"] for j in client.get("/jobs").json()["jobs"]][-2:] == [job["id"], again["id"]]


@pytest.mark.parametrize(
    "paths,message",
    [
        (["../outside"], "outside the ingest roots"),
        (["escape"], "outside the ingest roots"),
        (["escape/secret.txt"], "outside the ingest roots"),
        (["corpus", "/etc"], "outside the ingest roots"),
        (["no-such-folder"], "does not exist"),
        ([""], "is empty"),
    ],
)
def test_paths_outside_the_roots_are_refused(server: tuple[httpx.Client, Path], paths: list[str], message: str) -> None:
    client, _ = server
    answer = client.post("/ingest", json={"paths": paths})
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]
    assert answer.json()["field"].startswith("paths")


def test_a_link_inside_a_folder_to_a_file_outside_is_skipped(server: tuple[httpx.Client, Path]) -> None:
    client, _ = server
    queued = client.post("/ingest", json={"paths": ["leaky"], "collection": "leaky"}).json()
    assert queued["files"] == 1
    job = wait(client, queued["id"])
    assert [Path(uri).name for uri in job["report"]["ingested"]] == ["fine.txt"]
    assert [(Path(p["path"]).name, p["kind"]) for p in job["report"]["problems"]] == [("leak.txt", "skipped")]


def test_a_loader_that_follows_links_is_still_confined(layout: Path) -> None:
    """The roots hold even for an ingest pipeline whose loader follows symbolic links."""
    from memflow import Memory
    from memflow.server.errors import FieldError
    from memflow.server.jobs import confined_paths

    shipped = Path(__file__).resolve().parents[2] / "pipelines" / "ingest.yaml"
    following = layout / "ingest-following-links.yaml"
    following.write_text(
        shipped.read_text().replace("{type: loaders.auto}", "{type: loaders.auto, params: {follow_symlinks: true}}")
    )
    (layout / "root" / "linked").mkdir(exist_ok=True)
    if not (layout / "root" / "linked" / "outside").exists():
        (layout / "root" / "linked" / "outside").symlink_to(layout / "outside", target_is_directory=True)
    root = layout / "root"
    with Memory(layout / "unit-store", ingest_pipeline=following) as memory:
        assert confined_paths(memory, ["corpus"], (root,))[1] == FILES
        with pytest.raises(FieldError, match="leak.txt links outside the ingest roots"):
            confined_paths(memory, ["leaky"], (root,))
        with pytest.raises(FieldError, match="links outside the ingest roots"):
            confined_paths(memory, ["linked"], (root,))


def test_the_outside_world_was_never_read(server: tuple[httpx.Client, Path]) -> None:
    client, _ = server
    for collection in (None, "docs"):
        hits = client.post("/search", json={"query": "What is the launch code?", "k": 10} | _in(collection))
        assert all("launch code" not in h["text"] for h in hits.json()["hits"])


def _in(collection: str | None) -> dict[str, str]:
    return {"collection": collection} if collection else {}


@pytest.mark.parametrize(
    "body,status,field",
    [
        ({"paths": []}, 422, "paths"),
        ({"paths": "corpus"}, 422, "paths"),
        ({"paths": ["corpus"], "collection": ""}, 422, "collection"),
        ({"paths": ["corpus"], "recursive": True}, 422, "recursive"),
    ],
)
def test_malformed_job_requests(server: tuple[httpx.Client, Path], body: dict, status: int, field: str) -> None:
    client, _ = server
    answer = client.post("/ingest", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field


def test_uploaded_files_are_ingested_and_kept_under_the_store(server: tuple[httpx.Client, Path]) -> None:
    client, store = server
    note = b"---\ntitle: Tea notes\nuser: alice\n---\n# Tea\n\nAlice brews oolong tea at exactly 85 degrees.\n"
    files = [("files", ("../../notes.md", note, "text/markdown")), ("files", ("plain.txt", b"Bob likes rye bread.\n"))]
    queued = client.post("/ingest", files=files, data={"collection": "uploads"})
    assert queued.status_code == 202, queued.text
    job = wait(client, queued.json()["id"])
    assert job["state"] == "done" and len(job["report"]["ingested"]) == 2, job
    for uri in job["report"]["ingested"]:
        assert Path(uri).resolve().is_relative_to((store / "uploads").resolve())
    assert not (store.parent / "notes.md").exists()
    hits = client.post("/search", json={"query": "How hot does Alice brew tea?", "collection": "uploads"}).json()
    assert hits["hits"][0]["metadata"]["user"] == "alice" and hits["hits"][0]["title"] == "Tea notes"
    again = wait(client, client.post("/ingest", files=files, data={"collection": "uploads"}).json()["id"])
    assert again["report"]["ingested"] == [] and len(again["report"]["unchanged"]) == 2


def test_an_upload_without_files_and_unknown_jobs(server: tuple[httpx.Client, Path]) -> None:
    client, _ = server
    answer = client.post("/ingest", data={"collection": "x"}, files={"other": ("a.txt", b"x")})
    assert answer.status_code == 422 and answer.json()["field"] == "files"
    assert client.get("/jobs/no-such-job").status_code == 404
    plain = client.post("/ingest", content=b"corpus", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 422 and plain.json()["field"] == "body"


def test_a_server_without_roots_reads_no_paths(tmp_path: Path) -> None:
    with running_server(tmp_path / "s", token=TOKEN) as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.post(url + "/ingest", json={"paths": [os.getcwd()]}, headers=headers)
    assert answer.status_code == 422 and "--ingest-root" in answer.json()["error"]


def test_client_ingest_runs_a_job_and_returns_its_report(server: tuple[httpx.Client, Path]) -> None:
    from memflow import Client, RecordError

    client, _ = server
    with Client(str(client.base_url), token=TOKEN) as remote:
        report = remote.ingest("corpus", collection="via-client")
        assert len(report.ingested) == FILES and report.files == FILES and report.chunks >= FILES
        assert remote.stats(collection="via-client").documents == FILES
        again = remote.ingest(["corpus"], collection="via-client")
        assert again.ingested == [] and len(again.unchanged) == FILES
        with pytest.raises(RecordError, match="outside the ingest roots"):
            remote.ingest("../outside")


def test_jobs_outlive_a_restart_and_an_interrupted_one_says_so(tmp_path: Path, shared_data: Path) -> None:
    """A finished job is still reported after the server restarts; one the server was killed in the middle
    of is failed as interrupted, its committed batches kept, and submitting it again finishes it."""
    import signal
    import subprocess
    import sys

    from memflow.testing import free_port

    data = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    texts = [p["context"] for article in data for p in article["paragraphs"]][:400]
    root, store = tmp_path / "root", tmp_path / "store"
    for folder, part in (("small", texts[:8]), ("big", texts[8:])):
        (root / folder).mkdir(parents=True)
        for n, text in enumerate(part):
            (root / folder / f"p{n:03d}.txt").write_text(text + "\n", encoding="utf-8")

    port = free_port()
    command = [sys.executable, "-m", "memflow.cli.main", "serve", "--store", str(store), "--port", str(port)]
    process = subprocess.Popen([*command, "--ingest-root", str(root)], stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            small = client.post("/ingest", json={"paths": ["small"]}).json()["id"]
            assert wait(client, small)["state"] == "done"
            big = client.post("/ingest", json={"paths": ["big"]}).json()["id"]
            while client.get(f"/jobs/{big}").json()["files_done"] == 0:  # killed once a batch is committed
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    with running_server(store, "--ingest-root", str(root)) as url, httpx.Client(base_url=url, timeout=60) as client:
        finished = client.get(f"/jobs/{small}").json()
        assert finished["state"] == "done" and len(finished["report"]["ingested"]) == 8
        interrupted = client.get(f"/jobs/{big}").json()
        assert interrupted["state"] == "failed" and interrupted["error"].startswith("interrupted:"), interrupted
        stored = client.get("/stats").json()["documents"]
        assert 8 < stored < len(texts)  # the committed batches stand
        again = wait(client, client.post("/ingest", json={"paths": ["big"]}).json()["id"])
        assert again["state"] == "done" and len(again["report"]["unchanged"]) == stored - 8, again
        assert client.get("/stats").json()["documents"] == len(texts)
        assert [job["id"] for job in client.get("/jobs").json()["jobs"]][:2] == [small, big]
