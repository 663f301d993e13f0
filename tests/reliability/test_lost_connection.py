"""The PostgreSQL connection lost mid-ingest: the test terminates memflow's backends (``pg_terminate_backend``
on the connections whose application_name carries the ingest's pid) once two batches are committed. The
ingest stops with one line saying the connection was lost and how far it got, exit 1; the store keeps exactly
the committed batches, doctor passes, and a re-run completes it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.support import MEMFLOW, squad_paragraphs, write_corpus

pytestmark = pytest.mark.postgres

FILES = 200
BATCH = 8


def test_an_ingest_whose_database_connection_is_lost(postgres_url: str, tmp_path: Path, shared_data: Path) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    corpus = tmp_path / "corpus"
    write_corpus(corpus, squad_paragraphs(shared_data)[:FILES])
    store = tmp_path / "store"
    observer = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def counts() -> tuple[int, int]:
        with observer.connect() as connection:
            try:
                documents = connection.exec_driver_sql("SELECT count(*) FROM documents").scalar_one()
                chunks = connection.exec_driver_sql("SELECT count(*) FROM chunks").scalar_one()
            except sqlalchemy.exc.ProgrammingError:  # tables not created yet
                return 0, 0
        return int(documents), int(chunks)

    ingest = [*MEMFLOW, "ingest", str(corpus), "--store", str(store), "--db", postgres_url]
    process = subprocess.Popen(
        [*ingest, "--batch-files", str(BATCH), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    terminated: list[bool] = []
    deadline = time.monotonic() + 300
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if counts()[0] >= 2 * BATCH:
                with observer.connect() as connection:
                    terminated = list(
                        connection.exec_driver_sql(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                            (f"memflow/{process.pid}",),
                        ).scalars()
                    )
                break
            time.sleep(0.02)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert terminated and all(terminated), "the ingest finished before its connections could be terminated"

    assert process.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "lost the connection to its database" in lines[0] and "run it again" in lines[0], lines[0]
    documents, chunks = counts()
    assert documents % BATCH == 0 and 2 * BATCH <= documents < FILES and chunks >= documents
    assert f"the ingest stopped after committing {documents} documents from {documents} of {FILES} files" in lines[0]

    doctor = subprocess.run(
        [*MEMFLOW, "doctor", "--store", str(store), "--db", postgres_url], capture_output=True, text=True, timeout=300
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    again = subprocess.run([*ingest, "-q"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"skipped {documents} unchanged" in again.stdout
    assert counts()[0] == FILES
    observer.dispose()
