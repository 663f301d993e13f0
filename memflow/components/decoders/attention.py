"""The built-in decoder: multi-hop attention over retrieved sentences and document summary states.

Memory = the sentences of the retrieved chunks (their stored, late-chunked vectors) plus the summary-state
sentences of the documents those chunks come from. For each hop, as in end-to-end memory networks:

    a_h = softmax(scale * M u_h)        # scaled dot-product attention of the query over memory rows
    o_h = a_h M                         # what the hop read
    u_{h+1} = normalize(u_h + o_h)      # the query refined by it

``scale`` defaults to 20, the inverse temperature all-MiniLM-L6-v2 was trained with (its contrastive loss
scales cosine similarities by 20), so the softmax is as peaked as the model's own training objective.
The final weight of a sentence is its attention averaged over hops: the first hop keeps the question's
own focus and later hops add what the read context makes relevant. The answer is the highest-weighted
sentences in reading order, each with its citation. Nothing is re-encoded: all vectors come from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memflow.components.base import Component, Socket
from memflow.types import Answer, Citation, Evidence, Hit, Vector

__all__ = ["AttentionDecoder"]


@dataclass(slots=True)
class _Row:
    text: str
    citation: Citation
    origin: str
    key: tuple[int, int, int]


class AttentionDecoder(Component):
    """Answers with the memory's own sentences, weighted by multi-hop attention."""

    inputs = {"query": Socket(str), "query_vector": Socket(Vector), "hits": Socket(list[Hit])}
    outputs = {"answer": Socket(Answer)}

    def __init__(
        self,
        *,
        hops: int = 2,
        scale: float = 20.0,
        max_sentences: int = 3,
        min_relative_weight: float = 0.3,
        summaries: bool = True,
    ) -> None:
        if hops < 1:
            raise ValueError("hops must be at least 1")
        if scale <= 0:
            raise ValueError("scale must be positive")
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        if not 0.0 <= min_relative_weight <= 1.0:
            raise ValueError("min_relative_weight must be in [0, 1]")
        self.hops, self.scale, self.max_sentences = hops, scale, max_sentences
        self.min_relative_weight, self.summaries = min_relative_weight, summaries

    def run(self, *, query: str, query_vector: Vector, hits: list[Hit]) -> dict[str, Any]:
        rows, vectors = self._memory(hits)
        if not rows:
            return {"answer": Answer(question=query, text="", citations=[], evidence=[], attention=[], hits=hits)}
        weights, per_hop = self.attend(np.asarray(query_vector, dtype=np.float32), vectors)
        order = np.argsort(-weights, kind="stable")
        top = float(weights[order[0]])
        chosen = [int(i) for i in order[: self.max_sentences] if weights[i] >= self.min_relative_weight * top]
        # Reading order: by document as first retrieved, then by position in the document.
        doc_rank: dict[int, int] = {}
        for row in rows:
            doc_rank.setdefault(row.key[0], len(doc_rank))
        chosen.sort(key=lambda i: (doc_rank[rows[i].key[0]], rows[i].citation.start))
        evidence = [Evidence(rows[i].text, float(weights[i]), rows[i].citation, rows[i].origin) for i in order]
        attention = [[float(hop[i]) for i in order] for hop in per_hop]
        answer = Answer(
            # Source line breaks inside a sentence are layout, not content; citations keep the exact spans.
            question=query,
            text=" ".join(" ".join(rows[i].text.split()) for i in chosen),
            citations=[rows[i].citation for i in chosen],
            evidence=evidence,
            attention=attention,
            hits=hits,
        )
        return {"answer": answer}

    def attend(self, query: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Final weights (mean over hops) and each hop's attention over the memory rows."""
        import torch  # here, not at import: checking a pipeline that names this decoder loads no torch

        m = torch.from_numpy(memory)
        u = torch.nn.functional.normalize(torch.from_numpy(query), dim=0)
        hops: list[np.ndarray] = []
        for _ in range(self.hops):
            a = torch.softmax(self.scale * (m @ u), dim=0)
            hops.append(a.numpy())
            u = torch.nn.functional.normalize(u + a @ m, dim=0)
        return np.mean(hops, axis=0), hops

    def _memory(self, hits: list[Hit]) -> tuple[list[_Row], np.ndarray]:
        store = self.context.require_store("decoders.attention")
        chunks = store.chunks([h.chunk_id for h in hits])
        rows: list[_Row] = []
        blocks: list[np.ndarray] = []
        seen: set[tuple[int, int, int]] = set()
        for chunk in chunks:
            keep: list[int] = []
            for i, sentence in enumerate(chunk.sentences):
                key = (chunk.document_id, sentence.start, sentence.end)
                if key in seen:  # overlapping chunks repeat sentences; attend to each once
                    continue
                seen.add(key)
                keep.append(i)
                rows.append(
                    _Row(
                        sentence.text,
                        Citation(
                            chunk.document,
                            chunk.title,
                            chunk.id,
                            chunk.ordinal,
                            sentence.start,
                            sentence.end,
                            chunk.metadata,
                            chunk.collection,
                        ),
                        "retrieved",
                        key,
                    )
                )
            blocks.append(chunk.sentence_vectors[keep])
        if self.summaries and chunks:
            titles = {c.document_id: (c.document, c.title, c.metadata, c.collection) for c in chunks}
            states = store.summary_states(titles)
            wanted = [(doc_id, slot.chunk_ordinal) for doc_id, state in states.items() for slot in state.slots]
            chunk_ids = store.chunk_ids(wanted)
            for doc_id, state in states.items():
                uri, title, metadata, collection = titles[doc_id]
                for slot in state.slots:
                    key = (doc_id, slot.start, slot.end)
                    if key in seen or (doc_id, slot.chunk_ordinal) not in chunk_ids:
                        continue
                    seen.add(key)
                    chunk_id = chunk_ids[(doc_id, slot.chunk_ordinal)]
                    cite = Citation(
                        uri, title, chunk_id, slot.chunk_ordinal, slot.start, slot.end, metadata, collection
                    )
                    rows.append(_Row(slot.text, cite, "summary", key))
                    blocks.append(slot.vector.reshape(1, -1))
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return rows, np.vstack(blocks).astype(np.float32)
