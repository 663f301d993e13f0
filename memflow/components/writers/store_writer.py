"""Writes encoded chunks and summary states into the store, one transaction per run."""

from __future__ import annotations

from typing import Any

from memflow.components.base import Component, Socket
from memflow.types import Chunk, Document, SummaryState

__all__ = ["StoreWriter"]


class StoreWriter(Component):
    """The ingest pipeline's sink. ``index`` is the FAISS index of the store's vector memory: ``auto`` (the
    default) follows the size of the memory: exact ``Flat`` below 100,000 vectors, ``IVF{nlist},Flat``
    above, ``IVF{nlist},PQ{m}`` from 8 million, re-chosen as it grows (see
    :mod:`memflow.storage.index_policy`); or any FAISS factory string, used as given ("Flat" = exact
    inner product; e.g. "HNSW32", "IVF4096,Flat"). A store keeps the one it was created with (``auto``
    leaves a store created with an explicit index on that index)."""

    inputs = {
        "chunks": Socket(list[Chunk]),
        "states": Socket(list[SummaryState], optional=True, default=None),
    }
    outputs = {"chunks": Socket(list[Chunk], doc="the chunks written, with their ids set")}

    def __init__(self, *, index: str = "auto") -> None:
        self.index = index

    def run(self, *, chunks: list[Chunk], states: list[SummaryState] | None = None) -> dict[str, Any]:
        store = self.context.require_store("storage.writer")
        groups: dict[int, tuple[Document, list[Chunk]]] = {}
        for chunk in chunks:
            groups.setdefault(id(chunk.document), (chunk.document, []))[1].append(chunk)
        if not groups:
            return {"chunks": []}
        store.check_index(self.index)
        by_uri = {state.document: state for state in states or []}
        store.write_documents(
            [
                (document, sorted(group, key=lambda c: c.ordinal), by_uri.get(document.uri))
                for document, group in groups.values()
            ],
            collection=self.context.collection,
        )
        return {"chunks": chunks}
