"""Dense retrieval: the question's vector against the store's FAISS memory."""

from __future__ import annotations

from typing import Any

from memflow.components.base import Component, Socket
from memflow.components.retrievers._hits import to_hits
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
        found = store.search(query_vector, k or self.k, allowed=self.context.allowed_chunks())
        return {"hits": to_hits(store, found, stage="dense", collection=self.context.collection)}
