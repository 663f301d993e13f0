"""Building a vector memory from the SQL store and tuning its search parameter to a measured recall.

A rebuild reads the chunk vectors from SQL (the source of truth; :mod:`memflow.storage.vector_rows`),
trains the index the policy chose (:mod:`memflow.storage.index_policy`) on a random sample of them, adds
all of them in id order, streamed, and computes on the way the exact top 10 of ``TUNE_QUERIES`` random
stored vectors, against which :func:`tune` picks the cheapest ``nprobe`` or ``efSearch`` that reaches
``TARGET_RECALL``. The tuned value is saved with the index.
"""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from memflow.storage import vector_rows
from memflow.storage.index_policy import (
    AUTO,
    REFINE,
    TARGET_RECALL,
    TUNE_QUERIES,
    IndexPolicy,
    apply_search_parameters,
    training_size,
    tuning_ladder,
)
from memflow.storage.vectors import VectorMemory

__all__ = ["ExactTop", "tune", "build_from_sql"]


class ExactTop:
    """The exact top-k of some queries over vectors seen in batches (brute force, bounded memory), each
    query's own id left out: the truth recall is measured against."""

    def __init__(self, queries: npt.NDArray[np.float32], own: npt.NDArray[np.int64], k: int) -> None:
        self.queries, self.own, self.k = queries, own, k
        self.scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(queries), 0), dtype=np.int64)

    def update(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        scores = self.queries @ vectors.T
        scores[self.own[:, None] == ids[None, :]] = -np.inf
        scores = np.hstack([self.scores, scores])
        all_ids = np.hstack([self.ids, np.broadcast_to(ids, (len(self.queries), len(ids)))])
        keep = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        self.scores = np.take_along_axis(scores, keep, axis=1)
        self.ids = np.take_along_axis(all_ids, keep, axis=1)

    def recall(self, found: npt.NDArray[np.int64]) -> float:
        """Share of each query's true top-k (own id left out) among ``found`` (rows of candidate ids)."""
        hits = 0
        for own, truth, got in zip(self.own, self.ids, found, strict=True):
            hits += len({int(i) for i in truth if i >= 0} & {int(i) for i in got if i >= 0 and i != own})
        return hits / max(1, self.k * len(self.queries))


def tune(memory: VectorMemory, truth: ExactTop, *, target: float = TARGET_RECALL) -> dict[str, int]:
    """Set the memory's search parameter (IVF nprobe, HNSW efSearch) to the cheapest value whose recall@k
    on ``truth``'s queries (stored vectors, their own id left out) reaches ``target``; the largest tried
    when none does. Quantized indexes count what their re-ranked candidates hold. Returns what was set."""
    ladder = tuning_ladder(memory.kind)
    if ladder is None or memory.ntotal <= truth.k:
        return {}
    name, values = ladder
    inner = faiss.downcast_index(memory.index.index) if isinstance(memory.index, faiss.IndexIDMap2) else memory.index
    space = faiss.ParameterSpace()
    fetch = truth.k + 1
    if "PQ" in memory.kind or "SQ" in memory.kind:
        fetch = REFINE * truth.k + 1
    chosen = values[-1]
    for value in values:
        space.set_index_parameter(inner, name, value)
        _, found = memory.index.search(truth.queries, min(fetch, int(memory.index.ntotal)))
        if truth.recall(found) >= target:
            chosen = value
            break
    memory.tuned = {name: chosen}
    memory.search_params = apply_search_parameters(memory.index, memory.kind, memory.tuned)
    return memory.tuned


def build_from_sql(
    engine: Engine, *, dimension: int, factory: str, policy: IndexPolicy | None = None, seed: int = 0, batch: int = 8192
) -> VectorMemory:
    """A vector memory holding every chunk vector in SQL: for ``auto`` of the kind the policy chooses for
    the stored count (else ``factory``), trained on a random sample of the stored vectors when its kind
    needs training, every vector added in id order, its search parameter tuned. Its ``generation`` is the
    store generation the rows were read at (read first: rows committed meanwhile are caught up by the next
    resync)."""
    policy = policy or IndexPolicy.from_env()
    generation = vector_rows.stored_generation(engine)
    all_ids = vector_rows.chunk_ids(engine)
    count = len(all_ids)
    kind = policy.choose(count, dimension) if factory == AUTO else factory
    memory = VectorMemory(dimension=dimension, factory=factory, kind=kind, built_for=count, policy=policy)
    rng = np.random.default_rng(seed)
    need = memory.training_size()
    if need and count:
        size = min(count, max(need, training_size(memory.kind)))
        _, sample = vector_rows.vectors_of(engine, rng.choice(all_ids, size=size, replace=False))
        memory.train(sample)
    truth: ExactTop | None = None
    if tuning_ladder(memory.kind) is not None and count > TUNE_QUERIES:
        query_ids, queries = vector_rows.vectors_of(engine, rng.choice(all_ids, size=TUNE_QUERIES, replace=False))
        truth = ExactTop(queries, query_ids, 10)
    del all_ids
    for ids, vectors in vector_rows.iter_vectors(engine, batch=batch):
        memory.add(ids, vectors)
        if truth is not None:
            truth.update(ids, vectors)
    if truth is not None:
        tune(memory, truth)
    memory.generation = generation
    return memory
