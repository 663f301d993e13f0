"""LangChain-style recursive character chunking that keeps exact spans.

The algorithm is LangChain's ``RecursiveCharacterTextSplitter`` (separators kept at the start of the
piece that follows them, pieces merged up to ``chunk_size`` with ``chunk_overlap`` characters carried
over), but it works on ``(start, end)`` offsets into the document rather than on string copies, so every
chunk is exactly ``document.text[start:end]``. Unlike LangChain, a chunk never exceeds ``chunk_size``:
text with none of the separators falls back to fixed windows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from memflow.components.base import Component, Socket
from memflow.components.chunkers._common import TokenCounter, require_int, section_lookup, strip_span
from memflow.components.chunkers.sentence_split import split_sentences
from memflow.types import Chunk, Document, Sentence

__all__ = ["RecursiveCharacterChunker", "DEFAULT_SEPARATORS"]

DEFAULT_SEPARATORS = ("\n\n", "\n", ". ", " ", "")
# Chunk texts go to the tokenizer's parallel batch call in groups of this many characters.
_COUNT_BATCH_CHARS = 1_000_000

Span = tuple[int, int]


class RecursiveCharacterChunker(Component):
    """Splits on the first separator that occurs, recursing into pieces still over ``chunk_size``."""

    inputs: ClassVar[dict[str, Socket]] = {"documents": Socket(list[Document], doc="documents to chunk")}
    outputs: ClassVar[dict[str, Socket]] = {"chunks": Socket(list[Chunk], doc="chunks, document by document")}
    param_attributes: ClassVar[dict[str, str]] = {"tokenizer": "_counter.name"}

    def __init__(
        self,
        *,
        chunk_size: int = 1000,
        chunk_overlap: int = 100,
        separators: list[str] | None = None,
        tokenizer: str = "default",
    ) -> None:
        require_int("chunk_size", chunk_size, 1)
        require_int("chunk_overlap", chunk_overlap, 0)
        if chunk_overlap >= chunk_size:
            raise ValueError(f"chunk_overlap ({chunk_overlap}) must be below chunk_size ({chunk_size})")
        chosen = list(DEFAULT_SEPARATORS) if separators is None else separators
        if not isinstance(chosen, list) or not all(isinstance(sep, str) for sep in chosen):
            raise ValueError(f"separators must be a list of strings, got {separators!r}")
        if not isinstance(tokenizer, str) or not tokenizer:
            raise ValueError(f"tokenizer must be a model name or directory, got {tokenizer!r}")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.separators = list(chosen)
        self._counter = TokenCounter(tokenizer)

    # The pipeline passes the declared input sockets as keywords; the narrower signature states the contract.
    def run(self, *, documents: list[Document]) -> dict[str, Any]:
        return {"chunks": [chunk for document in documents for chunk in self.chunk_document(document)]}

    def chunk_document(self, document: Document) -> list[Chunk]:
        text = document.text
        spans = [span for raw in self.split_spans(text) if (span := strip_span(text, *raw)) is not None]
        counts = self._token_counts(text, spans)
        section = section_lookup(document)
        chunks = []
        for ordinal, ((start, end), tokens) in enumerate(zip(spans, counts, strict=True)):
            sentences = [Sentence(s, e, text[s:e]) for s, e in split_sentences(text, start, end)]
            chunks.append(
                Chunk(
                    document=document,
                    ordinal=ordinal,
                    start=start,
                    end=end,
                    text=text[start:end],
                    token_count=tokens,
                    sentences=sentences,
                    section=section(start),
                )
            )
        return chunks

    def split_spans(self, text: str) -> list[Span]:
        """The chunk spans of ``text`` before whitespace is trimmed from their ends."""
        return list(self._split(text, 0, len(text), self.separators))

    def _split(self, text: str, start: int, end: int, separators: Sequence[str]) -> Iterator[Span]:
        separator, rest = "", []
        for index, candidate in enumerate(separators):
            if candidate == "" or text.find(candidate, start, end) >= 0:
                separator, rest = candidate, list(separators[index + 1 :])
                break
        if separator == "":
            yield from self._windows(start, end)
            return
        good: list[Span] = []
        for piece in _pieces(text, start, end, separator):
            if piece[1] - piece[0] < self.chunk_size:
                good.append(piece)
                continue
            if good:
                yield from self._merge(good)
                good = []
            if rest:
                yield from self._split(text, piece[0], piece[1], rest)
            else:
                yield from self._windows(*piece)
        if good:
            yield from self._merge(good)

    def _merge(self, pieces: list[Span]) -> Iterator[Span]:
        """Join consecutive pieces up to ``chunk_size``, keeping up to ``chunk_overlap`` characters."""
        current: deque[Span] = deque()
        total = 0
        for piece in pieces:
            size = piece[1] - piece[0]
            if current and total + size > self.chunk_size:
                yield current[0][0], current[-1][1]
                while current and (total > self.chunk_overlap or total + size > self.chunk_size):
                    first = current.popleft()
                    total -= first[1] - first[0]
            current.append(piece)
            total += size
        if current:
            yield current[0][0], current[-1][1]

    def _windows(self, start: int, end: int) -> Iterator[Span]:
        position = start
        while True:
            stop = min(position + self.chunk_size, end)
            yield position, stop
            if stop >= end:
                return
            position = stop - self.chunk_overlap

    def _token_counts(self, text: str, spans: list[Span]) -> list[int]:
        tokenizer = self._counter.tokenizer
        counts: list[int] = []
        batch: list[str] = []
        size = 0
        for start, end in spans:
            batch.append(text[start:end])
            size += end - start
            if size >= _COUNT_BATCH_CHARS:
                counts.extend(len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=True))
                batch, size = [], 0
        if batch:
            counts.extend(len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=True))
        return counts


def _pieces(text: str, start: int, end: int, separator: str) -> Iterator[Span]:
    """``text[start:end]`` cut before each occurrence of ``separator`` (which stays with what follows)."""
    position = start
    found = text.find(separator, start, end)
    while found >= 0:
        if found > position:
            yield position, found
            position = found
        found = text.find(separator, found + len(separator), end)
    if end > position:
        yield position, end
