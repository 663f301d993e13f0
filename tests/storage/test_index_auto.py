"""``index: auto`` on real FAISS and real SQLite: Flat while small, IVF past a (lowered) threshold, rebuilt
from SQL as the memory grows or shrinks, correct after deletes, crash-safe, memory-mapped for readers, and
measured by ``memflow doctor``'s recall check."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from memflow.errors import StoreError
from memflow.storage.doctor import diagnose
from memflow.storage.index_policy import IndexPolicy
from memflow.storage.store import Store
from memflow.storage.vectors import INDEX_FILE, META_FILE, VectorMemory
from memflow.testing import make_chunks, make_document
from memflow.types import Chunk

DIM = 32
PER_DOC = 10
FLAT_MAX = 1000


@pytest.fixture(autouse=True)
def _small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMFLOW_INDEX_FLAT_MAX", str(FLAT_MAX))
    monkeypatch.delenv("MEMFLOW_INDEX_PARAMS", raising=False)


def _clustered(count: int, seed: int) -> np.ndarray:
    """Unit vectors around 40 fixed centres: neighbourhoods an index can find, as with real embeddings."""
    centres = np.random.default_rng(1234).standard_normal((40, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(len(centres), size=count)] + 0.35 * rng.standard_normal((count, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _write(store: Store, first: int, count: int, *, seed: int | None = None) -> list[Chunk]:
    """``count`` documents of PER_DOC chunks, named doc{first}.. (an existing name is replaced)."""
    text = " ".join(f"Sentence {n} here." for n in range(PER_DOC))
    spans, at = [], 0
    for n in range(PER_DOC):
        sentence = f"Sentence {n} here."
        spans.append((at, at + len(sentence)))
        at += len(sentence) + 1
    written: list[Chunk] = []
    batch = []
    for number in range(first, first + count):
        document = make_document(text, uri=f"/doc{number}")
        chunks = make_chunks(document, spans, dimension=DIM)
        vectors = _clustered(PER_DOC, seed=number if seed is None else seed * 100_003 + number)
        for chunk, vector in zip(chunks, vectors, strict=True):
            chunk.vector = vector
            chunk.sentence_vectors = vector.reshape(1, -1).astype(np.float16)
        batch.append((document, chunks, None))
        written.extend(chunks)
    store.write_documents(batch)
    return written


def _store(path: Path, index: str = "auto") -> Store:
    store = Store(path)
    store.check_encoder("test-model", DIM, record=True)
    store.check_index(index)
    return store


def _meta(store: Store) -> dict[str, object]:
    return dict(json.loads((store.directory / META_FILE).read_text()))


def _recall(store: Store, queries: np.ndarray) -> float:
    ids = np.asarray(store.chunk_ids_all(), dtype=np.int64)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(store.chunk_vectors([int(i) for i in ids]))
    _, truth = exact.search(queries, 10)
    _, found = store.vectors.search(queries, 10)
    return float(np.mean([len(set(ids[t].tolist()) & set(f.tolist())) / 10 for t, f in zip(truth, found, strict=True)]))


def test_policy_choices() -> None:
    policy = IndexPolicy(flat_max=100_000, ivfpq_min=8_000_000)
    assert policy.choose(99_999, 384) == "Flat"
    assert policy.choose(100_000, 384) == "IVF1024,Flat"
    assert policy.choose(1_000_000, 384) == "IVF4096,Flat"
    assert policy.choose(10_000_000, 384) == "IVF16384,PQ48"
    assert policy.needs_rebuild("Flat", 0, 100_000, 384)
    assert not policy.needs_rebuild("IVF1024,Flat", 100_000, 300_000, 384)  # grown less than 4x
    assert policy.needs_rebuild("IVF1024,Flat", 100_000, 400_000, 384)
    assert not policy.needs_rebuild("IVF1024,Flat", 100_000, 90_000, 384)  # no flip-flop at the threshold
    assert policy.needs_rebuild("IVF1024,Flat", 400_000, 90_000, 384)


def test_auto_is_exact_flat_while_small(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    chunks = _write(store, 0, 30)
    store.save_vectors()
    assert store.index_factory == "auto"
    assert _meta(store)["index"] == "Flat" and store.vectors.kind == "Flat"
    assert store.search(chunks[17].vector, 1)[0][0] == chunks[17].id  # type: ignore[arg-type]
    recall = {c.name: c for c in diagnose(store).checks}["recall"]
    assert recall.ok and "1.0 by construction" in recall.detail


def test_grows_into_ivf_then_rebuilds_and_shrinks_back(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    _write(store, 0, 60)
    store.save_vectors()
    assert store.vectors.kind == "Flat"  # 600 < FLAT_MAX
    _write(store, 60, 190)  # 2,500 vectors
    store.save_vectors()
    assert store.vectors.kind == "IVF256,Flat" and _meta(store)["index"] == "IVF256,Flat"
    tuned = _meta(store)["search"]  # nprobe measured on the build's own sample, saved with the index
    assert isinstance(tuned, dict) and 8 <= tuned["nprobe"] <= 256
    assert Store(store.directory).vectors.search_params == tuned  # and what readers search with
    assert sorted(store.vectors.ids().tolist()) == store.chunk_ids_all()
    queries = _clustered(100, seed=99)
    assert _recall(store, queries) >= 0.9
    report = {c.name: c for c in diagnose(store).checks}
    assert report["recall"].ok and "against exact search (200 stored vectors" in report["recall"].detail
    assert "auto (IVF256,Flat)" in report["vectors"].detail

    _write(store, 250, 500)  # 7,500: grown 3x, not 4x: the IVF index just takes them
    store.save_vectors()
    assert store.vectors.kind == "IVF256,Flat"
    _write(store, 750, 300)  # 10,500 vectors: 4x what it was built for, nlist doubles
    store.save_vectors()
    assert store.vectors.kind == "IVF512,Flat"
    assert _recall(store, queries) >= 0.9

    store.forget([f"/doc{n}" for n in range(50, 1050)])  # down to 500 vectors: back to exact search
    store.save_vectors()
    assert store.vectors.kind == "Flat" and store.vectors.ntotal == 500
    assert _recall(store, queries) == 1.0


def test_ivf_ids_stay_right_after_deletes_and_replacements(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    _write(store, 0, 150)
    store.save_vectors()
    assert store.vectors.kind.startswith("IVF")
    store.forget(["/doc0", "/doc3"])
    replaced = _write(store, 5, 2, seed=7)  # doc5, doc6 replaced with new vectors (new chunk ids)
    for chunk in [replaced[0], replaced[13]]:
        assert store.search(chunk.vector, 1)[0][0] == chunk.id  # type: ignore[arg-type]
    kept = store.chunks([store.chunk_ids_all()[500]])[0]
    vector = store.chunk_vectors([kept.id])[0]
    assert store.search(vector, 1)[0][0] == kept.id
    assert sorted(store.vectors.ids().tolist()) == store.chunk_ids_all()


def test_crash_before_save_and_lost_file_are_caught_up_from_sql(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    _write(store, 0, 150)
    store.save_vectors()
    saved_generation = _meta(store)["generation"]
    late = _write(store, 150, 20)  # committed, never saved: a crash here loses only the FAISS update
    store.close()

    reopened = Store(tmp_path / "store")
    memory = reopened.vectors
    assert memory.kind == "IVF128,Flat" and memory.generation == reopened.generation != saved_generation
    assert sorted(memory.ids().tolist()) == reopened.chunk_ids_all()
    assert reopened.search(late[3].vector, 1)[0][0] == late[3].id  # type: ignore[arg-type]
    reopened.close()

    (tmp_path / "store" / INDEX_FILE).unlink()
    lost = Store(tmp_path / "store")
    assert lost.vectors.ntotal == 1700 and lost.vectors.kind == "Flat"  # caught up exactly, no training
    with lost.writer():
        lost.save_vectors()  # the writer's save re-chooses: 1,700 vectors want IVF again
    assert _meta(lost)["index"] == "IVF128,Flat" and _meta(lost)["generation"] == lost.generation
    assert diagnose(lost).ok


def test_readers_map_the_file_and_can_still_catch_up_and_write(tmp_path: Path) -> None:
    writer = _store(tmp_path / "store")
    _write(writer, 0, 150)
    with writer.writer():
        writer.save_vectors()
        assert not writer.vectors.mapped  # the writer holds an index it can change

    reader = Store(tmp_path / "store")
    memory = reader.vectors
    assert memory.mapped
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(memory.index).invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists)  # IVF lists are mapped from the file itself

    late = _write(writer, 150, 5)  # committed by the writer, not saved: the reader catches up from SQL
    assert reader.search(late[0].vector, 1)[0][0] == late[0].id  # type: ignore[arg-type]
    assert not reader.vectors.mapped  # copied into memory to take the new vectors
    with reader.writer():  # the same store object, now writing
        more = _write(reader, 155, 3)
        reader.save_vectors()
    assert reader.search(more[4].vector, 1)[0][0] == more[4].id  # type: ignore[arg-type]

    flat = _store(tmp_path / "flat", index="Flat")
    _write(flat, 0, 3)
    flat.save_vectors()
    mapped = VectorMemory.load(flat.directory, dimension=DIM, factory="Flat", mmap=True)
    assert mapped.mapped and mapped.ntotal == 30  # Flat codes mapped zero-copy
    mapped.add(np.array([999], dtype=np.int64), _clustered(1, seed=5))  # copied first, never written through
    assert mapped.ntotal == 31 and not mapped.mapped


def test_explicit_indexes_are_kept_and_old_flat_stores_stay_flat(tmp_path: Path) -> None:
    old = _store(tmp_path / "old", index="Flat")
    old.check_index("auto")  # the new default pipeline on a store created with the old one
    _write(old, 0, 150)
    old.save_vectors()
    assert old.index_factory == "Flat" and _meta(old)["index"] == "Flat"
    auto = _store(tmp_path / "auto")
    with pytest.raises(StoreError, match="HNSW32"):
        auto.check_index("HNSW32")


def test_doctor_warns_on_low_recall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path / "store")
    _write(store, 0, 250)
    store.save_vectors()
    monkeypatch.setenv("MEMFLOW_INDEX_PARAMS", "nprobe=1")
    low = Store(tmp_path / "store")
    check = {c.name: c for c in diagnose(low).checks}["recall"]
    assert not check.ok and check.warning and "nprobe=1" in check.detail and "nprobe=" in check.detail
    assert str(check).lstrip().startswith("warn") and diagnose(low).ok  # a warning, not damage


@pytest.mark.parametrize("factory", ["IVF16,Flat", "IVF16,PQ8", "HNSW16"])
def test_explicit_index_deletes_keep_the_other_ids_right(factory: str, tmp_path: Path) -> None:
    vectors = _clustered(1000, seed=3)
    ids = np.arange(5000, 6000, dtype=np.int64)
    memory = VectorMemory(dimension=DIM, factory=factory)
    memory.add(ids, vectors)
    assert memory.remove(ids[:7]) == 7
    memory.exact = lambda wanted: (np.sort(wanted), vectors[np.sort(wanted) - 5000])  # re-rank PQ exactly
    _, found = memory.search(vectors[100:110], 1)
    assert found[:, 0].tolist() == ids[100:110].tolist()  # an id map over IVF would answer 107..116
    memory.save(tmp_path, generation=1)
    assert (
        sorted(VectorMemory.load(tmp_path, dimension=DIM, factory=factory, mmap=True).ids().tolist())
        == ids[7:].tolist()
    )


def test_an_id_map_over_ivf_from_before_is_rebuilt_from_sql(tmp_path: Path) -> None:
    store = _store(tmp_path / "store", index="IVF16,Flat")
    chunks = _write(store, 0, 100)
    store.save_vectors()
    old = faiss.IndexIDMap2(faiss.index_factory(DIM, "IVF16,Flat", faiss.METRIC_INNER_PRODUCT))
    vectors = np.vstack([c.vector for c in chunks])  # type: ignore[misc]
    old.train(vectors)
    old.add_with_ids(vectors, np.asarray([c.id for c in chunks], dtype=np.int64))
    faiss.write_index(old, str(store.directory / INDEX_FILE))  # the layout explicit IVF stores had
    reopened = Store(store.directory)
    assert not isinstance(reopened.vectors.index, faiss.IndexIDMap2)
    assert sorted(reopened.vectors.ids().tolist()) == reopened.chunk_ids_all()
