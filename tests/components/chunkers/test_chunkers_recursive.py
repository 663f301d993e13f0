"""RecursiveCharacterChunker: LangChain's algorithm, exact spans, size limits, token counts."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import pytest
from tokenizers import Tokenizer

from memflow.components.chunkers.recursive import DEFAULT_SEPARATORS, RecursiveCharacterChunker
from memflow.components.chunkers.sentence_split import split_sentences
from memflow.testing import check_component
from memflow.types import Document, Section
from tests.components.chunkers.checks import assert_valid_chunks


def make(text: str, **extra: object) -> Document:
    return Document(uri="memory://t", text=text, content_hash="x", **extra)  # type: ignore[arg-type]


def langchain_split(text: str, chunk_size: int, chunk_overlap: int, separators: list[str]) -> list[str]:
    """A string-based port of langchain_text_splitters.RecursiveCharacterTextSplitter.split_text with its
    defaults (keep_separator=True, i.e. at the start; strip_whitespace=True), kept as a test oracle."""

    def merge(splits: list[str]) -> list[str]:
        docs: list[str] = []
        current: list[str] = []
        total = 0
        for piece in splits:
            if total + len(piece) > chunk_size and current:
                joined = "".join(current).strip()
                if joined:
                    docs.append(joined)
                while total > chunk_overlap or (total + len(piece) > chunk_size and total > 0):
                    total -= len(current.pop(0))
            current.append(piece)
            total += len(piece)
        joined = "".join(current).strip()
        if joined:
            docs.append(joined)
        return docs

    def split(text: str, separators: list[str]) -> list[str]:
        separator, rest = separators[-1], []
        for i, candidate in enumerate(separators):
            if candidate == "":
                separator = candidate
                break
            if re.search(re.escape(candidate), text):
                separator, rest = candidate, separators[i + 1 :]
                break
        if separator:
            parts = re.split(f"({re.escape(separator)})", text)
            pieces = [parts[i] + parts[i + 1] for i in range(1, len(parts) - 1, 2)]
            if len(parts) % 2 == 0:
                pieces += parts[-1:]
            pieces = [p for p in [parts[0], *pieces] if p != ""]
        else:
            pieces = list(text)
        final: list[str] = []
        good: list[str] = []
        for piece in pieces:
            if len(piece) < chunk_size:
                good.append(piece)
                continue
            if good:
                final.extend(merge(good))
                good = []
            if not rest:
                final.append(piece)
            else:
                final.extend(split(piece, rest))
        if good:
            final.extend(merge(good))
        return final

    return split(text, separators)


@pytest.mark.parametrize(("chunk_size", "chunk_overlap"), [(1000, 100), (300, 0), (120, 60)])
def test_every_pg_essay(
    pg_documents: list[Document], tokenizer: Tokenizer, chunk_size: int, chunk_overlap: int
) -> None:
    chunker = RecursiveCharacterChunker(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    result = chunker.run(documents=pg_documents)["chunks"]
    position = 0
    for document in pg_documents:
        count = sum(1 for c in result[position:] if c.document is document)
        chunks, position = result[position : position + count], position + count
        assert_valid_chunks(document, chunks, tokenizer, max_chars=chunk_size)
        for chunk in chunks:
            assert [(s.start, s.end) for s in chunk.sentences] == split_sentences(document.text, chunk.start, chunk.end)
        oracle = langchain_split(document.text, chunk_size, chunk_overlap, list(DEFAULT_SEPARATORS))
        assert [c.text for c in chunks] == oracle
    assert position == len(result)


def test_overlap_is_in_characters(pg_documents: list[Document]) -> None:
    # Lines of the essays run to about 70 characters: an overlap of 100 carries one line over.
    chunks = RecursiveCharacterChunker(chunk_size=300, chunk_overlap=100).chunk_document(pg_documents[0])
    overlapping = sum(1 for a, b in zip(chunks, chunks[1:], strict=False) if b.start < a.end)
    assert overlapping > len(chunks) // 2
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.end - b.start <= 100
    disjoint = RecursiveCharacterChunker(chunk_size=200, chunk_overlap=0).chunk_document(pg_documents[0])
    assert all(a.end <= b.start for a, b in zip(disjoint, disjoint[1:], strict=False))


def test_text_without_separators_never_exceeds_the_size(tokenizer: Tokenizer) -> None:
    document = make("x" * 2500 + "\n\n" + "y" * 30)
    chunks = RecursiveCharacterChunker(chunk_size=1000, chunk_overlap=100, separators=["\n\n"]).chunk_document(document)
    assert_valid_chunks(document, chunks, tokenizer, max_chars=1000)
    assert [(c.start, c.end) for c in chunks] == [(0, 1000), (900, 1900), (1800, 2500), (2502, 2532)]


def test_blank_and_tiny_documents(tokenizer: Tokenizer) -> None:
    chunker = RecursiveCharacterChunker()
    assert chunker.chunk_document(make("")) == []
    assert chunker.chunk_document(make(" \n\n\t ")) == []
    [chunk] = chunker.chunk_document(make("\n\n  Just this.  \n"))
    assert (chunk.start, chunk.end, chunk.text) == (4, 14, "Just this.")
    assert chunk.token_count == len(tokenizer.encode("Just this.").ids) == 5
    assert [s.text for s in chunk.sentences] == ["Just this."]


def test_sections(tokenizer: Tokenizer) -> None:
    text = "Intro words go here.\n\n" * 20 + "Body words go here.\n\n" * 20
    body = text.index("Body")
    document = make(text, sections=[Section(0, "Intro"), Section(body, "Body")])
    chunks = RecursiveCharacterChunker(chunk_size=100, chunk_overlap=0).chunk_document(document)
    assert_valid_chunks(document, chunks, tokenizer, max_chars=100)
    assert {c.section for c in chunks} == {"Intro", "Body"}


def test_deterministic(pg_documents: list[Document]) -> None:
    chunker = RecursiveCharacterChunker(chunk_size=500, chunk_overlap=50)
    first = [(c.start, c.end, c.token_count) for c in chunker.run(documents=pg_documents[:10])["chunks"]]
    second = [(c.start, c.end, c.token_count) for c in chunker.run(documents=pg_documents[:10])["chunks"]]
    assert first == second


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"chunk_size": 0}, "chunk_size must be at least 1"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "must be below chunk_size"),
        ({"chunk_overlap": -1}, "chunk_overlap must be at least 0"),
        ({"chunk_size": 10.5}, "chunk_size must be an integer"),
        ({"separators": "\n"}, "separators must be a list"),
        ({"separators": ["\n", 3]}, "separators must be a list"),
        ({"tokenizer": ""}, "tokenizer must be"),
    ],
)
def test_parameters_are_checked(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecursiveCharacterChunker(**params)  # type: ignore[arg-type]


def test_component_contract_and_entry_point() -> None:
    outputs = check_component(
        RecursiveCharacterChunker,
        params={"chunk_size": 10, "chunk_overlap": 0},
        inputs={"documents": [make("Hello there. General Kenobi.")]},
    )
    # LangChain keeps a separator at the start of what follows it: ". General".
    assert [c.text for c in outputs["chunks"]] == ["Hello", "there", ". General", "Kenobi."]
    assert RecursiveCharacterChunker().params() == {
        "chunk_size": 1000,
        "chunk_overlap": 100,
        "separators": ["\n\n", "\n", ". ", " ", ""],
        "tokenizer": "default",
    }
    found = {e.name: e for e in entry_points(group="memflow.components")}
    assert found["chunkers.recursive"].load() is RecursiveCharacterChunker
