"""Token-budgeted chunking on sentence boundaries, counted with the encoder's own tokenizer.

A chunk of ``max_tokens`` fits the encoder's window exactly: the budget for text is ``max_tokens`` less
the special tokens the encoder adds ([CLS] and [SEP]). Each document is tokenized once, in blocks of
whole sentences (``BLOCK_CHARS``), and a sentence's token count is read off the block's token offsets by
bisection. That equals tokenizing the sentence alone because sentence boundaries always fall where the
encoder's pre-tokenizer separates words (after punctuation, at newlines); see ``sentence_split``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from memflow.components.base import Component, Socket
from memflow.components.chunkers._common import TokenCounter, require_int, section_lookup, strip_span
from memflow.components.chunkers.sentence_split import iter_sentences
from memflow.types import Chunk, Document, Sentence

if TYPE_CHECKING:
    from tokenizers import Encoding

__all__ = ["SentenceChunker"]

# Sentences are tokenized in blocks of about this many characters: small enough that a document of tens
# of megabytes never holds its whole tokenization in memory, large enough that per-call overhead vanishes.
BLOCK_CHARS = 100_000
# Blocks, from one document or many, go to the tokenizer's parallel batch call in groups of this size.
BATCH_CHARS = 1_000_000
MIN_MAX_TOKENS = 8
MAX_OVERLAP = 0.5
_BERT_SPACES = " \n\t\r"

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class _Unit(NamedTuple):
    """A sentence, or a piece of an oversize one, with its content-token count.

    ``hard`` marks a piece that starts inside a word: its tokens are not the tail of the word's tokens,
    so it must not share a chunk with the piece before it (the counts would no longer add up).
    """

    sentence: Sentence
    tokens: int
    hard: bool


@dataclass(frozen=True, slots=True)
class _Block:
    """A span of one document to tokenize: whole sentences, or a slice of one very long sentence."""

    doc: int
    start: int
    end: int
    sentences: list[tuple[int, int]]
    long_sentence: tuple[int, int] | None = None  # set on the slices of a sentence over BLOCK_CHARS
    last_slice: bool = True


class SentenceChunker(Component):
    """Packs whole sentences greedily into chunks of at most ``max_tokens`` encoder tokens.

    ``overlap`` (a fraction of ``max_tokens``) carries the last whole sentences of a chunk into the next
    one. A sentence longer than the budget is split at word boundaries (inside a word only when one word
    alone is over budget), and each piece becomes a sentence of its own.
    """

    inputs: ClassVar[dict[str, Socket]] = {"documents": Socket(list[Document], doc="documents to chunk")}
    outputs: ClassVar[dict[str, Socket]] = {"chunks": Socket(list[Chunk], doc="chunks, document by document")}
    param_attributes: ClassVar[dict[str, str]] = {"tokenizer": "_counter.name"}

    def __init__(self, *, tokenizer: str = "default", max_tokens: int = 256, overlap: float = 0.1) -> None:
        if not isinstance(tokenizer, str) or not tokenizer:
            raise ValueError(f"tokenizer must be a model name or directory, got {tokenizer!r}")
        require_int("max_tokens", max_tokens, MIN_MAX_TOKENS)
        if isinstance(overlap, bool) or not isinstance(overlap, (int, float)):
            raise ValueError(f"overlap must be a number in [0, {MAX_OVERLAP}], got {overlap!r}")
        if not 0.0 <= overlap <= MAX_OVERLAP:
            raise ValueError(f"overlap must be in [0, {MAX_OVERLAP}] (a share of max_tokens), got {overlap}")
        self._counter = TokenCounter(tokenizer)
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.overlap_tokens = int(overlap * max_tokens)
        self._budget = -1

    @property
    def budget(self) -> int:
        """Content tokens a chunk may hold: ``max_tokens`` less the encoder's special tokens."""
        if self._budget < 0:
            budget = self.max_tokens - self._counter.specials
            if budget < 1:
                raise ValueError(
                    f"max_tokens={self.max_tokens} leaves no room for text beside the "
                    f"{self._counter.specials} special tokens of {self._counter.name!r}"
                )
            self._budget = budget
        return self._budget

    # The pipeline passes the declared input sockets as keywords; the narrower signature states the contract.
    def run(self, *, documents: list[Document]) -> dict[str, Any]:
        chunks = [chunk for per_document in self.chunk_documents(documents) for chunk in per_document]
        return {"chunks": chunks}

    def chunk_document(self, document: Document) -> list[Chunk]:
        return next(iter(self.chunk_documents([document])))

    def chunk_documents(self, documents: Sequence[Document]) -> Iterator[list[Chunk]]:
        """One list of chunks per document, in order. Tokenization is batched across documents."""
        budget = self.budget
        blocks = (block for index, doc in enumerate(documents) for block in self._plan(index, doc.text))
        encoded = groupby(self._encode(blocks, documents), key=lambda pair: pair[0].doc)
        done = 0
        for index, group in encoded:
            while done < index:  # documents with nothing but whitespace
                yield []
                done += 1
            document = documents[index]
            yield self._pack(document, self._units(document.text, group, budget), budget)
            done += 1
        while done < len(documents):
            yield []
            done += 1

    # -- tokenization -------------------------------------------------------------------------------------

    def _plan(self, index: int, text: str) -> Iterator[_Block]:
        pending: list[tuple[int, int]] = []
        for start, end in iter_sentences(text):
            if pending and end - pending[0][0] > BLOCK_CHARS:
                yield _Block(index, pending[0][0], pending[-1][1], pending)
                pending = []
            if end - start > BLOCK_CHARS:
                yield from _slices(index, text, start, end)
            else:
                pending.append((start, end))
        if pending:
            yield _Block(index, pending[0][0], pending[-1][1], pending)

    def _encode(self, blocks: Iterable[_Block], documents: Sequence[Document]) -> Iterator[tuple[_Block, Encoding]]:
        tokenizer = self._counter.tokenizer
        batch: list[_Block] = []
        size = 0
        for block in blocks:
            batch.append(block)
            size += block.end - block.start
            if size >= BATCH_CHARS:
                texts = [documents[b.doc].text[b.start : b.end] for b in batch]
                yield from zip(batch, tokenizer.encode_batch(texts, add_special_tokens=False), strict=True)
                batch, size = [], 0
        if batch:
            texts = [documents[b.doc].text[b.start : b.end] for b in batch]
            yield from zip(batch, tokenizer.encode_batch(texts, add_special_tokens=False), strict=True)

    def _units(self, text: str, encoded: Iterable[tuple[_Block, Encoding]], budget: int) -> Iterator[_Unit]:
        splitter: _Splitter | None = None
        for block, encoding in encoded:
            offsets = encoding.offsets
            starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets)) + block.start
            if block.long_sentence is not None:
                if splitter is None:
                    splitter = _Splitter(self._counter, text, block.long_sentence, budget)
                yield from splitter.feed(starts, _word_starts(encoding), block.end, block.last_slice)
                if block.last_slice:
                    splitter = None
                continue
            ends = np.fromiter((e for _, e in block.sentences), dtype=np.int64, count=len(block.sentences))
            # Tokens that start before a sentence's end belong to it or to an earlier sentence.
            bounds = np.searchsorted(starts, ends, side="left").tolist()
            words: BoolArray | None = None
            previous = 0
            for (start, end), bound in zip(block.sentences, bounds, strict=True):
                count = bound - previous
                if count <= budget:
                    yield _Unit(Sentence(start, end, text[start:end]), count, False)
                else:
                    if words is None:
                        words = _word_starts(encoding)
                    oversize = _Splitter(self._counter, text, (start, end), budget)
                    yield from oversize.feed(starts[previous:bound], words[previous:bound], end, True)
                previous = bound

    # -- packing ------------------------------------------------------------------------------------------

    def _pack(self, document: Document, units: Iterator[_Unit], budget: int) -> list[Chunk]:
        chunks: list[Chunk] = []
        section = section_lookup(document)
        window: list[_Unit] = []
        total = 0
        for unit in units:
            if window and (unit.hard or total + unit.tokens > budget):
                chunks.append(self._chunk(document, len(chunks), window, total, section))
                window = self._carry(window, unit, budget)
                total = sum(u.tokens for u in window)
            window.append(unit)
            total += unit.tokens
        if window:
            chunks.append(self._chunk(document, len(chunks), window, total, section))
        return chunks

    def _carry(self, window: list[_Unit], following: _Unit, budget: int) -> list[_Unit]:
        """The last whole sentences of ``window`` that start the next chunk (never all of them)."""
        if following.hard or self.overlap_tokens == 0:
            return []
        room = min(self.overlap_tokens, budget - following.tokens)
        kept = 0
        taken = 0
        for unit in reversed(window[1:]):
            if taken + unit.tokens > room:
                break
            taken += unit.tokens
            kept += 1
        return window[len(window) - kept :] if kept else []

    def _chunk(self, document: Document, ordinal: int, window: list[_Unit], total: int, section: Any) -> Chunk:
        start = window[0].sentence.start
        end = window[-1].sentence.end
        return Chunk(
            document=document,
            ordinal=ordinal,
            start=start,
            end=end,
            text=document.text[start:end],
            token_count=total + self._counter.specials,
            sentences=[unit.sentence for unit in window],
            section=section(start),
        )


