"""SentenceChunker: token budgets counted with the encoder's tokenizer, whole sentences, overlap, edges."""

from __future__ import annotations

import time
from importlib.metadata import entry_points

import pytest
from tokenizers import Tokenizer

from memflow.components.chunkers.sentences import SentenceChunker
from memflow.testing import check_component
from memflow.types import Chunk, Document, Section
from tests.components.chunkers.checks import (
    assert_sentence_chunks,
    assert_sentences_kept_whole,
    assert_valid_chunks,
    real_counts,
    shared_sentences,
)

SPECIALS = 2  # [CLS] and [SEP] of all-MiniLM-L6-v2


def make(text: str, **extra: object) -> Document:
    return Document(uri="memory://t", text=text, content_hash="x", **extra)  # type: ignore[arg-type]


def spans(chunks: list[Chunk]) -> list[tuple[int, int, int, tuple[tuple[int, int], ...]]]:
    return [(c.start, c.end, c.token_count, tuple((s.start, s.end) for s in c.sentences)) for c in chunks]


@pytest.fixture(scope="module")
def default_chunks(pg_documents: list[Document]) -> list[list[Chunk]]:
    return list(SentenceChunker().chunk_documents(pg_documents))


def test_defaults_on_every_pg_essay(
    pg_documents: list[Document], default_chunks: list[list[Chunk]], tokenizer: Tokenizer
) -> None:
    chunker = SentenceChunker()
    assert chunker.budget == 256 - SPECIALS
    total = 0
    for document, chunks in zip(pg_documents, default_chunks, strict=True):
        assert chunks, document.uri
        assert_valid_chunks(document, chunks, tokenizer, max_tokens=256)
        assert_sentence_chunks(document, chunks)
        assert_sentences_kept_whole(document, chunks, tokenizer, chunker.budget)
        total += len(chunks)
    # 150k tokens of prose in chunks of up to 254 tokens with 25 tokens of overlap: several hundred chunks.
    assert 550 < total < 800


def test_chunks_end_only_when_the_next_sentence_does_not_fit(
    default_chunks: list[list[Chunk]], tokenizer: Tokenizer
) -> None:
    budget = 256 - SPECIALS
    for chunks in default_chunks[:15]:
        for first, second in zip(chunks, chunks[1:], strict=False):
            new = second.sentences[shared_sentences(first, second)]
            new_tokens = real_counts(tokenizer, [new.text], specials=False)[0]
            assert first.token_count - SPECIALS + new_tokens > budget


@pytest.mark.parametrize(("max_tokens", "overlap"), [(64, 0.0), (32, 0.5)])
def test_other_budgets_on_every_pg_essay(
    pg_documents: list[Document], tokenizer: Tokenizer, max_tokens: int, overlap: float
) -> None:
    chunker = SentenceChunker(max_tokens=max_tokens, overlap=overlap)
    for document, chunks in zip(pg_documents, chunker.chunk_documents(pg_documents), strict=True):
        assert_valid_chunks(document, chunks, tokenizer, max_tokens=max_tokens)
        assert_sentence_chunks(document, chunks)
        assert_sentences_kept_whole(document, chunks, tokenizer, max_tokens - SPECIALS)


def test_overlap_carries_the_last_sentences_that_fit(pg_documents: list[Document], tokenizer: Tokenizer) -> None:
    chunker = SentenceChunker(max_tokens=128, overlap=0.5)
    budget, room = 128 - SPECIALS, 64
    pairs = carried = 0
    for document in pg_documents[:12]:
        chunks = chunker.chunk_document(document)
        for first, second in zip(chunks, chunks[1:], strict=False):
            shared = shared_sentences(first, second)
            pairs += 1
            carried += shared > 0
            assert shared < len(first.sentences), "a chunk must not repeat the whole previous chunk"
            sizes = real_counts(tokenizer, [s.text for s in first.sentences], specials=False)
            following = real_counts(tokenizer, [second.sentences[shared].text], specials=False)[0]
            kept = sum(sizes[len(sizes) - shared :]) if shared else 0
            limit = min(room, budget - following)
            assert kept <= limit
            if shared + 1 < len(first.sentences):  # the next sentence back would not have fitted
                assert kept + sizes[len(sizes) - shared - 1] > limit
    assert pairs > 100 and carried > pairs // 2


def test_no_overlap_means_disjoint_chunks(pg_documents: list[Document]) -> None:
    for document in pg_documents[:10]:
        chunks = SentenceChunker(overlap=0.0).chunk_document(document)
        for first, second in zip(chunks, chunks[1:], strict=False):
            assert first.end <= second.start  # equal where sentences are glued ("end.Next")
            assert shared_sentences(first, second) == 0


def test_deterministic_and_batching_changes_nothing(
    pg_documents: list[Document], default_chunks: list[list[Chunk]]
) -> None:
    again = SentenceChunker().run(documents=pg_documents)["chunks"]
    assert spans(again) == spans([c for chunks in default_chunks for c in chunks])
    for document, chunks in zip(pg_documents[:5], default_chunks, strict=False):
        assert spans(SentenceChunker().chunk_document(document)) == spans(chunks)


def test_blank_documents_give_no_chunks_and_keep_the_others_in_order(tokenizer: Tokenizer) -> None:
    documents = [make(""), make("One sentence. Two sentences."), make(" \n\t "), make("Last one.")]
    per_document = list(SentenceChunker().chunk_documents(documents))
    assert [len(chunks) for chunks in per_document] == [0, 1, 0, 1]
    assert per_document[1][0].text == "One sentence. Two sentences."
    assert per_document[1][0].token_count == 2 + 6
    assert per_document[3][0].document is documents[3]
    flat = SentenceChunker().run(documents=documents)["chunks"]
    assert [c.text for c in flat] == ["One sentence. Two sentences.", "Last one."]
    assert SentenceChunker().run(documents=[])["chunks"] == []


