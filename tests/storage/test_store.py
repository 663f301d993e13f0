"""The SQL + FAISS store on real SQLite: writes, replacement, forgetting, resync after a lost FAISS save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memflow.errors import ModelMismatchError, StoreError, StoreLockedError
from memflow.storage.store import Store
from memflow.storage.vectors import INDEX_FILE, META_FILE
from memflow.testing import make_chunks, make_document

TEXT = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu."
SPANS = [(0, 17), (18, 36), (37, 52), (53, 71)]


def _store(tmp_path: Path, store_url: str | None) -> Store:
    store = Store(tmp_path / "store", url=store_url)
    store.check_encoder("test-model", 384, record=True)
    store.check_index("Flat")
    return store


def test_write_then_search_and_read_back_exact_spans(tmp_path: Path, store_url: str | None) -> None:
    store = _store(tmp_path, store_url)
    doc = make_document(TEXT, uri="/corpus/a.txt", title="A")
    chunks = make_chunks(doc, SPANS)
    store.write_documents([(doc, chunks, None)])
    assert all(c.id is not None for c in chunks)
    found = store.search(chunks[2].vector, 1)  # type: ignore[arg-type]
    assert found[0][0] == chunks[2].id
    stored = store.chunks([chunks[2].id])[0]  # type: ignore[list-item]
    assert TEXT[stored.start : stored.end] == stored.text == chunks[2].text
    assert stored.sentences[0].text == chunks[2].text
    assert stored.sentence_vectors.dtype == np.float16
    assert store.stats().chunks == 4 and store.stats().vectors == 4


def test_rewriting_a_document_replaces_its_chunks_and_vectors(tmp_path: Path, store_url: str | None) -> None:
    store = _store(tmp_path, store_url)
    doc = make_document(TEXT, uri="/corpus/a.txt")
    store.write_documents([(doc, make_chunks(doc, SPANS), None)])
    changed = make_document(TEXT + " Nu xi.", uri="/corpus/a.txt")
    new_chunks = make_chunks(changed, SPANS[:2], seed=1)
    store.write_documents([(changed, new_chunks, None)])
    stats = store.stats()
    assert (stats.documents, stats.chunks, stats.vectors) == (1, 2, 2)
    assert sorted(store.vectors.ids().tolist()) == sorted(c.id for c in new_chunks)  # type: ignore[misc]
    assert store.document_hashes(["/corpus/a.txt"]) == {"/corpus/a.txt": changed.content_hash}


def test_one_batch_writes_many_documents_and_a_repeated_uri_keeps_its_last_version(
    tmp_path: Path, store_url: str | None
) -> None:
    store = _store(tmp_path, store_url)
    docs = [make_document(f"{TEXT} {n}", uri=f"/d{n}") for n in range(5)]
    again = make_document(TEXT + " Nu xi.", uri="/d2")
    batch = [(d, make_chunks(d, SPANS, seed=n), None) for n, d in enumerate(docs)]
    batch.append((again, make_chunks(again, SPANS[:1], seed=9), None))
    store.write_documents(batch)
    stats = store.stats()
    assert (stats.documents, stats.chunks, stats.vectors) == (5, 17, 17)
    assert store.document_hashes(["/d2"]) == {"/d2": again.content_hash}
    ids = store.chunk_ids_all()
    assert ids == sorted(store.vectors.ids().tolist()) and len(set(ids)) == 17
    # chunks of each document keep their order and their own document
    for document in docs[:2]:
        found = store.find_document(document.uri)
        assert found is not None and found.chunk_count == 4
    assert store.forget(["/d0", "/d1", "/nowhere"]) == 2
    assert store.stats().chunks == 9


def test_forget_removes_rows_and_vectors(tmp_path: Path, store_url: str | None) -> None:
    store = _store(tmp_path, store_url)
    a, b = make_document(TEXT, uri="/a"), make_document(TEXT, uri="/b")
    store.write_documents([(a, make_chunks(a, SPANS), None), (b, make_chunks(b, SPANS, seed=2), None)])
    assert store.forget(["/a"]) == 1
    stats = store.stats()
    assert (stats.documents, stats.chunks, stats.vectors) == (1, 4, 4)


def test_vectors_lost_before_save_are_rebuilt_from_sql_on_open(tmp_path: Path, store_url: str | None) -> None:
    store = _store(tmp_path, store_url)
    a = make_document(TEXT, uri="/a")
    store.write_documents([(a, make_chunks(a, SPANS), None)])
    store.save_vectors()
    b = make_document(TEXT, uri="/b")
    b_chunks = make_chunks(b, SPANS, seed=3)
    store.write_documents([(b, b_chunks, None)])  # committed in SQL, never saved to the FAISS file
    store.close()
    reopened = Store(tmp_path / "store", url=store_url)
    assert reopened.vectors.ntotal == 8
    assert reopened.search(b_chunks[1].vector, 1)[0][0] == b_chunks[1].id  # type: ignore[arg-type]


def _two_documents_saved(tmp_path: Path, store_url: str | None) -> Store:
    """A store holding /a then /b (the newest, with the largest chunk ids), its FAISS file saved."""
    store = _store(tmp_path, store_url)
    a, b = make_document(TEXT, uri="/a"), make_document(TEXT, uri="/b")
    store.write_documents([(a, make_chunks(a, SPANS), None), (b, make_chunks(b, SPANS, seed=1), None)])
    store.save_vectors()
    return store


def test_replacing_the_newest_document_before_a_save_never_leaves_its_old_vectors(
    tmp_path: Path, store_url: str | None
) -> None:
    # The newest document's chunks hold the largest ids: a store that let SQL reuse them would give the
    # new chunks the ids the (older) FAISS file holds with the old vectors, and a catch-up by id would keep them.
    store = _two_documents_saved(tmp_path, store_url)
    old_ids = set(store.chunk_ids_all())
    changed = make_document(TEXT + " Nu xi.", uri="/b")
    new_chunks = make_chunks(changed, SPANS, seed=2)
    store.write_documents([(changed, new_chunks, None)])  # committed, never saved to the FAISS file
    assert not {c.id for c in new_chunks} & old_ids
    store.close()
    reopened = Store(tmp_path / "store", url=store_url)
    ids = reopened.chunk_ids_all()
    assert sorted(reopened.vectors.ids().tolist()) == ids
    stored = np.vstack([reopened.vectors.index.reconstruct(int(i)) for i in ids])
    np.testing.assert_allclose(stored, reopened.chunk_vectors(ids), atol=1e-6)
    reopened.close()


def test_a_store_from_before_the_id_counter_starts_past_every_id_sql_or_the_file_holds(
    tmp_path: Path, store_url: str | None
) -> None:
    from sqlalchemy import delete, select
    from sqlalchemy.orm import Session

    from memflow.storage.sql import ChunkRow, DocumentRow, SettingRow
    from memflow.storage.store import NEXT_CHUNK_ID

    store = _two_documents_saved(tmp_path, store_url)
    in_file = max(store.vectors.ids().tolist())
    # an older store, crashed after deleting its newest document and before saving the FAISS file
    with Session(store.engine) as session, session.begin():
        newest = session.scalar(select(DocumentRow.id).where(DocumentRow.uri == "/b"))
        session.execute(delete(ChunkRow).where(ChunkRow.document_id == newest))
        session.execute(delete(DocumentRow).where(DocumentRow.id == newest))
        session.execute(delete(SettingRow).where(SettingRow.key == NEXT_CHUNK_ID))
        generation = session.get(SettingRow, "generation")
        assert generation is not None
        generation.value = int(generation.value) + 1  # every committed delete moves the generation
    store.close()
    reopened = Store(tmp_path / "store", url=store_url)
    c = make_document(TEXT, uri="/c")
    c_chunks = make_chunks(c, SPANS, seed=2)
    reopened.write_documents([(c, c_chunks, None)])
    assert min(chunk.id for chunk in c_chunks) > in_file  # type: ignore[operator]
    assert sorted(reopened.vectors.ids().tolist()) == reopened.chunk_ids_all()
    reopened.close()


def test_the_first_write_into_a_new_store_adds_each_vector_once(tmp_path: Path, store_url: str | None) -> None:
    store = _store(tmp_path, store_url)
    a = make_document(TEXT, uri="/a")
    store.write_documents([(a, make_chunks(a, SPANS), None)])
    ids = store.vectors.ids().tolist()
    assert sorted(ids) == store.chunk_ids_all() and len(ids) == 4
    store.save_vectors()
    assert Store(tmp_path / "store", url=store_url).vectors.ntotal == 4


def test_a_reader_sees_each_commit_at_once(tmp_path: Path, store_url: str | None) -> None:
    # Commits a few microseconds apart must each be visible: no cached generation may hide one.
    writer = _store(tmp_path, store_url)
    reader = Store(tmp_path / "store", url=store_url)
    for n in range(20):
        doc = make_document(f"{TEXT} {n}", uri=f"/doc{n}")
        writer.write_documents([(doc, make_chunks(doc, SPANS[:1], seed=n), None)])
        assert reader.generation == writer.generation == n + 1
        assert reader.vectors.ntotal == n + 1
    reader.close()
    writer.close()


def test_missing_faiss_file_is_rebuilt(tmp_path: Path, store_url: str | None) -> None:
    store = _store(tmp_path, store_url)
    a = make_document(TEXT, uri="/a")
    store.write_documents([(a, make_chunks(a, SPANS), None)])
    store.save_vectors()
    store.close()
    (tmp_path / "store" / INDEX_FILE).unlink()
    (tmp_path / "store" / META_FILE).unlink()
    assert Store(tmp_path / "store", url=store_url).vectors.ntotal == 4


def test_store_refuses_another_encoder_or_index(tmp_path: Path, store_url: str | None) -> None:
    store = _store(tmp_path, store_url)
    with pytest.raises(ModelMismatchError, match="test-model"):
        store.check_encoder("other-model", 384, record=True)
    with pytest.raises(ModelMismatchError, match="768"):
        store.check_encoder("test-model", 768, record=False)
    with pytest.raises(StoreError, match="HNSW32"):
        store.check_index("HNSW32")


def test_empty_store_search_says_ingest_first(tmp_path: Path, store_url: str | None) -> None:
    store = Store(tmp_path / "empty", url=store_url)
    with pytest.raises(StoreError, match="ingest"):
        store.search(np.zeros(384, dtype=np.float32), 5)


def test_second_writer_waits_then_fails_with_a_clear_message(tmp_path: Path, store_url: str | None) -> None:
    first, second = _store(tmp_path, store_url), Store(tmp_path / "store", url=store_url)
    with first.writer(), pytest.raises(StoreLockedError, match="another process"), second.writer(timeout=0.2):
        pass


@pytest.mark.postgres
def test_writers_on_other_machines_share_one_postgresql_lock(tmp_path: Path, postgres_url: str) -> None:
    """Two store directories (two machines) on one PostgreSQL schema: the advisory lock lets one write."""
    here, there = Store(tmp_path / "here", url=postgres_url), Store(tmp_path / "there", url=postgres_url)
    with here.writer():
        with pytest.raises(StoreLockedError, match="PostgreSQL advisory lock"), there.writer(timeout=0.3):
            pass
        with here.writer():  # re-entrant in the holding process
            pass
    with there.writer():  # released when the holder leaves
        pass


@pytest.mark.postgres
def test_another_schema_is_another_lock(tmp_path: Path, postgres_url: str) -> None:
    import sqlalchemy

    schema = "memflow_other_" + tmp_path.name[-8:].replace("-", "_").lower()
    admin = sqlalchemy.create_engine(postgres_url.split("?")[0], isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        first = Store(tmp_path / "first", url=postgres_url)
        second = Store(tmp_path / "second", url=f"{postgres_url.split('?')[0]}?options=-csearch_path%3D{schema}")
        with first.writer(), second.writer(timeout=0.3):
            pass
        first.close()
        second.close()
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
