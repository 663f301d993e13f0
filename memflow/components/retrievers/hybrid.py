"""Hybrid retrieval: the dense (FAISS) and lexical (BM25) memories, fused.

Each side fetches ``candidates`` chunks; the union is fused and the best ``k`` returned. A run asking for more
than that union holds gets the deeper lists' chunks after it, so the first hits never depend on ``k``.

- ``fusion: rrf`` -- reciprocal-rank fusion: sum over the lists of ``weight / (rrf_k + rank)``
  (Cormack et al. 2009; rrf_k = 60). Uses ranks only, so it needs no score calibration.
- ``fusion: minmax`` -- weighted score fusion: each list's scores scaled to [0, 1] by min-max over its
  candidates, a chunk missing from a list counting 0 there, then ``dense_weight * dense + (1 -
  dense_weight) * lexical``.
- ``fusion: zscore`` -- the same with each list's scores standardized (mean 0, sd 1) instead, a missing
  chunk taking that list's minimum.

With ``dedupe: true`` a chunk whose text equals a better-ranked one's is dropped: a memory holding the same
passage several times (copies of a file, repeated boilerplate) then returns it once, and its copies do not
crowd other evidence out of the top k.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np

from memflow.components.base import Component, Socket
from memflow.components.retrievers._hits import minmax, to_hits, zscore
from memflow.types import Hit, Vector

__all__ = ["HybridRetriever", "fuse"]

Fusion = Literal["rrf", "minmax", "zscore"]


def fuse(
    dense: list[tuple[int, float]],
    lexical: list[tuple[int, float]],
    *,
    fusion: Fusion,
    dense_weight: float = 0.5,
    rrf_k: int = 60,
) -> list[tuple[int, float]]:
    """Fused (chunk id, score), best first. Both inputs are best first."""
    weights = (dense_weight, 1.0 - dense_weight)
    scores: dict[int, float] = {}
    if fusion == "rrf":
        for weight, ranked in zip(weights, (dense, lexical), strict=True):
            for rank, (chunk_id, _) in enumerate(ranked, start=1):
                scores[chunk_id] = scores.get(chunk_id, 0.0) + 2 * weight / (rrf_k + rank)
    else:
        ids = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in lexical]))
        total = np.zeros(len(ids))
        position = {chunk_id: n for n, chunk_id in enumerate(ids)}
        for weight, ranked in zip(weights, (dense, lexical), strict=True):
            if not ranked:
                continue
            raw = np.asarray([s for _, s in ranked], dtype=np.float64)
            scaled = minmax(raw) if fusion == "minmax" else zscore(raw)
            column = np.full(len(ids), 0.0 if fusion == "minmax" else float(scaled.min()))
            column[[position[i] for i, _ in ranked]] = scaled
            total += weight * column
        scores = {chunk_id: float(total[n]) for chunk_id, n in position.items()}
    return sorted(scores.items(), key=lambda item: -item[1])


class HybridRetriever(Component):
    """Dense + BM25 retrieval fused by ``fusion`` (``rrf``, ``minmax`` or ``zscore``)."""

    inputs = {
        "query": Socket(str),
        "query_vector": Socket(Vector),
        "k": Socket(int, optional=True, default=None, doc="overrides the component's k for one run"),
    }
    outputs = {"hits": Socket(list[Hit])}

    def __init__(
        self,
        *,
        k: int = 10,
        candidates: int = 100,
        fusion: Fusion = "minmax",
        dense_weight: float = 0.5,
        rrf_k: int = 60,
        k1: float = 0.9,
        b: float = 0.4,
        dedupe: bool = False,
    ) -> None:
        if k < 1 or candidates < 1:
            raise ValueError("k and candidates must be at least 1")
        if not 0.0 <= dense_weight <= 1.0:
            raise ValueError("dense_weight must be in [0, 1]")
        if rrf_k < 0:
            raise ValueError("rrf_k must not be negative")
        self.k, self.candidates, self.fusion, self.dense_weight = k, candidates, fusion, dense_weight
        self.rrf_k, self.k1, self.b, self.dedupe = rrf_k, k1, b, dedupe

    def run(self, *, query: str, query_vector: Vector, k: int | None = None) -> dict[str, Any]:
        store = self.context.require_store("retrievers.hybrid")
        want = k or self.k
        depth = max(self.candidates, want)
        allowed = self.context.allowed_chunks()
        dense = store.search(query_vector, depth, allowed=allowed)
        lexical = store.lexical.search(query, depth, k1=self.k1, b=self.b, allowed=allowed)
        fused = self._fuse(dense, lexical)
        earlier: dict[int, dict[str, float]] = {}
        for stage, ranked in (("dense", dense), ("lexical", lexical)):
            for chunk_id, score in ranked:
                earlier.setdefault(chunk_id, {})[stage] = score
        if not self.dedupe:
            return {
                "hits": to_hits(store, fused[:want], stage="fused", earlier=earlier, collection=self.context.collection)
            }
        seen: set[str] = set()
        unique: list[Hit] = []
        # Read the fused list a window at a time, only as far as it takes to find ``want`` distinct texts.
        for at in range(0, len(fused), want):
            for hit in to_hits(
                store, fused[at : at + want], stage="fused", earlier=earlier, collection=self.context.collection
            ):
                if hit.text not in seen:
                    seen.add(hit.text)
                    unique.append(hit)
            if len(unique) >= want:
                break
        return {"hits": [replace(h, rank=n) for n, h in enumerate(unique[:want], start=1)]}

    def _fuse(self, dense: list[tuple[int, float]], lexical: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Each side's top ``candidates`` fused; then, when a run asks for more (``k`` above ``candidates``),
        the rest of the whole deeper lists' fusion ranked below them: asking for more hits adds hits after
        the first ones and never reorders them (a score normalized over a deeper list would)."""
        top = self.candidates
        head = fuse(dense[:top], lexical[:top], fusion=self.fusion, dense_weight=self.dense_weight, rrf_k=self.rrf_k)
        if len(dense) <= top and len(lexical) <= top:
            return head
        seen = {chunk_id for chunk_id, _ in head}
        rest = [
            (i, s)
            for i, s in fuse(dense, lexical, fusion=self.fusion, dense_weight=self.dense_weight, rrf_k=self.rrf_k)
            if i not in seen
        ]
        if not head or not rest:
            return head + rest
        below = max(0.0, rest[0][1] - head[-1][1]) + 1e-6
        return head + [(i, s - below) for i, s in rest]
