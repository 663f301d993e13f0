"""An older store is migrated forward on open, announced and backed up; a newer one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from memflow.errors import StoreError
from memflow.storage.sql import SCHEMA_VERSION
from memflow.storage.store import Store
from memflow.testing import make_chunks, make_document

# The summary_states table as schema version 1 created it (before read_until existed).
V1_SUMMARY_STATES = """
CREATE TABLE summary_states (
    document_id INTEGER NOT NULL PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    capacity INTEGER NOT NULL, chunks_seen INTEGER NOT NULL, sentences_seen INTEGER NOT NULL,
    slots JSON NOT NULL, slot_vectors {blob} NOT NULL, centroid_sum {blob} NOT NULL
)"""


def _make_v1_store(directory: Path, url: str | None) -> None:
    store = Store(directory, url=url)
    blob = "BYTEA" if store.engine.dialect.name == "postgresql" else "BLOB"
    with store.engine.begin() as db:
        db.execute(text("DROP TABLE summary_states"))
        db.execute(text(V1_SUMMARY_STATES.format(blob=blob)))
        # documents as versions 1 and 2 had them: no collection, the uri unique across the store
        for index in ("uq_documents_collection_uri", "ix_documents_collection", "ix_documents_uri"):
            db.execute(text(f"DROP INDEX {index}"))
        db.execute(text("ALTER TABLE documents DROP COLUMN collection"))
        db.execute(text("CREATE UNIQUE INDEX ix_documents_uri ON documents (uri)"))
        db.execute(text("UPDATE settings SET value = '1' WHERE key = 'schema_version'"))
    store.close()


def test_v1_store_is_migrated_backed_up_and_usable(tmp_path: Path, store_url: str | None) -> None:
    directory = tmp_path / "store"
    _make_v1_store(directory, store_url)
    store = Store(directory, url=store_url)
    assert store.setting("schema_version") == SCHEMA_VERSION == 3
    assert any("schema 1 -> 2" in m for m in store.migrations)
    assert any("schema 2 -> 3" in m for m in store.migrations)
    # SQLite's file is copied first; a PostgreSQL server is backed up by its operator (pg_dump).
    assert (directory / "memflow.db.schema-1.bak").exists() == (store_url is None)
    store.check_encoder("m", 4, record=True)
    store.check_index("Flat")
    document = make_document("One. Two.", uri="/d")
    from memflow.components.summarizers.centrality import CentralitySummarizer

    chunks = make_chunks(document, [(0, 4), (5, 9)], dimension=4)
    state = CentralitySummarizer(slots=1).summarize(chunks)
    store.write_documents([(document, chunks, state)])
    assert store.summary_states([1])[1].read_until == 9
    # after v3 the same uri may be in two collections, each its own document
    other = make_document("Three. Four.", uri="/d")
    store.write_documents([(other, make_chunks(other, [(0, 6)], dimension=4), None)], collection="tenant")
    assert store.collections() == {"default": 1, "tenant": 1}
    assert store.document("/d") is not None and store.document("/d", collection="tenant") is not None
    assert store.document_text(store.document("/d", collection="tenant").id) == "Three. Four."  # type: ignore[union-attr]
    assert Store(directory, url=store_url).migrations == []  # nothing left to do on the next open


def test_newer_store_is_refused(tmp_path: Path, store_url: str | None) -> None:
    store = Store(tmp_path / "store", url=store_url)
    with store.engine.begin() as db:
        db.execute(text("UPDATE settings SET value = '99' WHERE key = 'schema_version'"))
    store.close()
    with pytest.raises(StoreError, match="schema version 99, newer"):
        Store(tmp_path / "store", url=store_url)