def _slices(index: int, text: str, start: int, end: int) -> Iterator[_Block]:
    """Cut a sentence longer than BLOCK_CHARS into blocks at whitespace, where no word can straddle."""
    position = start
    while position < end:
        limit = position + BLOCK_CHARS
        if limit >= end:
            cut = end
        else:
            cut = max(text.rfind(space, position + BLOCK_CHARS // 2, limit) for space in _BERT_SPACES)
            if cut < 0:  # no space in the window: go on to the next one, however far
                later = [found for space in _BERT_SPACES if (found := text.find(space, limit, end)) >= 0]
                cut = min(later) if later else end
        yield _Block(index, position, cut, [], long_sentence=(start, end), last_slice=cut >= end)
        position = cut


def _word_starts(encoding: Encoding) -> BoolArray:
    word_ids = np.array([-1 if w is None else w for w in encoding.word_ids], dtype=np.int64)
    starts = np.ones(len(word_ids), dtype=np.bool_)
    starts[1:] = word_ids[1:] != word_ids[:-1]
    return starts


class _Splitter:
    """Splits one sentence that is over budget into pieces of at most ``budget`` tokens.

    Tokens may arrive in several slices (a sentence of megabytes); at most ``budget`` of them are held
    back between slices. Pieces end at word boundaries; a single word over budget is cut inside, and
    those cuts are verified by tokenizing the piece, since a word's tail tokenizes differently alone.
    """

    def __init__(self, counter: TokenCounter, text: str, span: tuple[int, int], budget: int) -> None:
        self.counter = counter
        self.text = text
        self.end = span[1]
        self.budget = budget
        self.piece_start = span[0]
        self.held_starts: Int64Array = np.empty(0, dtype=np.int64)
        self.held_words: BoolArray = np.empty(0, dtype=np.bool_)

    def feed(self, starts: Int64Array, words: BoolArray, stop: int, final: bool) -> Iterator[_Unit]:
        """Take the tokens of the next slice (which ends at ``stop``); ``final`` on the sentence's last."""
        starts = np.concatenate((self.held_starts, starts))
        words = np.concatenate((self.held_words, words))
        if len(words):
            words[0] = True
        boundaries = np.flatnonzero(words)
        total = len(starts)
        budget = self.budget
        first = 0
        piece_start = self.piece_start
        while total - first > budget:
            i = int(np.searchsorted(boundaries, first + budget, side="right")) - 1
            cut_token = int(boundaries[i])
            if cut_token > first:
                cut = int(starts[cut_token])
                yield from self._emit(piece_start, cut, cut_token - first, False)
            else:  # the word at ``first`` alone is over budget
                j = int(np.searchsorted(boundaries, first, side="right"))
                cut_token = int(boundaries[j]) if j < len(boundaries) else total
                cut = int(starts[cut_token]) if cut_token < total else stop
                yield from self._split_word(piece_start, cut, starts[first + 1 : cut_token].tolist())
            first, piece_start = cut_token, cut
        if final:
            yield from self._emit(piece_start, self.end, total - first, False)
        else:
            self.held_starts, self.held_words = starts[first:], words[first:]
            self.piece_start = piece_start

    def _emit(self, start: int, end: int, tokens: int, hard: bool) -> Iterator[_Unit]:
        span = strip_span(self.text, start, end)
        if span is not None:
            yield _Unit(Sentence(span[0], span[1], self.text[span[0] : span[1]]), tokens, hard)

    def _split_word(self, start: int, end: int, inner: list[int]) -> Iterator[_Unit]:
        """Cut one word, ``text[start:end]``, at token starts ``inner`` into pieces that fit re-tokenized."""
        cuts = [*inner, end]
        position = start
        j = 0
        while position < end:
            while cuts[j] <= position:
                j += 1
            i = min(j + self.budget - 1, len(cuts) - 1)
            count = self.counter.count(self.text[position : cuts[i]])
            while count > self.budget and i > j:
                i -= 1
                count = self.counter.count(self.text[position : cuts[i]])
            cut = cuts[i]
            if count > self.budget:  # one token alone re-tokenizes over budget: cut by characters
                cut = position + 1
                count = self.counter.count(self.text[position:cut])
                while cut + 1 < cuts[j]:
                    more = self.counter.count(self.text[position : cut + 1])
                    if more > self.budget:
                        break
                    cut, count = cut + 1, more
            yield from self._emit(position, cut, count, position != start)
            position = cut
