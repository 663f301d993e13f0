"""Lexical retrieval: BM25 over the store's lexical index (the same chunks as the vector memory)."""

from __future__ import annotations

from typing import Any

from memflow.components.base import Component, Socket
from memflow.components.retrievers._hits import to_hits
from memflow.types import Hit

__all__ = ["BM25Retriever"]


class BM25Retriever(Component):
    """Returns the ``k`` chunks with the highest BM25 score for the query text.

    ``k1`` (term-frequency saturation) and ``b`` (length normalization) default to 0.9 and 0.4, the values
    BEIR's Anserini/Pyserini BM25 baselines use. A store ingested before memflow had a lexical index gets
    one built on first use (logged once).
    """

    inputs = {
        "query": Socket(str),
        "k": Socket(int, optional=True, default=None, doc="overrides the component's k for one run"),
    }
    outputs = {"hits": Socket(list[Hit])}

    def __init__(self, *, k: int = 10, k1: float = 0.9, b: float = 0.4) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        if k1 < 0:
            raise ValueError("k1 must not be negative")
        if not 0.0 <= b <= 1.0:
            raise ValueError("b must be in [0, 1]")
        self.k, self.k1, self.b = k, k1, b

    def run(self, *, query: str, k: int | None = None) -> dict[str, Any]:
        store = self.context.require_store("retrievers.bm25")
        found = store.lexical.search(query, k or self.k, k1=self.k1, b=self.b, allowed=self.context.allowed_chunks())
        return {"hits": to_hits(store, found, stage="lexical", collection=self.context.collection)}
