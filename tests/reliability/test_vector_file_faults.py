"""A FAISS file that cannot be written while SQL can: a read-only bind mount over ``vectors.faiss`` (root
ignores file modes; a file that is a mount point cannot be replaced either). The SQL batches commit; the
final save fails; the ingest says so in one line, exit 1, naming the file; nothing half-written is left; the
store opens, searches find the new documents (caught up from SQL), doctor passes; once the file can be
written again, a re-run saves it and the file is current."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from memflow.storage.vectors import INDEX_FILE, META_FILE
from tests.conftest import ReadOnlyMounts
from tests.reliability.support import MEMFLOW, sql_counts, squad_paragraphs, write_corpus


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMFLOW, *args], capture_output=True, text=True, timeout=600)


def test_a_vector_file_that_cannot_be_written(
    tmp_path: Path, shared_data: Path, mount_read_only: ReadOnlyMounts
) -> None:
    paragraphs = squad_paragraphs(shared_data)
    corpus = tmp_path / "corpus"
    write_corpus(corpus / "first", paragraphs[:24])
    write_corpus(corpus / "second", paragraphs[24:48])
    store = tmp_path / "store"
    first = run("ingest", str(corpus / "first"), "--store", str(store), "-q")
    assert first.returncode == 0, first.stderr
    saved = (store / INDEX_FILE).read_bytes()
    mount_read_only(store / INDEX_FILE)

    failed = run("ingest", str(corpus), "--store", str(store), "-q", "--batch-files", "8")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert f"store {store}: saving the vector file failed" in lines[0] and str(store / INDEX_FILE) in lines[0]
    assert "the ingest committed 24 documents from 48 of 48 files: they stand in SQL" in lines[0], lines[0]
    assert (store / INDEX_FILE).read_bytes() == saved  # the old file as it was
    assert not [p.name for p in store.iterdir() if p.name.endswith(".tmp")]  # nothing half-written left
    assert sql_counts(store)[0] == 48

    # a record is stored once committed: add prints its id, says the file could not be saved, exits 1
    added = run("add", "The Eiffel Tower is in Paris.", "--id", "tower", "--store", str(store), "-q")
    assert added.returncode == 1 and added.stdout.split() == ["tower"], added.stdout + added.stderr
    assert len(added.stderr.strip().splitlines()) == 1, added.stderr
    assert "the vector file could not be saved" in added.stderr and str(store / INDEX_FILE) in added.stderr
    assert sql_counts(store)[0] == 49
    forgot = run("forget", "tower", "--store", str(store))
    assert forgot.returncode == 1 and "the 1 documents were removed from SQL" in forgot.stderr, forgot.stderr
    assert sql_counts(store)[0] == 48

    # readers catch the vectors up from SQL: dense search finds a document of the second folder by its text
    query = paragraphs[30][:300]
    search = run("search", query, "--store", str(store), "-k", "1", "--json", "--pipeline", "dense")
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)[0]["document"] == str(corpus / "second" / "p0006.txt"), search.stdout
    doctor = run("doctor", "--store", str(store))
    assert doctor.returncode == 0 and "caught up from SQL" in doctor.stdout, doctor.stdout + doctor.stderr

    mount_read_only.unmount(store / INDEX_FILE)
    again = run("ingest", str(corpus), "--store", str(store), "-q")
    assert again.returncode == 0, again.stderr
    assert "skipped 48 unchanged" in again.stdout
    meta = json.loads((store / META_FILE).read_text())
    doctor = run("doctor", "--store", str(store))
    assert doctor.returncode == 0 and "caught up" not in doctor.stdout, doctor.stdout
    assert meta["ntotal"] == sql_counts(store)[1]  # the file holds every chunk SQL holds
