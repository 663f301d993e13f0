"""Multi-hop reading with iterative retrieval: the refined query retrieves again from the memory.

The attention decoder refines its query by what each hop read (``u + a M``). Here, after the first hop,
that refined query goes back to the memory: dense retrieval with the refined vector (and, with
``retriever: hybrid``, BM25 over the question plus the sentence the hop attended to most), and the chunks
it finds that were not retrieved yet join the memory. Then the decoder reads the whole memory as usual. A
question whose answer needs two passages -- one that names the bridge entity, one that answers about it
-- finds the second through the first. ``rounds`` is how many times to retrieve again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np

from memflow.components.decoders.attention import AttentionDecoder
from memflow.components.retrievers._hits import to_hits
from memflow.components.retrievers.hybrid import fuse
from memflow.types import Hit, Vector

__all__ = ["IterativeDecoder"]


class IterativeDecoder(AttentionDecoder):
    """The attention decoder, retrieving again with its refined query before it answers."""

    def __init__(
        self,
        *,
        hops: int = 2,
        scale: float = 20.0,
        max_sentences: int = 3,
        min_relative_weight: float = 0.3,
        summaries: bool = True,
        rounds: int = 1,
        retrieve_k: int = 3,
        retriever: Literal["dense", "hybrid"] = "dense",
    ) -> None:
        super().__init__(
            hops=hops,
            scale=scale,
            max_sentences=max_sentences,
            min_relative_weight=min_relative_weight,
            summaries=summaries,
        )
        if rounds < 0 or retrieve_k < 1:
            raise ValueError("rounds must not be negative and retrieve_k must be at least 1")
        self.rounds, self.retrieve_k, self.retriever = rounds, retrieve_k, retriever

    def run(self, *, query: str, query_vector: Vector, hits: list[Hit]) -> dict[str, Any]:
        memory = list(hits)
        for _ in range(self.rounds):
            found = self.retrieve_again(query, np.asarray(query_vector, dtype=np.float32), memory)
            if not found:
                break
            memory.extend(found)
        return super().run(query=query, query_vector=query_vector, hits=memory)

    def retrieve_again(self, query: str, query_vector: np.ndarray, hits: list[Hit]) -> list[Hit]:
        """New hits for the query as refined by one hop of attention over ``hits``' memory."""
        rows, vectors = self._memory(hits)
        if not rows:
            return []
        _, per_hop = self.attend(query_vector, vectors)
        refined = query_vector / max(float(np.linalg.norm(query_vector)), 1e-12) + per_hop[0] @ vectors
        refined = (refined / max(float(np.linalg.norm(refined)), 1e-12)).astype(np.float32)
        store = self.context.require_store("decoders.iterative")
        have = {h.chunk_id for h in hits}
        depth = self.retrieve_k + len(have)
        allowed = self.context.allowed_chunks()
        scored = store.search(refined, depth, allowed=allowed)
        if self.retriever == "hybrid":
            focus = rows[int(np.argmax(per_hop[0]))].text
            lexical = store.lexical.search(f"{query} {focus}", depth, allowed=allowed)
            scored = fuse(scored, lexical, fusion="minmax")
        new = [(i, s) for i, s in scored if i not in have][: self.retrieve_k]
        found = to_hits(store, new, stage="iterative", collection=self.context.collection)
        # ranked after the hits already read, scored below them, so rank and score order agree
        floor = min((h.score for h in hits), default=0.0)
        return [replace(h, score=min(h.score, floor) - 1e-6 * h.rank, rank=len(hits) + h.rank) for h in found]
