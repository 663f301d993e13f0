"""Context expansion through the chunk graph: pull in the neighbours of retrieved chunks, within a budget.

The graph (networkx) has the chunks of the retrieved hits' documents as nodes, an edge between each chunk
and the next one in reading order, and -- with ``same_section`` -- an edge between each chunk and the next
one under the same section heading (so a section's chunks form a chain). From each hit, in rank
order, the chunks within ``distance`` edges are added (nearest first, ties by reading order) until their
tokens would pass ``token_budget``. Added chunks come after the retrieved ones, scored just below the hit
that pulled them in, so the decoder reads them as context and the retrieval ranking is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx

from memflow.components.base import Component, Socket
from memflow.components.retrievers._hits import to_hit
from memflow.types import Hit

if TYPE_CHECKING:
    from memflow.storage.store import Store

__all__ = ["ContextExpander", "chunk_graph"]


def chunk_graph(store: Store, document_ids: Sequence[int], *, same_section: bool = True) -> nx.Graph:
    """Nodes: chunk ids (attributes document, ordinal, section, tokens); edges: next-in-reading-order and,
    with ``same_section``, next-in-the-same-section."""
    graph = nx.Graph()
    previous: dict[int, int] = {}
    last_in_section: dict[tuple[int, str], int] = {}
    for chunk_id, doc, ordinal, section, tokens in (
        (c.id, c.document_id, c.ordinal, c.section, c.token_count) for c in store.chunk_places(document_ids)
    ):
        graph.add_node(chunk_id, document=doc, ordinal=ordinal, section=section, tokens=tokens)
        if doc in previous:
            graph.add_edge(previous[doc], chunk_id, kind="next")
        previous[doc] = chunk_id
        if same_section and section:
            key = (doc, section)
            if key in last_in_section and not graph.has_edge(last_in_section[key], chunk_id):
                graph.add_edge(last_in_section[key], chunk_id, kind="section")
            last_in_section[key] = chunk_id
    return graph


class ContextExpander(Component):
    """Adds the graph neighbours of each hit (previous/next chunk, same section) up to ``token_budget``."""

    inputs = {"hits": Socket(list[Hit])}
    outputs = {"hits": Socket(list[Hit], doc="the retrieved hits, then the chunks added as their context")}

    def __init__(self, *, distance: int = 1, token_budget: int = 1024, same_section: bool = True, top: int = 5) -> None:
        if distance < 1 or top < 1:
            raise ValueError("distance and top must be at least 1")
        if token_budget < 0:
            raise ValueError("token_budget must not be negative")
        self.distance, self.token_budget, self.same_section, self.top = distance, token_budget, same_section, top

    def run(self, *, hits: list[Hit]) -> dict[str, Any]:
        if not hits or self.token_budget == 0:
            return {"hits": hits}
        store = self.context.require_store("retrievers.expand")
        seeds = hits[: self.top]
        documents = {c.id: c.document_id for c in store.chunks([h.chunk_id for h in seeds])}
        graph = chunk_graph(store, list(documents.values()), same_section=self.same_section)
        have = {h.chunk_id for h in hits}
        added: list[tuple[int, float]] = []
        budget = self.token_budget
        for hit in seeds:
            if hit.chunk_id not in graph:
                continue
            near = nx.single_source_shortest_path_length(graph, hit.chunk_id, cutoff=self.distance)
            origin = graph.nodes[hit.chunk_id]["ordinal"]
            for chunk_id in sorted(near, key=lambda c: (near[c], abs(graph.nodes[c]["ordinal"] - origin))):
                tokens = int(graph.nodes[chunk_id]["tokens"])
                if chunk_id in have or tokens > budget:
                    continue
                budget -= tokens
                have.add(chunk_id)
                added.append((chunk_id, hit.score))
        if not added:
            return {"hits": hits}
        chunks = {c.id: c for c in store.chunks([i for i, _ in added])}
        floor = min(h.score for h in hits)
        below = [(i, min(score, floor) - 1e-6 * (n + 1)) for n, (i, score) in enumerate(added) if i in chunks]
        extra = [to_hit(chunks[i], score, len(hits) + n + 1, {"expanded": score}) for n, (i, score) in enumerate(below)]
        return {"hits": list(hits) + extra}
