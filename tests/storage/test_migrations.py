"""An older store is migrated forward on open, announced and backed up; a newer one is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from memflow.errors import StoreError
from memflow.storage.sql import SCHEMA_VERSION
from memflow.storage.store import Store
from memflow.testing import make_chunks, make_document

# The summary_states table as schema version 1 created it (before read_until existed).
V1_SUMMARY_STATES = """
CREATE TABLE summary_states (
    document_id INTEGER NOT NULL PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    capacity INTEGER NOT NULL, chunks_seen INTEGER NOT NULL, sentences_seen INTEGER NOT NULL,
    slots JSON NOT NULL, slot_vectors BLOB NOT NULL, centroid_sum BLOB NOT NULL
)"""


def _make_v1_store(directory: Path) -> None:
    store = Store(directory)
    store.close()
    with sqlite3.connect(directory / "memflow.db") as db:
        db.execute("DROP TABLE summary_states")
        db.execute(V1_SUMMARY_STATES)
        db.execute("UPDATE settings SET value = '1' WHERE key = 'schema_version'")


def test_v1_store_is_migrated_backed_up_and_usable(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    _make_v1_store(directory)
    store = Store(directory)
    assert store.setting("schema_version") == SCHEMA_VERSION == 2
    assert any("schema 1 -> 2" in m for m in store.migrations)
    assert (directory / "memflow.db.schema-1.bak").exists()
    store.check_encoder("m", 4, record=True)
    store.check_index("Flat")
    document = make_document("One. Two.", uri="/d")
    from memflow.components.summarizers.centrality import CentralitySummarizer

    chunks = make_chunks(document, [(0, 4), (5, 9)], dimension=4)
    state = CentralitySummarizer(slots=1).summarize(chunks)
    store.write_documents([(document, chunks, state)])
    assert store.summary_states([1])[1].read_until == 9
    assert Store(directory).migrations == []  # nothing left to do on the next open


def test_newer_store_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "store").close()
    with sqlite3.connect(tmp_path / "store" / "memflow.db") as db:
        db.execute("UPDATE settings SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        Store(tmp_path / "store")
