"""A store that cannot be opened says why in one line and what to do, exit status 1, and is left as it was:
a database file that is not SQLite (random bytes, a truncated copy), a PostgreSQL server that is not there,
a store on a read-only mount."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.reliability.support import MEMFLOW


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMFLOW, *args], capture_output=True, text=True, timeout=300)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_database_file_of_random_bytes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    garbage = os.urandom(64 * 1024)
    (store / "memflow.db").write_bytes(garbage)
    for command in (["stats"], ["list"], ["search", "anything"], ["add", "a note", "--id", "n1"]):
        line = one_line(run(*command, "--store", str(store)))
        assert "is damaged or not a SQLite file" in line and "restore it from a backup" in line, line
        assert str(store) in line
    assert (store / "memflow.db").read_bytes() == garbage  # nothing was written over it


def test_a_truncated_database(tmp_path: Path) -> None:
    store = tmp_path / "store"
    added = run("add", "The Eiffel Tower is in Paris.", "--id", "tower", "--store", str(store), "-q")
    assert added.returncode == 0, added.stderr
    for leftover in ("memflow.db-wal", "memflow.db-shm"):
        (store / leftover).unlink(missing_ok=True)
    database = store / "memflow.db"
    database.write_bytes(database.read_bytes()[:1000])  # the header survives, the pages do not
    line = one_line(run("list", "--store", str(store)))
    assert "is damaged or not a SQLite file" in line or "malformed" in line, line


def test_a_postgresql_server_that_is_not_there(tmp_path: Path) -> None:
    url = "postgresql+psycopg://memflow:secret@127.0.0.1:1/test"
    line = one_line(run("stats", "--db", url, "--store", str(tmp_path / "store")))
    assert line.startswith("error: cannot reach the database postgresql+psycopg://memflow:***@127.0.0.1:1/test")
    assert "secret" not in line


def test_a_read_only_store(tmp_path: Path) -> None:
    """The store's directory mounted read-only (root ignores file modes, so a read-only bind mount)."""
    store = tmp_path / "store"
    added = run("add", "The Eiffel Tower is in Paris.", "--id", "tower", "--store", str(store), "-q")
    assert added.returncode == 0, added.stderr
    view = tmp_path / "read-only"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(store), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True)
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remounted.stderr.decode().strip()}")
        before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
        line = one_line(run("add", "Another note.", "--id", "note", "--store", str(view)))
        assert str(view) in line and ("writable" in line or "read-only" in line or "readonly" in line), line
        listed = run("list", "--store", str(view))
        if listed.returncode == 0:
            assert "tower" in listed.stdout
        else:
            assert "writable" in one_line(listed) or "read-only" in one_line(listed)
        after = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file() and p.name in before}
        assert after["memflow.db"] == before["memflow.db"]
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
