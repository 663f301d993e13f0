"""Readers in other processes search throughout an ingest: zero errors, and they see committed progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from memflow.storage.store import Store
from tests.reliability.support import MEMFLOW, squad_paragraphs, write_corpus

FILES = 64
READERS = 2


def test_searches_in_other_processes_during_an_ingest_never_fail(tmp_path: Path, shared_data: Path) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, squad_paragraphs(shared_data)[1000 : 1000 + FILES])
    store = tmp_path / "store"
    out = tmp_path / "report.json"
    driver = Path(__file__).with_name("concurrency_driver.py")
    run = subprocess.run(
        [sys.executable, str(driver), str(corpus), str(store), str(READERS), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["writer_status"] == 0 and report["reader_status"] == [0] * READERS, run.stderr[-3000:]
    total = sum(r["searches"] for r in report["readers"])
    errors = [e for r in report["readers"] for e in r["errors"]]
    print(
        f"\n{total} searches by {READERS} reader processes during the ingest of {FILES} files; "
        f"{len(errors)} errors; documents seen: {[r['documents_seen'] for r in report['readers']]}"
    )
    assert errors == []
    assert total >= 12
    for result in report["readers"]:
        seen = result["documents_seen"]
        assert seen == sorted(seen), "a reader saw the store go backwards"
        assert seen[-1] == FILES and seen[0] < FILES, "readers did not follow the ingest as it committed"
        assert result["empty"] == 0
    assert report["documents"] == FILES
    with Store(store) as opened:
        assert sorted(opened.vectors.ids().tolist()) == opened.chunk_ids_all()
    # A second writer waits for the lock, then says clearly who holds it.
    with Store(store) as holder, holder.writer():
        blocked = subprocess.run(
            [*MEMFLOW, "forget", "p0000.txt", "--store", str(store)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "MEMFLOW_LOCK_TIMEOUT": "1"},
        )
    assert blocked.returncode == 1 and "being written by another process" in blocked.stderr
