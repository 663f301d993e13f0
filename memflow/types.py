"""The records that flow through memflow: documents, chunks, sentences, hits, answers and summary states.

Spans are character offsets into :attr:`Document.text` (the text memflow extracted from the source, e.g.
Markdown with its markup stripped), so ``document.text[chunk.start:chunk.end] == chunk.text`` always.
Vectors are numpy arrays: ``float32`` for chunk and query vectors, ``float16`` for stored sentence vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from memflow.defaults import DEFAULT_COLLECTION

__all__ = [
    "Section",
    "Document",
    "Sentence",
    "Chunk",
    "Hit",
    "Citation",
    "Evidence",
    "Answer",
    "SummarySlot",
    "SummaryState",
    "WrittenSummary",
    "Vector",
    "informative_title",
    "DEFAULT_COLLECTION",
]

Vector = npt.NDArray[np.float32]

#: The collection a document is in unless it is given another (collections keep users or sources apart).


def informative_title(uri: str, title: str) -> str:
    """``title`` stripped, or '' when it is only a loader's fallback (the file name's stem, a JSONL record's
    id): such a title names the document without saying what it is about."""
    title = title.strip()
    path, _, record = uri.partition("#")
    return "" if title in (record, PurePath(path).stem) else title


@dataclass(frozen=True, slots=True)
class Section:
    """A heading in a document: it applies from ``start`` to the next section's start."""

    start: int
    title: str
    level: int = 1


@dataclass(slots=True, eq=False)
class Document:
    """One source text. ``uri`` identifies it in the store (a resolved path, or ``path#id`` for JSONL)."""

    uri: str
    text: str
    content_hash: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    def section_at(self, offset: int) -> str | None:
        """The title of the section that contains ``offset``, or None before the first heading."""
        current: str | None = None
        for section in self.sections:
            if section.start > offset:
                break
            current = section.title
        return current


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence inside a document: ``start``/``end`` are offsets into the document's text."""

    start: int
    end: int
    text: str


@dataclass(slots=True, eq=False)
class Chunk:
    """A span of a document, the unit that is encoded, indexed and retrieved.

    ``sentences`` are the sentences the chunk holds, in order (offsets into the document). After encoding,
    ``vector`` is the chunk's normalized embedding and ``sentence_vectors`` has one normalized row per
    sentence, pooled from the same encoder pass. ``id`` is set once the chunk is stored.
    """

    document: Document
    ordinal: int
    start: int
    end: int
    text: str
    token_count: int
    sentences: list[Sentence] = field(default_factory=list)
    section: str | None = None
    vector: Vector | None = None
    sentence_vectors: npt.NDArray[np.float16] | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Citation:
    """Where a piece of evidence comes from: document, chunk and character span in the document, and the
    document's metadata (what its loader found, or what ``Memory.add`` was given) and collection."""

    document: str
    title: str
    chunk_id: int
    chunk_ordinal: int
    start: int
    end: int
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)
    collection: str = DEFAULT_COLLECTION


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk, with the score of the stage that ranked it last and its rank (1 = best).

    ``scores`` holds each stage's score for it, by stage: ``dense`` (inner product with the question),
    ``lexical`` (BM25), ``fused`` (the hybrid retriever's fusion), ``reranked`` (a reranker's), and
    ``expanded`` for a chunk that context expansion added; ``score`` is the last of them. ``metadata`` is its
    document's metadata, ``collection`` its document's collection.
    """

    chunk_id: int
    document: str
    title: str
    ordinal: int
    start: int
    end: int
    text: str
    score: float
    rank: int
    section: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict, compare=False)
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)
    collection: str = DEFAULT_COLLECTION

    @property
    def citation(self) -> Citation:
        return Citation(
            self.document, self.title, self.chunk_id, self.ordinal, self.start, self.end, self.metadata, self.collection
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """A sentence the decoder attended to, with its final attention weight."""

    text: str
    weight: float
    citation: Citation
    origin: Literal["retrieved", "summary"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The decoder's answer: text composed from evidence, the citations it rests on, and what it attended to.

    ``attention`` has one row per hop, each aligned with ``evidence`` (the whole attended memory, sorted by
    final weight); ``citations`` are those of the sentences that make up ``text``, in reading order.

    A generative decoder sets ``generated``: ``text`` was written by a language model, ``citations`` are
    the evidence it cited, in order of first mention, and ``labels[i]`` is the ``[n]`` marker in ``text``
    that stands for ``citations[i]``; when the model cited nothing, they are the items its sentences repeat
    (attributed by memflow, as ``notes`` says), each with its item's number. ``notes`` says what a reader
    should know about the answer (e.g. that the model cited nothing, or cited a number it was never given;
    such a marker maps to no citation).
    """

    question: str
    text: str
    citations: list[Citation]
    evidence: list[Evidence]
    attention: list[list[float]]
    hits: list[Hit]
    generated: bool = False
    labels: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SummarySlot:
    """One sentence kept in a document's summary state."""

    text: str
    start: int
    end: int
    chunk_ordinal: int
    vector: npt.NDArray[np.float16]
    score: float


@dataclass(slots=True, eq=False)
class SummaryState:
    """A document's recurrent summary state after ``chunks_seen`` chunks: at most ``capacity`` slots.

    ``centroid_sum`` is the running sum of every sentence vector seen and ``read_until`` the document
    offset where the last sentence read ends; with ``sentences_seen`` they are all the state needs besides
    its slots to continue the one-pass update (overlapping chunks repeat sentences that ended before it).
    """

    document: str
    capacity: int
    slots: list[SummarySlot]
    chunks_seen: int
    sentences_seen: int
    centroid_sum: Vector
    read_until: int = 0


@dataclass(frozen=True, slots=True)
class WrittenSummary:
    """A document's written (abstractive) running summary, kept next to its extractive summary state.

    ``text`` is what the language model ``model`` wrote after reading the first ``chunks_seen`` chunks
    (the document up to offset ``read_until``); it is ``tokens`` long by that model's tokenizer, never more
    than ``budget``.
    """

    document: str
    text: str
    tokens: int
    budget: int
    chunks_seen: int
    read_until: int
    model: str
