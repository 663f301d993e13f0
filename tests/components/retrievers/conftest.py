"""Fixtures for the retriever tests: a schema of its own on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

SERVER = "postgresql+psycopg://root@127.0.0.1:5432/test"


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg: pip install 'memflow[postgres]'")
    schema = f"memflow_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432: {exc.orig}")
    try:
        yield f"{SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
