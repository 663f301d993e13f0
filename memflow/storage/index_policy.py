"""Which FAISS index a vector memory uses, and how it searches.

``index: auto`` (the ``storage.writer`` param; the store records it) lets the size of the memory decide:

- below ``flat_max`` vectors (100,000): ``Flat``, exact inner product, nothing to train. Exact search is
  linear in the size: one query on one thread took 57 ms over 1M 384-dim vectors here (bench/scale.py),
  so ~6 ms at 100k, under the ~15 ms of encoding the query; past that, exact search dominates a query
  while an IVF index answers in a few ms, and its rebuild (13 s at 100k) is worth paying;
- from there: ``IVF{nlist},Flat`` with ``nlist`` the power of two nearest 4·√n; trained on a random sample
  of the stored vectors, deletes by id, loads memory-mapped for readers;
- from ``ivfpq_min`` vectors (8,000,000, where IVF-Flat's vectors alone would take 12 GB of RAM at 384
  dims): ``IVF{nlist},PQ{m}`` with ``m = dim/8`` (a byte per 8 dimensions, 48 bytes a vector at 384), whose
  approximate scores are re-ranked exactly from the stored vectors when the store can supply them.

The choice is re-made when the memory grows: from Flat when it crosses ``flat_max``, and within IVF when it
has grown ``growth`` (4) times since the index was built, which doubles nlist; it shrinks back only when
the memory is ``growth`` times smaller than the index was built for, so a memory hovering around a threshold
never flips back and forth. A rebuild reads the vectors from SQL (the source of truth), trains on a random
sample of them and adds all of them (:func:`build_from_sql`).

Search parameters are measured, not guessed: a build from SQL also computes the exact top 10 of 200 random
stored vectors (brute force while the vectors stream past) and sets ``nprobe`` (IVF) or ``efSearch`` (HNSW,
from 64) to the cheapest value whose recall@10 on them reaches 0.95 (:func:`tune`); it is saved with the
index. Stored vectors are easier queries than real ones: on MiniLM embeddings of Gutenberg text (20,000,
IVF512) the nprobe that gives them 0.95 gives perturbed-text queries 0.91, and on the 1M-chunk benchmark
corpus the tuned IVF4096 reached 0.954 on perturbed-text queries (bench/results/scale.txt). An index not
built from SQL probes nlist/8 lists (at least 16) or explores efSearch=128; on the same MiniLM sample
nlist/16 gave perturbed-text queries recall@10 0.84 and nlist/8 0.91.

Thresholds can be changed with ``MEMFLOW_INDEX_FLAT_MAX`` and ``MEMFLOW_INDEX_IVFPQ_MIN``; search parameters
of any index with ``MEMFLOW_INDEX_PARAMS`` in FAISS ParameterSpace syntax, e.g. ``nprobe=128,efSearch=256``.
An explicit factory string (``Flat``, ``HNSW32``, ``IVF256,PQ32``, ...) is used as given, never re-chosen;
its search parameters follow the same rules (nprobe of IVF, efSearch of HNSW).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import faiss
import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from memflow.errors import StoreError
from memflow.storage.sql import ChunkRow, SettingRow

if TYPE_CHECKING:
    from memflow.storage.vectors import VectorMemory

__all__ = ["AUTO", "IndexPolicy", "ExactTop", "search_parameters", "apply_search_parameters", "nlist_of",
           "is_approximate", "build_from_sql", "training_size", "tune", "tuning_ladder"]

AUTO = "auto"
FLAT_MAX = 100_000
IVFPQ_MIN = 8_000_000
GROWTH = 4
EF_SEARCH = 128
#: What a rebuild tunes the search parameter for: recall@10 against exact search on stored vectors.
TARGET_RECALL = 0.95
TUNE_QUERIES = 200
#: Quantized indexes fetch this many times k candidates, re-ranked with the exact vectors.
REFINE = 4
PARAMS_ENV = "MEMFLOW_INDEX_PARAMS"
#: Points per centroid in an IVF training sample (FAISS wants at least 39; more buys little).
TRAIN_PER_LIST = 64
_IVF = re.compile(r"IVF(\d+)")


@dataclass(frozen=True, slots=True)
class IndexPolicy:
    """The size thresholds of ``index: auto``."""

    flat_max: int = FLAT_MAX
    ivfpq_min: int = IVFPQ_MIN
    growth: int = GROWTH

    @classmethod
    def from_env(cls) -> IndexPolicy:
        def number(name: str, default: int) -> int:
            raw = os.environ.get(name, "").strip()
            try:
                return max(1, int(raw.replace("_", ""))) if raw else default
            except ValueError:
                raise StoreError(f"${name} must be a whole number, not {raw!r}") from None

        return cls(flat_max=number("MEMFLOW_INDEX_FLAT_MAX", FLAT_MAX),
                   ivfpq_min=number("MEMFLOW_INDEX_IVFPQ_MIN", IVFPQ_MIN))

    def choose(self, count: int, dimension: int) -> str:
        """The factory string for a memory of ``count`` vectors."""
        if count < self.flat_max:
            return "Flat"
        nlist = _nlist_for(count)
        if count < self.ivfpq_min:
            return f"IVF{nlist},Flat"
        return f"IVF{nlist},PQ{_pq_m(dimension)}"

    def needs_rebuild(self, kind: str, built_for: int, count: int, dimension: int) -> bool:
        """Whether a memory built as ``kind`` for ``built_for`` vectors should be rebuilt now it holds
        ``count``: grown across a threshold or ``growth`` times, or shrunk ``growth`` times."""
        target = self.choose(count, dimension)
        if target == kind:
            return False
        if kind == "Flat":
            return count >= self.flat_max
        if _tier(target) > _tier(kind):
            return True
        built_for = max(built_for, 1)
        return count >= self.growth * built_for or count * self.growth <= built_for


def _tier(kind: str) -> int:
    return 0 if kind == "Flat" else 2 if "PQ" in kind else 1


def _nlist_for(count: int) -> int:
    """The power of two nearest 4·√count (at least 64)."""
    exponent = int(round(math.log2(4 * math.sqrt(max(count, 1)))))
    return max(64, 1 << exponent)


def _pq_m(dimension: int) -> int:
    """Sub-quantizers for PQ: about one per 8 dimensions, and a divisor of the dimension."""
    target = max(1, dimension // 8)
    return min((m for m in range(1, dimension + 1) if dimension % m == 0), key=lambda m: (abs(m - target), -m))


def nlist_of(kind: str) -> int | None:
    match = _IVF.search(kind)
    return int(match.group(1)) if match else None


def is_approximate(kind: str) -> bool:
    """Whether an index built from ``kind`` can miss a true nearest neighbour (everything but Flat)."""
    return kind.strip() not in ("Flat", "IDMap,Flat", "IDMap2,Flat")


def training_size(kind: str) -> int:
    """How many vectors a rebuild trains ``kind`` on: TRAIN_PER_LIST per IVF list, and for PQ at least
    64 per code of each sub-quantizer's 256."""
    nlist = nlist_of(kind) or 0
    return max(TRAIN_PER_LIST * nlist, 256 * 64 if "PQ" in kind else 0)


