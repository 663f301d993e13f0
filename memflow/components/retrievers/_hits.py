"""Turning (chunk id, score) pairs into :class:`Hit` records, and score normalization for fusion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from memflow.types import Hit

if TYPE_CHECKING:
    from memflow.storage.store import Store, StoredChunk

__all__ = ["to_hit", "to_hits", "rehit", "minmax", "zscore"]


def to_hit(chunk: StoredChunk, score: float, rank: int, scores: Mapping[str, float] | None = None) -> Hit:
    return Hit(
        chunk_id=chunk.id,
        document=chunk.document,
        title=chunk.title,
        ordinal=chunk.ordinal,
        start=chunk.start,
        end=chunk.end,
        text=chunk.text,
        score=score,
        rank=rank,
        section=chunk.section,
        scores=dict(scores or {}),
        metadata=chunk.metadata,
        collection=chunk.collection,
    )


def to_hits(
    store: Store,
    scored: Sequence[tuple[int, float]],
    *,
    stage: str,
    earlier: Mapping[int, Mapping[str, float]] | None = None,
    collection: str | None = None,
) -> list[Hit]:
    """Hits for ``scored`` (best first), read from the store; ids no longer stored are left out, and with
    ``collection`` those of another collection's documents. Each hit's ``scores`` are its ``earlier``
    stages' scores and ``stage``'s.

    The collection check is on the rows read here, so it holds even when a search ran unfiltered (a store
    of one collection) and another thread or process wrote a second collection in the meantime."""
    chunks = {c.id: c for c in store.chunks([chunk_id for chunk_id, _ in scored])}
    present = [(i, s) for i, s in scored if i in chunks and collection in (None, chunks[i].collection)]
    earlier = earlier or {}
    return [
        to_hit(chunks[i], s, rank, {**earlier.get(i, {}), stage: s}) for rank, (i, s) in enumerate(present, start=1)
    ]


def rehit(hits: Sequence[Hit], scores: Mapping[int, float], *, stage: str = "reranked") -> list[Hit]:
    """``hits`` re-scored by chunk id and re-ranked, best first (ties keep their previous order); ``stage``'s
    score is added to each hit's ``scores``."""
    order = sorted(range(len(hits)), key=lambda i: -scores[hits[i].chunk_id])
    ranked = []
    for rank, hit in enumerate((hits[i] for i in order), start=1):
        score = float(scores[hit.chunk_id])
        ranked.append(replace(hit, score=score, rank=rank, scores={**hit.scores, stage: score}))
    return ranked


def minmax(values: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] (all equal -> all 1)."""
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    return np.ones_like(values) if high - low < 1e-12 else (values - low) / (high - low)


def zscore(values: np.ndarray) -> np.ndarray:
    """Centered and scaled by the standard deviation (all equal -> all 0)."""
    if values.size == 0:
        return values
    std = float(values.std())
    return np.zeros_like(values) if std < 1e-12 else (values - values.mean()) / std
