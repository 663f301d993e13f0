"""Dense retrieval: the question's vector against the store's FAISS memory."""

from __future__ import annotations

from typing import Any

from memflow.components.base import Component, Socket
from memflow.types import Hit, Vector

__all__ = ["DenseRetriever"]


class DenseRetriever(Component):
    """Returns the ``k`` chunks whose vectors have the highest inner product with the query vector."""

    inputs = {
        "query_vector": Socket(Vector),
        "k": Socket(int, optional=True, default=None, doc="overrides the component's k for one run"),
    }
    outputs = {"hits": Socket(list[Hit])}

    def __init__(self, *, k: int = 10) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k

    def run(self, *, query_vector: Vector, k: int | None = None) -> dict[str, Any]:
        store = self.context.require_store("retrievers.dense")
        found = store.search(query_vector, k or self.k)
        chunks = {c.id: c for c in store.chunks([chunk_id for chunk_id, _ in found])}
        hits = [
            Hit(
                chunk_id=c.id,
                document=c.document,
                title=c.title,
                ordinal=c.ordinal,
                start=c.start,
                end=c.end,
                text=c.text,
                score=score,
                rank=rank,
                section=c.section,
                scores={"dense": score},
            )
            for rank, (chunk_id, score) in enumerate(((i, s) for i, s in found if i in chunks), start=1)
            if (c := chunks[chunk_id])
        ]
        return {"hits": hits}
