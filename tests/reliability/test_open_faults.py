"""A store that cannot be opened says why in one line and what to do, exit status 1, and is left as it was:
a database file that is not SQLite (random bytes, a truncated copy), a PostgreSQL server that is not there.
A store this process cannot write (a read-only mount, another user's files) is read as it is and refuses
writes in one line."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ReadOnlyMounts
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


def test_a_read_only_store(tmp_path: Path, shared_data: Path, mount_read_only: ReadOnlyMounts) -> None:
    """A store on a read-only mount is read as it is: list, get, stats, search, ask and doctor work; every
    write is one line saying it is read-only; its files stay byte for byte as they were."""
    store = tmp_path / "store"
    added = run("add", "The Eiffel Tower is in Paris.", "--id", "tower", "--store", str(store), "-q")
    assert added.returncode == 0, added.stderr
    essay = shared_data / "pg-essays" / "essays" / "sun.txt"
    assert run("ingest", str(essay), "--store", str(store), "-q").returncode == 0
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    assert not (store / "memflow.db-wal").exists()  # closed cleanly: read with SQLite's immutable open
    view = mount_read_only(store, tmp_path / "read-only")
    listed = run("list", "--store", str(view))
    assert listed.returncode == 0 and "tower" in listed.stdout and "sun" in listed.stdout, listed.stderr
    got = run("get", "tower", "--store", str(view))
    assert got.returncode == 0 and "The Eiffel Tower is in Paris." in got.stdout, got.stderr
    stats = run("stats", "--store", str(view))
    assert stats.returncode == 0, stats.stderr
    search = run("search", "Where is the Eiffel Tower?", "--store", str(view), "-k", "1", "--json")
    assert search.returncode == 0 and json.loads(search.stdout)[0]["document"] == "tower", search.stderr
    asked = run("ask", "Where is the Eiffel Tower?", "--store", str(view), "--json")
    assert asked.returncode == 0 and json.loads(asked.stdout)["citations"], asked.stderr
    doctor = run("doctor", "--store", str(view))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    for write in (
        ["add", "Another note.", "--id", "note"],
        ["forget", "tower"],
        ["ingest", str(essay.with_name("bias.txt"))],
        ["doctor", "--repair"],
    ):
        line = one_line(run(*write, "--store", str(view)))
        assert line == (
            f"error: store {view} is read-only for this user (a read-only mount or another user's files): "
            "it can be searched and read, not written; make it writable to change it"
        ), (write, line)
    after = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    assert after == before


def test_a_read_only_store_of_an_older_schema(tmp_path: Path, mount_read_only: ReadOnlyMounts) -> None:
    """Reading as it is cannot migrate: one line saying to open it once where it can be written."""
    store = tmp_path / "store"
    assert run("add", "A note.", "--id", "note", "--store", str(store), "-q").returncode == 0
    with sqlite3.connect(store / "memflow.db") as db:
        db.execute("UPDATE settings SET value = '2' WHERE key = 'schema_version'")
    db.close()
    view = mount_read_only(store, tmp_path / "read-only")
    line = one_line(run("list", "--store", str(view)))
    assert f"store {view} is read-only and has schema version 2" in line and "open it once where" in line


def test_another_users_store() -> None:
    """A store whose files belong to another user (root's, read by ``nobody`` through setpriv): read as it
    is, writes refused in one line."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run memflow as another user")
    base = Path(tempfile.mkdtemp(prefix="memflow-other-user-"))
    try:
        base.chmod(0o755)
        store = base / "store"
        assert run("add", "The Eiffel Tower is in Paris.", "--id", "tower", "--store", str(store), "-q").returncode == 0
        cache = base / "cache"
        cache.mkdir()
        os.chown(cache, 65534, 65534)
        as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *MEMFLOW]
        environment = os.environ | {"HOME": str(base / "no-home"), "MEMFLOW_CACHE": str(cache)}

        def run_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*as_nobody, *args, "--store", str(store)], capture_output=True, text=True, env=environment, timeout=300
            )

        listed = run_as_nobody("list")
        assert listed.returncode == 0 and "tower" in listed.stdout, listed.stderr
        search = run_as_nobody("search", "Where is the Eiffel Tower?", "-k", "1")
        assert search.returncode == 0 and "tower" in search.stdout, search.stderr
        line = one_line(run_as_nobody("add", "Another note.", "--id", "note"))
        assert f"store {store} is read-only for this user" in line, line
        assert sorted(p.name for p in store.iterdir()) == ["LOCK", "memflow.db", "vectors.faiss", "vectors.json"]
    finally:
        shutil.rmtree(base)


@pytest.mark.postgres
def test_a_postgresql_store_whose_directory_is_read_only(
    tmp_path: Path, postgres_url: str, mount_read_only: ReadOnlyMounts
) -> None:
    """SQL on the server, the lock and vector files on a read-only mount: read as it is, writes refused."""
    store = tmp_path / "store"
    added = run("add", "The Eiffel Tower is in Paris.", "--id", "tower", "--store", str(store), "--db", postgres_url)
    assert added.returncode == 0, added.stderr
    view = mount_read_only(store, tmp_path / "read-only")
    search = run("search", "Where is the Eiffel Tower?", "-k", "1", "--store", str(view), "--db", postgres_url)
    assert search.returncode == 0 and "tower" in search.stdout, search.stderr
    line = one_line(run("add", "Another note.", "--id", "note", "--store", str(view), "--db", postgres_url))
    assert f"store {view} is read-only for this user" in line, line
    assert "note" not in run("list", "--store", str(view), "--db", postgres_url).stdout


def test_a_lock_file_that_cannot_be_opened(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "LOCK").mkdir(parents=True)  # something in the lock file's place
    line = one_line(run("add", "A note.", "--id", "note", "--store", str(store)))
    assert line == (
        f"error: store {store}: cannot take its writer lock {store / 'LOCK'} (Is a directory); "
        "it must be a file this user can create and write"
    ), line
