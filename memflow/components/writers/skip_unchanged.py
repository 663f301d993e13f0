"""Drops documents whose content the store already holds, so re-running an ingest encodes nothing new."""

from __future__ import annotations

from typing import Any

from memflow.components.base import Component, Socket
from memflow.types import Document

__all__ = ["SkipUnchanged"]


class SkipUnchanged(Component):
    """Passes on only documents that are new or whose content hash differs from the stored one."""

    inputs = {"documents": Socket(list[Document])}
    outputs = {"documents": Socket(list[Document])}

    def run(self, *, documents: list[Document]) -> dict[str, Any]:
        store = self.context.require_store("storage.skip_unchanged")
        stored = store.document_hashes((d.uri for d in documents), collection=self.context.collection)
        fresh: list[Document] = []
        for document in documents:
            self.context.seen.add(document.uri)
            if stored.get(document.uri) == document.content_hash:
                self.context.unchanged.append(document.uri)
            else:
                fresh.append(document)
        return {"documents": fresh}
