"""The recurrent summary state: bounded, one pass, and close to the batch selection over the whole document."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memflow.components.chunkers.sentences import SentenceChunker
from memflow.components.encoders.sentence_transformers import SentenceTransformersEncoder
from memflow.components.loaders.text import TextLoader
from memflow.components.summarizers.centrality import (
    CentralitySummarizer,
    batch_summary,
    empty_state,
    update_state,
)
from memflow.testing import check_component, make_chunks, make_document

# Long enough essays that a state of 8 slots must drop most sentences.
ESSAYS = ["unions", "know", "want", "mod", "diff", "bias", "weird"]


@pytest.fixture(scope="module")
def encoded_essays(pg_essays: Path):  # type: ignore[no-untyped-def]
    loader, chunker, encoder = TextLoader(), SentenceChunker(), SentenceTransformersEncoder()
    out = []
    for name in ESSAYS:
        (document,) = loader.load_file(pg_essays / f"{name}.txt")
        chunks = chunker.chunk_document(document)
        encoder.run(chunks=chunks)
        out.append(chunks)
    return out


def test_one_pass_state_recovers_most_of_the_batch_selection(encoded_essays) -> None:  # type: ignore[no-untyped-def]
    summarizer = CentralitySummarizer(slots=8)
    recovered, total = 0, 0
    for chunks in encoded_essays:
        state = summarizer.summarize(chunks)
        assert state is not None and len(state.slots) == 8
        online = {(s.start, s.end) for s in state.slots}
        batch = set(batch_summary(chunks, capacity=8))
        recovered += len(online & batch)
        total += len(batch)
    fraction = recovered / total
    print(f"\none-pass summary state recovers {recovered}/{total} = {fraction:.2f} of the batch selection")
    # A random 8 of these essays' ~60-150 sentences would share about 1 sentence with the batch selection.
    assert fraction >= 0.5


def test_state_is_bounded_and_counts_each_sentence_once(encoded_essays) -> None:  # type: ignore[no-untyped-def]
    chunks = encoded_essays[0]
    state = CentralitySummarizer(slots=4).summarize(chunks)
    assert state is not None
    assert len(state.slots) == 4 and state.chunks_seen == len(chunks)
    expected = np.zeros(384, dtype=np.float32)
    seen: set[tuple[int, int]] = set()
    for chunk in chunks:
        for sentence, vector in zip(chunk.sentences, chunk.sentence_vectors, strict=True):
            if (sentence.start, sentence.end) not in seen:
                seen.add((sentence.start, sentence.end))
                expected += vector.astype(np.float32)
    assert state.sentences_seen == len(seen)
    assert np.allclose(state.centroid_sum, expected, atol=1e-2)
    assert [s.start for s in state.slots] == sorted(s.start for s in state.slots)


def test_update_is_a_recurrence_over_chunks() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    spans, pos = [], 0
    for _ in range(12):
        end = text.index(".", pos) + 1
        spans.append((pos, end))
        pos = end + 1
    chunks = make_chunks(make_document(text), spans, dimension=8)
    state = empty_state("memory://test", capacity=3, dimension=8)
    for chunk in chunks:
        state = update_state(state, chunk)
        assert len(state.slots) <= 3
    assert state.chunks_seen == 12 and state.sentences_seen == 12 and state.read_until == spans[-1][1]


def test_summarizer_component_contract(encoded_essays) -> None:  # type: ignore[no-untyped-def]
    outputs = check_component(CentralitySummarizer, params={"slots": 2}, inputs={"chunks": encoded_essays[1]})
    assert outputs["chunks"] is encoded_essays[1]
    assert len(outputs["states"]) == 1 and len(outputs["states"][0].slots) == 2
    with pytest.raises(ValueError, match="slots"):
        CentralitySummarizer(slots=0)