def search_parameters(kind: str, tuned: dict[str, int] | None = None) -> dict[str, int]:
    """Search-time parameters for an index built from ``kind``: what it was ``tuned`` to when built from
    SQL (see :func:`tune`), else IVF probes nlist/8 lists (at least 16), HNSW explores efSearch=128
    candidates. ``$MEMFLOW_INDEX_PARAMS`` overrides all of them."""
    params: dict[str, int] = {}
    nlist = nlist_of(kind)
    if nlist:
        params["nprobe"] = min(nlist, max(16, nlist // 8))
    if "HNSW" in kind:
        params["efSearch"] = EF_SEARCH
    params.update(tuned or {})
    override = os.environ.get(PARAMS_ENV, "").strip()
    for item in filter(None, (part.strip() for part in override.split(","))):
        name, _, value = item.partition("=")
        try:
            params[name.strip()] = int(value)
        except ValueError:
            raise StoreError(f"${PARAMS_ENV}: {item!r} is not name=integer (e.g. nprobe=64,efSearch=256)") from None
    return params


def apply_search_parameters(index: faiss.Index, kind: str, tuned: dict[str, int] | None = None) -> dict[str, int]:
    """Set the search parameters of ``index`` (an ``IndexIDMap2`` or a bare index); returns those set.
    Parameters the index does not have (nprobe of a Flat index) are left out."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    space = faiss.ParameterSpace()
    applied: dict[str, int] = {}
    for name, value in search_parameters(kind, tuned).items():
        try:
            space.set_index_parameter(inner, name, value)
        except RuntimeError:
            continue
        applied[name] = value
    return applied


def tuning_ladder(kind: str) -> tuple[str, list[int]] | None:
    """The search parameter :func:`tune` sets for ``kind`` and the values it tries, cheapest first."""
    nlist = nlist_of(kind)
    if nlist:
        return "nprobe", [v for v in (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if v < nlist] + [nlist]
    if "HNSW" in kind:
        # From 64: a stored vector is a node of the graph, so stored-vector queries overstate HNSW's recall
        # far more than IVF's (efSearch=16 on MiniLM embeddings: 0.97 for them, 0.89 for perturbed texts).
        return "efSearch", [64, 128, 256, 512, 1024]
    return None


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


def sql_vectors(engine: Engine, ids: npt.NDArray[np.int64], *, batch: int = 4096
                ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The stored vectors of ``ids`` (those that exist), in ascending id order."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    found: list[npt.NDArray[np.int64]] = []
    vectors: list[npt.NDArray[np.float32]] = []
    with Session(engine) as session:
        for start in range(0, len(ids), batch):
            part = [int(i) for i in ids[start : start + batch]]
            rows = session.execute(select(ChunkRow.id, ChunkRow.vector).where(ChunkRow.id.in_(part))
                                   .order_by(ChunkRow.id)).all()
            if rows:
                found.append(np.asarray([r[0] for r in rows], dtype=np.int64))
                vectors.append(np.vstack([np.frombuffer(r[1], dtype="<f4") for r in rows]))
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(found), np.vstack(vectors)


def build_from_sql(engine: Engine, make: Callable[[int], VectorMemory], *, seed: int = 0, batch: int = 8192
                   ) -> tuple[VectorMemory, int]:
    """A vector memory holding every chunk vector in SQL: ``make(count)`` creates it empty (of the kind
    wanted for ``count`` vectors); it is trained on a random sample of the stored vectors when its kind
    needs training, then every vector is added in id order, streamed in batches. Returns it with the store
    generation the rows were read at (read first: rows committed meanwhile are caught up by the next resync).
    """
    with Session(engine) as session:
        generation_row = session.get(SettingRow, "generation")
        generation = int(generation_row.value) if generation_row is not None else 0
        all_ids = np.fromiter(session.scalars(select(ChunkRow.id)), dtype=np.int64)
    memory = make(len(all_ids))
    rng = np.random.default_rng(seed)
    need = memory.training_size()
    if need and len(all_ids):
        size = min(len(all_ids), max(need, training_size(memory.kind)))
        _, sample = sql_vectors(engine, rng.choice(all_ids, size=size, replace=False))
        memory.train(sample)
    truth: ExactTop | None = None
    if tuning_ladder(memory.kind) is not None and len(all_ids) > TUNE_QUERIES:
        query_ids, queries = sql_vectors(engine, rng.choice(all_ids, size=TUNE_QUERIES, replace=False))
        truth = ExactTop(queries, query_ids, 10)
    del all_ids
    with Session(engine) as session:
        rows = session.execute(select(ChunkRow.id, ChunkRow.vector).order_by(ChunkRow.id)).yield_per(batch)
        for part in rows.partitions(batch):
            ids = np.asarray([r[0] for r in part], dtype=np.int64)
            vectors = np.vstack([np.frombuffer(r[1], dtype="<f4") for r in part])
            memory.add(ids, vectors)
            if truth is not None:
                truth.update(ids, vectors)
    if truth is not None:
        tune(memory, truth)
    return memory, generation
