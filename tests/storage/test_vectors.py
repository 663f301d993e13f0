"""The FAISS vector memory: ids are chunk ids, deletes by id, atomic save, every factory type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memflow.errors import StoreError
from memflow.storage.vectors import INDEX_FILE, VectorMemory


def _unit(rows: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF4,Flat"])
def test_search_returns_chunk_ids_and_deletes_by_id(factory: str) -> None:
    memory = VectorMemory(dimension=16, factory=factory)
    vectors = _unit(400)
    ids = np.arange(1000, 1400, dtype=np.int64)
    memory.add(ids, vectors)
    scores, found = memory.search(vectors[7], 1)
    assert found[0][0] == 1007
    assert scores[0][0] == pytest.approx(1.0, abs=1e-4)
    assert memory.remove(np.array([1007], dtype=np.int64)) == 1
    _, found = memory.search(vectors[7], 5)
    assert 1007 not in found[0]
    assert memory.ntotal == 399


def test_save_is_atomic_and_round_trips(tmp_path: Path) -> None:
    memory = VectorMemory(dimension=16)
    memory.add(np.array([5, 9], dtype=np.int64), _unit(2))
    memory.save(tmp_path, generation=3)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    loaded = VectorMemory.load(tmp_path, dimension=16, factory="Flat")
    assert loaded.generation == 3
    assert sorted(loaded.ids().tolist()) == [5, 9]


def test_damaged_file_loads_as_empty_for_rebuild(tmp_path: Path) -> None:
    (tmp_path / INDEX_FILE).write_bytes(b"not a faiss index")
    loaded = VectorMemory.load(tmp_path, dimension=16, factory="Flat")
    assert loaded.ntotal == 0 and loaded.generation == -1


def test_bad_factory_string_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="factory"):
        VectorMemory(dimension=16, factory="NoSuchIndex")


def test_wrong_dimension_is_refused() -> None:
    memory = VectorMemory(dimension=16)
    with pytest.raises(StoreError, match="dimension"):
        memory.add(np.array([1], dtype=np.int64), _unit(1, dim=8))


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF16,Flat", "IVF16,PQ4"])
@pytest.mark.parametrize("share", [0.01, 0.5])
def test_a_filtered_search_finds_the_best_allowed_ids(factory: str, share: float) -> None:
    vectors = _unit(2000, seed=3)
    ids = np.arange(5000, 7000, dtype=np.int64)
    memory = VectorMemory(dimension=16, factory=factory)
    if memory.approximate:
        memory.train(vectors)
    memory.add(ids, vectors)
    # the exact vectors an approximate index re-scores from (the store's SQL rows)
    memory.exact = lambda wanted: (wanted, vectors[wanted - 5000])
    rng = np.random.default_rng(4)
    allowed = np.sort(rng.choice(ids, size=int(share * len(ids)), replace=False))
    query = _unit(1, seed=5)[0]
    scores, found = memory.search(query, 10, allowed=allowed)
    assert len(found[0]) == 10 and set(found[0].tolist()) <= set(allowed.tolist())
    truth = allowed[np.argsort(-(vectors[allowed - 5000] @ query))[:10]]
    recall = len(set(found[0].tolist()) & set(truth.tolist())) / 10
    assert recall >= (1.0 if factory == "Flat" or share == 0.01 else 0.6)
    # an empty allowed set finds nothing; fewer allowed ids than k pad with -1
    assert (memory.search(query, 5, allowed=np.zeros(0, dtype=np.int64))[1] == -1).all()
    few = memory.search(query, 5, allowed=allowed[:2])[1][0]
    assert sorted(few[:2].tolist()) == sorted(allowed[:2].tolist()) and (few[2:] == -1).all()
