"""Schema migrations: an older store is brought forward step by step, announced, never silently.

Each step takes the schema from version ``n - 1`` to ``n`` inside one transaction, so a crash mid-way
leaves the store at the older version, and the next open simply tries again. A SQLite store is copied to
``memflow.db.schema-<old>.bak`` first, so the user keeps the exact file they had.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text, update

from memflow.errors import StoreError
from memflow.storage.sql import SettingRow

__all__ = ["MIGRATIONS", "migrate"]

log = logging.getLogger("memflow")


def _summary_read_until(connection: Connection) -> None:
    """v2: summary states remember where reading stopped, so overlapping chunks count once."""
    columns = {c["name"] for c in inspect(connection).get_columns("summary_states")}
    if "read_until" not in columns:
        connection.execute(text("ALTER TABLE summary_states ADD COLUMN read_until INTEGER NOT NULL DEFAULT 0"))


def _collections(connection: Connection) -> None:
    """v3: documents belong to collections; an id is unique within its collection, not across them."""
    columns = {c["name"] for c in inspect(connection).get_columns("documents")}
    if "collection" not in columns:
        connection.execute(text("ALTER TABLE documents ADD COLUMN collection VARCHAR(128) NOT NULL DEFAULT 'default'"))
    for index in inspect(connection).get_indexes("documents"):
        if index["column_names"] == ["uri"] and index["unique"]:
            connection.execute(text(f"DROP INDEX {index['name']}"))
    names = {index["name"] for index in inspect(connection).get_indexes("documents")}
    for name, sql in (
        ("ix_documents_uri", "CREATE INDEX ix_documents_uri ON documents (uri)"),
        ("ix_documents_collection", "CREATE INDEX ix_documents_collection ON documents (collection)"),
        (
            "uq_documents_collection_uri",
            "CREATE UNIQUE INDEX uq_documents_collection_uri ON documents (collection, uri)",
        ),
    ):
        if name not in names:
            connection.execute(text(sql))


#: target version -> the step that produces it from the version before
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _summary_read_until, 3: _collections}


def migrate(engine: Engine, *, current: int, target: int, database_file: Path | None) -> list[str]:
    """Apply the steps from ``current`` to ``target``; returns one message per step applied."""
    if current >= target:
        return []
    missing = [v for v in range(current + 1, target + 1) if v not in MIGRATIONS]
    if missing:
        raise StoreError(f"no migration to schema version {missing[0]}; this memflow cannot open the store")
    messages: list[str] = []
    if database_file is not None and database_file.exists():
        backup = database_file.with_name(f"{database_file.name}.schema-{current}.bak")
        with engine.connect() as connection:  # fold the WAL in, so the copy is the whole database
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy2(database_file, backup)
        messages.append(f"backed up the schema-{current} database to {backup}")
    for version in range(current + 1, target + 1):
        with engine.begin() as connection:
            MIGRATIONS[version](connection)
            connection.execute(update(SettingRow).where(SettingRow.key == "schema_version").values(value=version))
        message = f"migrated store schema {version - 1} -> {version}: {MIGRATIONS[version].__doc__}"
        log.warning("%s", message)
        messages.append(message)
    return messages
