"""Which FAISS index a vector memory uses, and how it searches: the policy alone, no building.

``index: auto`` (the ``storage.writer`` param; the store records it) lets the size of the memory decide:

- below ``flat_max`` vectors (100,000): ``Flat``, exact inner product, nothing to train. Exact search is
  linear in the size; past this size it costs more than encoding the query, while an IVF index answers in
  a few ms and its rebuild is worth paying (bench/scale.py measures both);
- from there: ``IVF{nlist},Flat`` with ``nlist`` the power of two nearest 4·√n; trained on a random sample
  of the stored vectors, deletes by id, loads memory-mapped for readers;
- from ``ivfpq_min`` vectors (8,000,000, where IVF-Flat's vectors alone would take 12 GB of RAM at 384
  dims): ``IVF{nlist},PQ{m}`` with ``m = dim/8`` (a byte per 8 dimensions, 48 bytes a vector at 384), whose
  approximate scores are re-ranked exactly from the stored vectors when the store can supply them.

The choice is re-made when the memory grows: from Flat when it crosses ``flat_max``, and within IVF when it
has grown ``growth`` (4) times since the index was built, which doubles nlist; it shrinks back only when
the memory is ``growth`` times smaller than the index was built for, so a memory hovering around a threshold
never flips back and forth. Rebuilding from SQL, and tuning the search parameter on the way, is
:mod:`memflow.storage.index_build`.

Search parameters: an index built from SQL is tuned to the cheapest ``nprobe`` (IVF) or ``efSearch`` (HNSW)
whose recall@10 on stored vectors reaches ``TARGET_RECALL``; an index not built from SQL probes nlist/8
lists (at least 16) or explores efSearch=128. Stored vectors are easier queries than real ones, so the
target sits above the recall a real query needs (bench/RESULTS.md has the measured gap).

Thresholds can be changed with ``MEMFLOW_INDEX_FLAT_MAX`` and ``MEMFLOW_INDEX_IVFPQ_MIN``; search parameters
of any index with ``MEMFLOW_INDEX_PARAMS`` in FAISS ParameterSpace syntax, e.g. ``nprobe=128,efSearch=256``.
An explicit factory string (``Flat``, ``HNSW32``, ``IVF256,PQ32``, ...) is used as given, never re-chosen;
its search parameters follow the same rules (nprobe of IVF, efSearch of HNSW).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memflow.errors import StoreError

if TYPE_CHECKING:
    import faiss

__all__ = [
    "AUTO",
    "IndexPolicy",
    "search_parameters",
    "apply_search_parameters",
    "nlist_of",
    "is_approximate",
    "training_size",
    "tuning_ladder",
]

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

        return cls(
            flat_max=number("MEMFLOW_INDEX_FLAT_MAX", FLAT_MAX), ivfpq_min=number("MEMFLOW_INDEX_IVFPQ_MIN", IVFPQ_MIN)
        )

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
    SQL (:func:`memflow.storage.index_build.tune`), else IVF probes nlist/8 lists (at least 16), HNSW
    explores efSearch=128 candidates. ``$MEMFLOW_INDEX_PARAMS`` overrides all of them."""
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
    import faiss

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
    """The search parameter a tuning build sets for ``kind`` and the values it tries, cheapest first."""
    nlist = nlist_of(kind)
    if nlist:
        return "nprobe", [v for v in (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if v < nlist] + [nlist]
    if "HNSW" in kind:
        # From 64: a stored vector is a node of the graph, so stored-vector queries overstate HNSW's recall
        # far more than IVF's (bench/scale.py measures both kinds of query).
        return "efSearch", [64, 128, 256, 512, 1024]
    return None
