"""Run by test_concurrency.py as its own process: one forked writer ingests while forked readers search the
same store the whole time, each in its own process. Writes a JSON report of searches run and errors seen.

The writer commits a first few files, then waits until every reader has opened the store and read its size
before it ingests the rest, so each reader is sure to watch the store grow however fast the machine is."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import traceback
from pathlib import Path

QUESTIONS = [
    "Which team won Super Bottle 50?",
    "What is the capital of Normandy?",
    "Who discovered oxygen?",
    "When was the university founded?",
    "What does the amendment say?",
    "How do birds migrate?",
]


def documents(store: Path) -> int:
    try:
        with sqlite3.connect(store / "memflow.db", timeout=30) as db:
            return int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


FIRST_FILES = 8


def writer(corpus: Path, store: Path, ready: list[Path]) -> None:
    from memflow import Memory

    with Memory(store) as memory:
        memory.ingest(sorted(corpus.iterdir())[:FIRST_FILES], batch_files=4, save_every=0)
        deadline = time.monotonic() + 600
        while not all(path.exists() for path in ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        memory.ingest([str(corpus)], batch_files=4, save_every=0)


def reader(store: Path, writer_pid: int, out: Path, ready: Path) -> None:
    from memflow import Memory

    searches, errors, empty, seen_documents = 0, [], 0, []
    with Memory(store) as memory:
        seen_documents.append(memory.stats().documents)
        ready.touch()
        while True:
            alive = os.path.exists(f"/proc/{writer_pid}") and not _zombie(writer_pid)
            for question in QUESTIONS:
                try:
                    hits = memory.search(question, k=5)
                    searches += 1
                    empty += not hits
                    for hit in hits:  # every hit is a committed chunk whose text is its span
                        assert hit.text and hit.end > hit.start, hit
                except Exception as exc:  # the point of the test: count every failure, of any kind
                    errors.append("".join(traceback.format_exception_only(exc)).strip())
            seen_documents.append(memory.stats().documents)
            if not alive:
                break
    out.write_text(
        json.dumps({"searches": searches, "errors": errors, "empty": empty, "documents_seen": seen_documents})
    )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def main() -> None:
    corpus, store, readers, out = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    # Nothing runs torch in this process before it forks: a child of a process whose OpenMP pool has run
    # can hang in its first parallel op. Each child loads the encoder itself.
    ready = [out.with_name(f"reader{n}.ready") for n in range(readers)]
    writer_pid = os.fork()
    if writer_pid == 0:
        try:
            writer(corpus, store, ready)
        finally:
            os._exit(0)
    while documents(store) == 0:  # readers of an empty store only learn that it is empty
        time.sleep(0.05)
    pids = []
    for n in range(readers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                reader(store, writer_pid, out.with_name(f"reader{n}.json"), ready[n])
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    _, writer_status = os.waitpid(writer_pid, 0)
    reader_status = [os.waitpid(pid, 0)[1] for pid in pids]
    results = [json.loads(out.with_name(f"reader{n}.json").read_text()) for n in range(readers)]
    out.write_text(
        json.dumps(
            {
                "writer_status": writer_status,
                "reader_status": reader_status,
                "readers": results,
                "documents": documents(store),
            }
        )
    )


if __name__ == "__main__":
    main()
