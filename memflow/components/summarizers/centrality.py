"""The recurrent extractive summary state: the most central, least redundant sentences of a document.

For every document the state is updated once per chunk, in reading order:
``state_t = update(state_{t-1}, chunk_t)``. It holds at most ``slots`` sentences (text, span, vector) and
the running sum of all sentence vectors seen, so its memory is O(slots) however long the document is.

Centrality is a sentence's cosine similarity to the document's centroid. On the full sentence graph with
cosine edge weights, a sentence's weighted degree is ``v_i · Σ_j v_j`` = n · (similarity to the mean), so
this is degree centrality computed without the graph. Redundancy is handled as in maximal marginal
relevance: slots are filled greedily by ``(1 - diversity) * centrality - diversity * max_sim_to_chosen``.
:func:`batch_summary` does the same selection over the whole document at once; it is the reference that
the one-pass state is checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from memflow.components.base import Component, Socket
from memflow.types import Chunk, SummarySlot, SummaryState

__all__ = ["CentralitySummarizer", "update_state", "empty_state", "batch_summary", "select"]


def empty_state(document: str, *, capacity: int, dimension: int) -> SummaryState:
    return SummaryState(
        document=document,
        capacity=capacity,
        slots=[],
        chunks_seen=0,
        sentences_seen=0,
        centroid_sum=np.zeros(dimension, dtype=np.float32),
    )


def select(
    vectors: npt.NDArray[np.float32], centroid: npt.NDArray[np.float32], *, capacity: int, diversity: float
) -> tuple[list[int], list[float]]:
    """Greedy MMR selection of up to ``capacity`` rows of ``vectors``: (chosen indices, their centrality)."""
    norm = float(np.linalg.norm(centroid))
    centrality = vectors @ (centroid / norm) if norm > 0 else np.zeros(len(vectors), dtype=np.float32)
    chosen: list[int] = []
    max_sim = np.full(len(vectors), -np.inf if diversity > 0 else 0.0, dtype=np.float32)
    available = np.ones(len(vectors), dtype=bool)
    for _ in range(min(capacity, len(vectors))):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = (1.0 - diversity) * centrality - diversity * penalty
        score[~available] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, vectors @ vectors[best])
    return chosen, [float(centrality[i]) for i in chosen]


def update_state(state: SummaryState, chunk: Chunk, *, diversity: float = 0.3) -> SummaryState:
    """One step of the recurrence: fold ``chunk``'s sentences into ``state``. Returns a new state."""
    if chunk.sentence_vectors is None:
        raise ValueError(f"chunk {chunk.ordinal} of {chunk.document.uri} has no sentence vectors; encode it first")
    # Chunk overlap repeats the sentences that end before ``read_until``: each counts and competes once.
    fresh = [i for i, s in enumerate(chunk.sentences) if s.start >= state.read_until]
    vectors = chunk.sentence_vectors[fresh].astype(np.float32)
    centroid = state.centroid_sum + vectors.sum(axis=0)
    candidates = [(s.text, s.start, s.end, s.chunk_ordinal, s.vector) for s in state.slots]
    candidates += [
        (
            chunk.sentences[i].text,
            chunk.sentences[i].start,
            chunk.sentences[i].end,
            chunk.ordinal,
            chunk.sentence_vectors[i],
        )
        for i in fresh
    ]
    slots: list[SummarySlot] = []
    if candidates:
        matrix = np.vstack([c[4] for c in candidates]).astype(np.float32)
        chosen, scores = select(matrix, centroid, capacity=state.capacity, diversity=diversity)
        slots = sorted(
            (SummarySlot(*candidates[i], score=score) for i, score in zip(chosen, scores, strict=True)),
            key=lambda slot: slot.start,
        )
    read_until = max([state.read_until] + [chunk.sentences[i].end for i in fresh])
    return SummaryState(
        document=state.document,
        capacity=state.capacity,
        slots=slots,
        chunks_seen=state.chunks_seen + 1,
        sentences_seen=state.sentences_seen + len(fresh),
        centroid_sum=centroid.astype(np.float32),
        read_until=read_until,
    )


def batch_summary(chunks: Sequence[Chunk], *, capacity: int, diversity: float = 0.3) -> list[tuple[int, int]]:
    """The reference selection over the whole document at once: spans of the chosen sentences."""
    spans: dict[tuple[int, int], npt.NDArray[np.float32]] = {}
    for chunk in chunks:
        assert chunk.sentence_vectors is not None
        for sentence, vector in zip(chunk.sentences, chunk.sentence_vectors, strict=True):
            spans.setdefault((sentence.start, sentence.end), vector.astype(np.float32))
    if not spans:
        return []
    keys = list(spans)
    matrix = np.vstack([spans[k] for k in keys])
    chosen, _ = select(matrix, matrix.sum(axis=0), capacity=capacity, diversity=diversity)
    return sorted(keys[i] for i in chosen)


class CentralitySummarizer(Component):
    """Keeps each document's recurrent summary state; chunks pass through unchanged."""

    inputs = {"chunks": Socket(list[Chunk])}
    outputs = {"chunks": Socket(list[Chunk]), "states": Socket(list[SummaryState])}

    def __init__(self, *, slots: int = 8, diversity: float = 0.3) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        if not 0.0 <= diversity < 1.0:
            raise ValueError("diversity must be in [0, 1)")
        self.slots, self.diversity = slots, diversity

    def summarize(self, chunks: Sequence[Chunk]) -> SummaryState | None:
        """The state after reading one document's chunks in order (None when there are none)."""
        if not chunks:
            return None
        dimension = next((c.sentence_vectors.shape[1] for c in chunks if c.sentence_vectors is not None), None)
        if dimension is None:
            raise ValueError(f"chunks of {chunks[0].document.uri} have no sentence vectors; encode them first")
        state = empty_state(chunks[0].document.uri, capacity=self.slots, dimension=dimension)
        for chunk in sorted(chunks, key=lambda c: c.ordinal):
            state = update_state(state, chunk, diversity=self.diversity)
        return state

    def run(self, *, chunks: list[Chunk]) -> dict[str, Any]:
        by_document: dict[int, list[Chunk]] = {}
        for chunk in chunks:
            by_document.setdefault(id(chunk.document), []).append(chunk)
        states = [s for group in by_document.values() if (s := self.summarize(group)) is not None]
        return {"chunks": chunks, "states": states}
