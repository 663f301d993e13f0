"""A disk that fills up during an ingest (a real 4 MB tmpfs): one line on stderr naming the store, exit 1,
and the store keeps every committed batch: it opens, doctor passes, search works, a re-run on a roomier
disk completes it. And a disk with room for SQL's pages but not for the vector file's new copy."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from memflow.storage.vectors import INDEX_FILE
from tests.reliability.support import MEMFLOW, sql_counts, squad_paragraphs, write_corpus

FILES = 400


@pytest.fixture()
def small_disk(mount_small_disk: Callable[[str], Path]) -> Path:
    """A 4 MB tmpfs."""
    return mount_small_disk("4m")


def test_the_json_report_of_an_ingest_stopped_by_a_full_disk(
    small_disk: Path, tmp_path: Path, shared_data: Path
) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, squad_paragraphs(shared_data)[:FILES])
    store = small_disk / "store"
    failed = run("ingest", str(corpus), "--store", str(store), "--batch-files", "8", "--json")
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    documents, _ = sql_counts(store)
    assert len(report["ingested"]) == documents == report["files_done"] and report["files"] == FILES
    assert "is full" in report["error"] and len(failed.stderr.strip().splitlines()) == 1


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMFLOW, *args], capture_output=True, text=True, timeout=600)


def test_an_ingest_that_fills_the_disk(small_disk: Path, tmp_path: Path, shared_data: Path) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, squad_paragraphs(shared_data)[:FILES])
    store = small_disk / "store"
    failed = run("ingest", str(corpus), "--store", str(store), "--batch-files", "8", "-q")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert lines[0].startswith(f"error: the disk under store {store} is full"), lines[0]
    documents, chunks = sql_counts(store)
    assert 0 < documents < FILES and chunks >= documents
    # how far it got: the committed documents (8 files a batch) and the first file not stored
    assert f"the ingest stopped after committing {documents} documents from {documents} of {FILES} files" in lines[0]
    assert lines[0].endswith(f"the first file not stored: {corpus / f'p{documents:04d}.txt'})"), lines[0]

    roomy = tmp_path / "roomy"
    shutil.copytree(store, roomy)  # the store as the fault left it, on a disk with space
    doctor = run("doctor", "--store", str(roomy))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert sql_counts(roomy) == (documents, chunks)
    search = run("search", "Which NFL team won Super Bowl 50?", "--store", str(roomy), "-k", "3")
    assert search.returncode == 0 and "chunk" in search.stdout, search.stderr
    again = run("ingest", str(corpus), "--store", str(roomy), "-q")
    assert again.returncode == 0, again.stderr
    assert f"skipped {documents} unchanged" in again.stdout
    assert sql_counts(roomy)[0] == FILES


def test_a_full_disk_when_the_vector_file_is_saved(
    mount_small_disk: Callable[[str], Path], tmp_path: Path, shared_data: Path
) -> None:
    """Room for SQL's few pages of one more record, not for a new copy of the vector file: the record is
    stored (its id printed) and the save failure is one line, exit 1; nothing half-written is left; once
    there is room, an ingest saves the file that was left behind."""
    disk = mount_small_disk("16m")
    corpus = tmp_path / "corpus"
    write_corpus(corpus, squad_paragraphs(shared_data)[:FILES])
    store = disk / "store"
    assert run("ingest", str(corpus), "--store", str(store), "-q").returncode == 0
    vector_file = (store / INDEX_FILE).stat().st_size
    filler = disk / "filler"
    room = 256 * 1024
    assert vector_file > 2 * room  # the new copy cannot fit, SQL's pages can
    with open(filler, "wb") as handle:
        while (free := shutil.disk_usage(disk).free) > room:
            handle.write(bytes(min(free - room, 1 << 20)))
            handle.flush()

    added = run("add", "The Eiffel Tower is in Paris.", "--id", "tower", "--store", str(store), "-q")
    assert added.returncode == 1 and added.stdout.split() == ["tower"], added.stdout + added.stderr
    lines = added.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in added.stderr, added.stderr
    assert f"the disk under store {store} is full while saving the vector file" in lines[0], lines[0]
    assert "the committed chunks are safe in SQL" in lines[0], lines[0]
    assert sql_counts(store)[0] == FILES + 1
    assert not [p.name for p in store.iterdir() if p.name.endswith(".tmp")]  # no half-written copy left

    filler.unlink()
    search = run("search", "Where is the Eiffel Tower?", "--store", str(store), "-k", "1", "--pipeline", "dense")
    assert search.returncode == 0 and "tower" in search.stdout, search.stderr  # caught up from SQL
    again = run("ingest", str(corpus), "--store", str(store), "-q")
    assert again.returncode == 0 and f"skipped {FILES} unchanged" in again.stdout, again.stderr
    doctor = run("doctor", "--store", str(store))
    assert doctor.returncode == 0 and "caught up" not in doctor.stdout, doctor.stdout + doctor.stderr
