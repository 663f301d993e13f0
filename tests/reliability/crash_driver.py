"""Run by test_crash.py as its own process: warm the encoder once, then fork real ingest processes and
SIGKILL each at a random moment, checking the store after every kill. Writes a JSON report.

Forking from a warm parent keeps the test fast (no 5-10 s interpreter and model start per kill) while each
victim is still a separate process that dies instantly, mid-whatever it was doing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np


def generation(store: Path) -> int:
    # closing(): sqlite3's own context manager only commits. An unclosed connection lingers until the cyclic
    # GC, and a child forked meanwhile inherits it; when the child's GC closes it, POSIX drops every lock the
    # child holds on the file, and its own connections fail with "disk I/O error".
    try:
        with closing(sqlite3.connect(store / "memflow.db", timeout=30)) as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'generation'").fetchone()
            # SQLite hands a JSON number back as an int, JSON text as a str.
            return int(json.loads(row[0]) if isinstance(row[0], str) else row[0]) if row else 0
    except sqlite3.OperationalError:
        return 0


def check(store_dir: Path) -> dict[str, object]:
    """Open the store as a user would after the crash; it must answer and match itself."""
    from memflow.storage.doctor import diagnose
    from memflow.storage.store import Store

    with Store(store_dir) as store:
        if store.setting("dimension") is None:
            return {"documents": 0, "chunks": 0, "ok": True}
        ids = store.vectors.ids().tolist()
        sql_ids = store.chunk_ids_all()
        report = diagnose(store)
        answers = bool(store.search(np.ones(384, dtype=np.float32) / np.sqrt(384), 3)) if sql_ids else True
        stats = store.stats()
        return {
            "documents": stats.documents,
            "chunks": stats.chunks,
            "ok": sorted(ids) == sql_ids and report.ok and answers,
            "duplicate_vectors": len(ids) - len(set(ids)),
            "doctor": [str(c) for c in report.checks],
        }


def ingest_child(corpus: Path, store: Path) -> None:
    from memflow import Memory

    with Memory(store) as memory:
        memory.ingest([str(corpus)], batch_files=4, save_every=0)


def main() -> None:
    corpus, store, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[5])
    kills_wanted, seed = int(sys.argv[3]), int(sys.argv[4])
    import torch

    from memflow.components.encoders.sentence_transformers import load_encoder

    # GNU OpenMP is not fork-safe: a child that runs a parallel torch op after its parent started an OpenMP
    # team waits forever on the parent's threads. One intra-op thread starts no team (the encoder is ONNX
    # Runtime's, with its own threads created per process; torch only runs the small pooling heads).
    torch.set_num_threads(1)
    load_encoder("default")  # warm: every forked victim starts with the model loaded
    rng = random.Random(seed)
    files = sorted(corpus.iterdir())
    kills: list[dict[str, object]] = []
    changed = False
    while len(kills) < kills_wanted:
        before = generation(store)
        pid = os.fork()
        if pid == 0:
            try:
                ingest_child(corpus, store)
            finally:
                os._exit(0)
        early = len(kills) % 5 == 4
        finished = False  # reaped: a child reaped once cannot be waited for again (ECHILD)
        if early:  # some kills before the first commit: opening, listing, encoding the first batch
            time.sleep(rng.uniform(0.0, 0.3))
        else:  # most while it is writing: after it has committed at least once since starting
            while generation(store) == before and not finished:
                finished = os.waitpid(pid, os.WNOHANG) != (0, 0)
                time.sleep(0.01)
            if not finished:
                time.sleep(rng.uniform(0.0, 0.25))
        finished = finished or os.waitpid(pid, os.WNOHANG) != (0, 0)
        if not finished:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            kills.append({"early": early, **check(store)})
        if finished:
            break
        if not changed and len(kills) >= kills_wanted // 2:
            # Change a third of what is already stored, so the next kills also hit replacements (old chunks,
            # vectors and summary state out, new ones in, one transaction).
            documents = int(check(store)["documents"])  # type: ignore[call-overload]
            for path in files[:documents:3]:
                path.write_text(path.read_text(encoding="utf-8") + "A sentence added later.\n", encoding="utf-8")
            changed = True
    pid = os.fork()
    if pid == 0:
        try:
            ingest_child(corpus, store)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    out.write_text(json.dumps({"kills": kills, "changed": changed, "final_status": status, "final": check(store)}))


if __name__ == "__main__":
    main()
