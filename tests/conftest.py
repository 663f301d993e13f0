"""Shared fixtures: the real data sets beside the project, and fresh stores."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (read-only in CI). Tests that need it fail loudly if it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared data sets are missing: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_essays(shared_data: Path) -> Path:
    return shared_data / "pg-essays" / "essays"


# A small real corpus for end-to-end tests: the essays whose answer sentences tests/test_memory.py asks about,
# plus others as distractors.
ESSAYS = ["foundervisa", "unions", "sun", "weird", "bias", "know", "want", "mod", "diff", "todo", "nft", "iflisp"]


@pytest.fixture(scope="session")
def essay_paths(pg_essays: Path) -> list[Path]:
    return [pg_essays / f"{name}.txt" for name in ESSAYS]


@pytest.fixture(scope="session")
def essay_memory(tmp_path_factory: pytest.TempPathFactory, essay_paths: list[Path]):  # type: ignore[no-untyped-def]
    """A Memory with ESSAYS ingested through the default pipelines and the real MiniLM encoder."""
    from memflow import Memory

    memory = Memory(tmp_path_factory.mktemp("essay-store"))
    report = memory.ingest([str(p) for p in essay_paths])
    assert len(report.ingested) == len(essay_paths), report.problems
    yield memory
    memory.close()


POSTGRES_SERVER = "postgresql+psycopg://root@127.0.0.1:5432/test"


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL into a fresh schema on the real PostgreSQL server, dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg: pip install 'memflow[postgres]'")
    schema = f"memflow_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432: {exc.orig}")
    try:
        yield f"{POSTGRES_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """Each store test runs on both backends, held to one contract: None (the embedded SQLite default in the
    store directory) and a fresh schema on the real PostgreSQL server."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture()
def mount_small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount_small_disk("4m")``: a real tmpfs of that size, the disk a store fills up; unmounted afterwards
    (root only: the test is skipped where mounting is not allowed)."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        target = tmp_path / f"disk{len(mounts)}"
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(target)
        return target

    try:
        yield mount
    finally:
        for target in mounts:
            subprocess.run(["umount", "-l", str(target)], check=False)


class ReadOnlyMounts:
    """Read-only bind mounts, as a read-only disk is seen (root ignores file modes, not mounts)."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def __call__(self, source: Path, target: Path | None = None) -> Path:
        """``source`` (a directory or a file) mounted read-only at ``target`` (default: over itself)."""
        target = target or source
        if source.is_dir():
            target.mkdir(exist_ok=True)
        done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
        self.mounted.append(target)
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
        return target

    def unmount(self, target: Path) -> None:
        subprocess.run(["umount", str(target)], check=True)
        self.mounted.remove(target)


@pytest.fixture()
def mount_read_only() -> Iterator[ReadOnlyMounts]:
    """``mount_read_only(source, target=None)``, unmounted afterwards (root only: the test is skipped where
    mounting is not allowed)."""
    mounts = ReadOnlyMounts()
    try:
        yield mounts
    finally:
        for target in reversed(mounts.mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)
