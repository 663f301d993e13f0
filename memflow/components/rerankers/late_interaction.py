"""A second-stage scorer built from what the store already holds: no model runs, nothing is re-encoded.

For each of the first ``depth`` hits it computes, from stored vectors and the lexical index:

- ``dense``: the question's inner product with the chunk vector;
- ``maxsim``: late interaction, the best inner product of the question with any of the chunk's stored
  (late-chunked) sentence vectors -- a chunk that holds one sentence answering the question scores high
  even when the rest of it is about something else (ColBERT's MaxSim, at sentence granularity);
- ``lexical``: the chunk's BM25 score for the question (fields included: title and section);
- ``sentence_lexical``: lexical late interaction, the best share of the question's idf mass that any one
  sentence of the chunk covers (the question's index terms found in that sentence, idf-weighted);
- ``prf``: pseudo-relevance feedback (Rocchio in embedding space): the inner product with the question
  moved towards the mean vector of the first-stage top ``prf_depth`` chunks, ``normalize(q + prf_beta * m)``;
- ``first``: the first-stage score (e.g. the hybrid retriever's fused score).

Each feature is standardized over the candidates (``normalization``) and the new score is their weighted
sum. The default weights were fitted on the SciFact *train* queries (``bench/quality.py tune``), never on
a test split. Hits past ``depth`` keep their order below the reranked ones.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from memflow.components.base import Component, Socket
from memflow.components.retrievers._hits import minmax, rehit, zscore
from memflow.storage.lexical import tokenize
from memflow.storage.store import Store
from memflow.types import Hit, Vector

__all__ = ["LateInteractionReranker", "FEATURES", "candidate_features"]

FEATURES = ("dense", "maxsim", "lexical", "sentence_lexical", "prf", "first")
Normalization = Literal["zscore", "minmax"]


def candidate_features(store: Store, query: str, query_vector: Vector, hits: list[Hit], *, prf_depth: int = 3,
                       prf_beta: float = 1.0, k1: float = 0.9, b: float = 0.4) -> np.ndarray:
    """The raw feature matrix, one row per hit, columns in :data:`FEATURES` order."""
    ids = [h.chunk_id for h in hits]
    q = np.asarray(query_vector, dtype=np.float32)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    vectors = store.chunk_vectors(ids)
    chunks = {c.id: c for c in store.chunks(ids)}
    dense = vectors @ q
    maxsim = np.asarray([float((chunks[i].sentence_vectors.astype(np.float32) @ q).max())
                         if i in chunks and len(chunks[i].sentence_vectors) else float(dense[n])
                         for n, i in enumerate(ids)])
    lexical_scores = store.lexical.score(query, ids, k1=k1, b=b)
    lexical = np.asarray([lexical_scores[i] for i in ids])
    idf = store.lexical.idf(tokenize(query))
    mass = sum(idf.values()) or 1.0
    sentence_lexical = np.asarray([
        max((sum(idf.get(t, 0.0) for t in set(tokenize(s.text))) / mass for s in chunks[i].sentences), default=0.0)
        if i in chunks else 0.0 for i in ids])
    feedback = q + prf_beta * vectors[: max(1, prf_depth)].mean(axis=0)
    prf = vectors @ (feedback / max(float(np.linalg.norm(feedback)), 1e-12))
    first = np.asarray([h.score for h in hits])
    return np.column_stack([dense, maxsim, lexical, sentence_lexical, prf, first]).astype(np.float64)


class LateInteractionReranker(Component):
    """Reranks hits by a weighted sum of standardized features (see the module docs)."""

    inputs = {"query": Socket(str), "query_vector": Socket(Vector), "hits": Socket(list[Hit])}
    outputs = {"hits": Socket(list[Hit])}

    def __init__(self, *, depth: int = 100, dense: float = 0.1, maxsim: float = 0.1, lexical: float = 0.2,
                 sentence_lexical: float = 0.2, prf: float = 0.3, first: float = 0.1, prf_depth: int = 3,
                 prf_beta: float = 1.0,
                 normalization: Normalization = "zscore", k1: float = 0.9, b: float = 0.4) -> None:
        if depth < 1 or prf_depth < 1:
            raise ValueError("depth and prf_depth must be at least 1")
        self.weights = np.asarray([dense, maxsim, lexical, sentence_lexical, prf, first], dtype=np.float64)
        if (self.weights < 0).any() or not self.weights.any():
            raise ValueError("feature weights must be non-negative and not all 0")
        self.depth, self.prf_depth, self.prf_beta = depth, prf_depth, prf_beta
        self.normalization, self.k1, self.b = normalization, k1, b
        self._params = {"depth": depth, "dense": dense, "maxsim": maxsim, "lexical": lexical,
                        "sentence_lexical": sentence_lexical, "prf": prf,
                        "first": first, "prf_depth": prf_depth, "prf_beta": prf_beta,
                        "normalization": normalization, "k1": k1, "b": b}

    def run(self, *, query: str, query_vector: Vector, hits: list[Hit]) -> dict[str, Any]:
        if len(hits) < 2:
            return {"hits": hits}
        store = self.context.require_store("rerankers.late_interaction")
        head, tail = hits[: self.depth], hits[self.depth :]
        features = candidate_features(store, query, query_vector, head, prf_depth=self.prf_depth,
                                      prf_beta=self.prf_beta, k1=self.k1, b=self.b)
        scores = self.combine(features)
        by_id = {h.chunk_id: float(s) for h, s in zip(head, scores, strict=True)}
        floor = min(by_id.values())
        for n, h in enumerate(tail, start=1):  # below every reranked hit, in their first-stage order
            by_id.setdefault(h.chunk_id, floor - n)
        return {"hits": rehit(head + tail, by_id)}

    def combine(self, features: np.ndarray) -> np.ndarray:
        scale = zscore if self.normalization == "zscore" else minmax
        columns = [scale(features[:, j]) for j in range(features.shape[1])]
        return np.column_stack(columns) @ self.weights
