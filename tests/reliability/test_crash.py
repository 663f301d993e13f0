"""SIGKILL real ingest processes at random moments; the store must always open, answer and match itself,
and re-running the ingest must finish the work without duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from memflow.components.chunkers.sentences import SentenceChunker
from memflow.components.loaders.text import TextLoader
from memflow.storage.store import Store
from tests.reliability.support import MEMFLOW, squad_paragraphs, write_corpus

FILES = 320
KILLS = 24


def test_random_sigkills_never_corrupt_the_store(tmp_path: Path, shared_data: Path) -> None:
    corpus = tmp_path / "corpus"
    paths = write_corpus(corpus, squad_paragraphs(shared_data)[:FILES])
    store = tmp_path / "store"
    report_file = tmp_path / "report.json"
    driver = Path(__file__).with_name("crash_driver.py")
    run = subprocess.run(
        [sys.executable, str(driver), str(corpus), str(store), str(KILLS), "20261129", str(report_file)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(report_file.read_text())
    kills = report["kills"]
    print(
        f"\n{len(kills)} SIGKILLs ({sum(k['early'] for k in kills)} before a first commit); "
        f"(documents, chunks) after each: {[(k['documents'], k['chunks']) for k in kills]}"
    )
    assert len(kills) >= 20
    for kill in kills:
        assert kill["ok"] and kill["duplicate_vectors"] == 0, kill
    assert report["changed"], "the kills never reached the replacement of changed files"
    assert report["final_status"] == 0

    expected_chunks = sum(len(SentenceChunker().chunk_document(TextLoader().load_file(p)[0])) for p in paths)
    with Store(store) as opened:
        stats = opened.stats()
        assert (stats.documents, stats.chunks, stats.vectors) == (FILES, expected_chunks, expected_chunks)
        assert sorted(opened.vectors.ids().tolist()) == opened.chunk_ids_all()
    again = subprocess.run(
        [*MEMFLOW, "ingest", str(corpus), "--store", str(store), "--quiet"], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert f"skipped {FILES} unchanged" in again.stdout
