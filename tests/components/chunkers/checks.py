"""Invariants every chunker must keep, shared by the example-based and the property-based tests."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

from memflow.components.chunkers.sentence_split import split_sentences
from memflow.types import Chunk, Document

_SPACE = re.compile(r"\s")
_NONSPACE = re.compile(r"\S")


def nonspace_mask(text: str) -> np.ndarray:
    """True at every offset of ``text`` that holds a non-whitespace character (vectorized via re.sub)."""
    flags = _SPACE.sub("\x00", _NONSPACE.sub("\x01", text))
    return np.frombuffer(flags.encode("latin-1"), dtype=np.uint8).astype(bool)


def real_counts(tokenizer: Tokenizer, texts: Sequence[str], *, specials: bool = True) -> list[int]:
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=specials)]


def assert_valid_chunks(
    document: Document,
    chunks: list[Chunk],
    tokenizer: Tokenizer,
    *,
    max_tokens: int | None = None,
    max_chars: int | None = None,
    counts: bool = True,
) -> None:
    """Exact spans, ordinals, trimmed text, sentences inside their chunk, full coverage, true token counts."""
    text = document.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    previous_start = -1
    for chunk in chunks:
        assert chunk.document is document
        assert 0 <= chunk.start < chunk.end <= len(text)
        # Not strictly: trimming whitespace can leave a character window starting where the previous did.
        assert chunk.start >= previous_start, "chunks must advance through the document"
        previous_start = chunk.start
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()
        assert chunk.section == document.section_at(chunk.start)
        if max_tokens is not None:
            assert chunk.token_count <= max_tokens
        if max_chars is not None:
            assert len(chunk.text) <= max_chars
        position = chunk.start
        for sentence in chunk.sentences:
            assert position <= sentence.start < sentence.end <= chunk.end
            assert text[sentence.start : sentence.end] == sentence.text
            assert sentence.text == sentence.text.strip()
            position = sentence.end
    marks = np.zeros(len(text) + 1, dtype=np.int64)
    for chunk in chunks:
        marks[chunk.start] += 1
        marks[chunk.end] -= 1
    covered = np.cumsum(marks[:-1]) > 0
    uncovered = np.flatnonzero(nonspace_mask(text) & ~covered)
    assert len(uncovered) == 0, f"non-whitespace at {uncovered[:5].tolist()} lies in no chunk"
    if counts:
        assert real_counts(tokenizer, [c.text for c in chunks]) == [c.token_count for c in chunks]


def assert_sentence_chunks(document: Document, chunks: list[Chunk]) -> None:
    """A sentence chunk runs from its first sentence to its last, with only whitespace between them."""
    text = document.text
    assert all(a.start < b.start and a.end < b.end for a, b in zip(chunks, chunks[1:], strict=False))
    for chunk in chunks:
        assert chunk.sentences
        assert chunk.start == chunk.sentences[0].start
        assert chunk.end == chunk.sentences[-1].end
        for before, after in zip(chunk.sentences, chunk.sentences[1:], strict=False):
            assert text[before.end : after.start].strip() == ""


def assert_sentences_kept_whole(document: Document, chunks: list[Chunk], tokenizer: Tokenizer, budget: int) -> None:
    """Each sentence of the splitter appears whole in a chunk, unless it alone is over budget, and then
    its pieces tile it."""
    text = document.text
    pieces = sorted({(s.start, s.end) for chunk in chunks for s in chunk.sentences})
    starts = [start for start, _ in pieces]
    originals = split_sentences(text)
    counts = real_counts(tokenizer, [text[s:e] for s, e in originals], specials=False)
    used = 0
    for (start, end), count in zip(originals, counts, strict=True):
        lo, hi = bisect_left(starts, start), bisect_left(starts, end)
        inside = pieces[lo:hi]
        used += len(inside)
        if inside == [(start, end)]:
            continue
        assert count > budget, f"sentence {text[start:end]!r} ({count} tokens) was split"
        assert inside and inside[0][0] == start and inside[-1][1] == end
        for (_, e1), (s2, _) in zip(inside, inside[1:], strict=False):
            assert e1 <= s2 and text[e1:s2].strip() == ""
    assert used == len(pieces), "a chunk holds a sentence the splitter does not know"


def shared_sentences(first: Chunk, second: Chunk) -> int:
    """How many sentences ``second`` carries over from ``first`` (checked to be a suffix/prefix pair)."""
    earlier = {(s.start, s.end) for s in first.sentences}
    shared = 0
    while shared < len(second.sentences) and (
        (second.sentences[shared].start, second.sentences[shared].end) in earlier
    ):
        shared += 1
    assert all((s.start, s.end) not in earlier for s in second.sentences[shared:])
    tail = [(s.start, s.end) for s in first.sentences[len(first.sentences) - shared :]] if shared else []
    assert tail == [(s.start, s.end) for s in second.sentences[:shared]]
    return shared
