"""Property-based tests: for arbitrary text and parameters, the chunkers keep their invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from memflow.components.chunkers.recursive import DEFAULT_SEPARATORS, RecursiveCharacterChunker
from memflow.components.chunkers.sentence_split import split_sentences
from memflow.components.chunkers.sentences import SentenceChunker
from memflow.types import Document
from tests.components.chunkers.checks import (
    assert_sentence_chunks,
    assert_sentences_kept_whole,
    assert_valid_chunks,
    shared_sentences,
)
from tests.components.chunkers.test_chunkers_recursive import langchain_split

SPECIALS = 2

_WORDS = st.sampled_from(
    [
        "the", "Apple", "runs", "Mr.", "Dr.", "e.g.", "U.S.", "3.14", "J.", "etc.", "No.", "naïve", "Café",
        "ÉCOLE", "😀", "中文字", "don't", "(aside)", '"Quoted."', "\u201cSo?\u201d", "\u2026", "...", "a.m.",
        "broken.The", "www.Example.com", "\u2028", "\x0b", "\x00", "\x85", "\ufffd", "\u200b", "e\u0301",
    ]
)  # fmt: skip
_SEPARATORS = st.sampled_from(
    [" ", " ", " ", " ", ". ", "! ", "? ", "\n", "\n\n", ".", ",", "  ", "\t", "\n- ", ".\n\n", "; "]
)
_RANDOM_WORDS = st.text(min_size=1, max_size=12)  # any code point but surrogates: controls, marks, CJK
_LONG_WORDS = st.text(alphabet="qzxjkvbwyäö", min_size=30, max_size=150)
TEXTS = st.lists(st.one_of(_WORDS, _SEPARATORS, _SEPARATORS, _RANDOM_WORDS, _LONG_WORDS), max_size=160).map("".join)

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make(text: str) -> Document:
    return Document(uri="memory://prop", text=text, content_hash="x")


@SETTINGS
@given(text=TEXTS)
def test_sentence_spans_partition_the_text(text: str) -> None:
    position = 0
    covered = 0
    for start, end in split_sentences(text):
        assert position <= start < end
        assert text[position:start].strip() == ""
        assert text[start:end] == text[start:end].strip()
        covered += sum(not ch.isspace() for ch in text[start:end])
        position = end
    assert text[position:].strip() == ""
    assert covered == sum(not ch.isspace() for ch in text)


@SETTINGS
@given(
    text=TEXTS,
    max_tokens=st.integers(min_value=8, max_value=80),
    overlap=st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.5)),
)
def test_sentence_chunker_invariants(text: str, max_tokens: int, overlap: float, tokenizer: Tokenizer) -> None:
    document = make(text)
    chunker = SentenceChunker(max_tokens=max_tokens, overlap=overlap)
    chunks = chunker.chunk_document(document)
    assert_valid_chunks(document, chunks, tokenizer, max_tokens=max_tokens)
    assert_sentence_chunks(document, chunks)
    assert_sentences_kept_whole(document, chunks, tokenizer, max_tokens - SPECIALS)
    assert bool(chunks) == bool(text.strip())
    for first, second in zip(chunks, chunks[1:], strict=False):
        shared = shared_sentences(first, second)
        assert shared < len(first.sentences)
        if int(overlap * max_tokens) == 0:
            assert shared == 0
    again = SentenceChunker(max_tokens=max_tokens, overlap=overlap).chunk_document(document)
    assert [(c.start, c.end, c.token_count, len(c.sentences)) for c in again] == [
        (c.start, c.end, c.token_count, len(c.sentences)) for c in chunks
    ]


@SETTINGS
@given(
    text=TEXTS,
    sizes=st.integers(min_value=2, max_value=300).flatmap(
        lambda size: st.tuples(st.just(size), st.integers(min_value=0, max_value=size - 1))
    ),
)
def test_recursive_chunker_invariants(text: str, sizes: tuple[int, int], tokenizer: Tokenizer) -> None:
    chunk_size, chunk_overlap = sizes
    document = make(text)
    chunks = RecursiveCharacterChunker(chunk_size=chunk_size, chunk_overlap=chunk_overlap).chunk_document(document)
    assert_valid_chunks(document, chunks, tokenizer, max_chars=chunk_size)
    assert [c.text for c in chunks] == langchain_split(text, chunk_size, chunk_overlap, list(DEFAULT_SEPARATORS))
    for chunk in chunks:
        assert [(s.start, s.end) for s in chunk.sentences] == split_sentences(text, chunk.start, chunk.end)