def test_sections_follow_the_chunk_start(tokenizer: Tokenizer) -> None:
    text = "Intro text here. " * 30 + "\n\nMethods start. " + "More method text. " * 60
    methods = text.index("Methods")
    document = make(text, sections=[Section(0, "Intro"), Section(methods, "Methods")])
    chunks = SentenceChunker(max_tokens=64, overlap=0.0).chunk_document(document)
    assert_valid_chunks(document, chunks, tokenizer, max_tokens=64)
    assert [c.section for c in chunks] == [("Methods" if c.start >= methods else "Intro") for c in chunks]
    assert {"Intro", "Methods"} == {c.section for c in chunks}


def test_oversize_sentence_is_split_at_words(tokenizer: Tokenizer) -> None:
    words = " ".join(f"word{i % 50}, and" for i in range(400))
    text = f"Short start. {words} end of it. Short finish."
    document = make(text)
    chunker = SentenceChunker(max_tokens=64, overlap=0.2)
    chunks = chunker.chunk_document(document)
    assert_valid_chunks(document, chunks, tokenizer, max_tokens=64)
    assert_sentences_kept_whole(document, chunks, tokenizer, 62)
    pieces = {(s.start, s.end) for c in chunks for s in c.sentences}
    assert len(pieces) > 10
    for start, end in pieces:  # cut only between words
        assert start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
        assert end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())


def test_words_longer_than_the_budget_are_cut_inside(tokenizer: Tokenizer) -> None:
    # Random-looking words of 60-90 characters each tokenize into dozens of word pieces.
    letters = "qzxjkvbwy"
    words = ["".join(letters[(i * 7 + j * 3) % 9] for j in range(60 + i % 30)) for i in range(12)]
    text = "Begin. " + " ".join(words) + ". Then a normal sentence follows here."
    document = make(text)
    for max_tokens, overlap in [(8, 0.0), (8, 0.5), (12, 0.3), (20, 0.1)]:
        chunks = SentenceChunker(max_tokens=max_tokens, overlap=overlap).chunk_document(document)
        assert_valid_chunks(document, chunks, tokenizer, max_tokens=max_tokens)
        assert_sentence_chunks(document, chunks)


def test_huge_document_is_tokenized_in_blocks(pg_documents: list[Document], tokenizer: Tokenizer) -> None:
    prose = " ".join(d.text for d in pg_documents[:20]).replace("\n", " ")
    # ~1.5 MB on one line, plus one 300 kB "sentence" with no punctuation at all (split at words).
    run_on = " ".join(f"token{i % 997}" for i in range(30_000))
    text = prose + " " + run_on + " " + prose[:200_000]
    document = make(text)
    began = time.perf_counter()
    chunks = SentenceChunker().chunk_document(document)
    elapsed = time.perf_counter() - began
    assert elapsed < 20
    assert_valid_chunks(document, chunks, tokenizer, max_tokens=256, counts=False)
    assert_sentence_chunks(document, chunks)
    sample = chunks[::7] + [c for c in chunks if run_on[:50] in c.text or c.start >= len(prose)]
    assert real_counts(tokenizer, [c.text for c in sample]) == [c.token_count for c in sample]


def test_odd_characters_count_exactly(tokenizer: Tokenizer) -> None:
    text = (
        "Caf\u00e9 na\u00efve \u00c9cole. Control\x0bglued\x1cchars here.\x0cNext page starts. "
        "Emoji \U0001f600 and CJK \u4e2d\u6587\u5b57 mixed. \u201cQuoted.\u201d Then\u2028a line sep. "
        "Zero\u200bwidth and \ufffd replacement. \x00Null start. End\x85nel."
    ) * 20
    document = make(text)
    for max_tokens, overlap in [(8, 0.5), (16, 0.0), (40, 0.3), (256, 0.1)]:
        chunks = SentenceChunker(max_tokens=max_tokens, overlap=overlap).chunk_document(document)
        assert_valid_chunks(document, chunks, tokenizer, max_tokens=max_tokens)
        assert_sentence_chunks(document, chunks)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"overlap": 0.6}, "overlap must be in"),
        ({"overlap": -0.1}, "overlap must be in"),
        ({"overlap": True}, "overlap must be a number"),
        ({"max_tokens": 4}, "max_tokens must be at least 8"),
        ({"max_tokens": 256.0}, "max_tokens must be an integer"),
        ({"max_tokens": True}, "max_tokens must be an integer"),
        ({"tokenizer": ""}, "tokenizer must be"),
    ],
)
def test_parameters_are_checked(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SentenceChunker(**params)  # type: ignore[arg-type]


def test_component_contract_and_entry_point() -> None:
    outputs = check_component(
        SentenceChunker, params={"max_tokens": 32}, inputs={"documents": [make("Hello there. General.")]}
    )
    assert [c.text for c in outputs["chunks"]] == ["Hello there. General."]
    assert SentenceChunker(max_tokens=32).params() == {
        "tokenizer": "default",
        "max_tokens": 32,
        "overlap": 0.1,
    }
    found = {e.name: e for e in entry_points(group="memflow.components")}
    assert found["chunkers.sentences"].load() is SentenceChunker


def test_speed_on_pg_essays(pg_documents: list[Document]) -> None:
    chunker = SentenceChunker()
    chunker.chunk_document(pg_documents[0])  # load the tokenizer
    began = time.perf_counter()
    chunker.run(documents=pg_documents)
    elapsed = time.perf_counter() - began
    # About 0.6 s on 2 cores (tokenization is most of it); fail only on a gross regression.
    assert elapsed < 6, f"{elapsed:.2f}s for 644 kB"
