"""The attention decoder over a real store, with vectors chosen so the right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memflow.components.base import RunContext
from memflow.components.decoders.attention import AttentionDecoder
from memflow.components.summarizers.centrality import CentralitySummarizer
from memflow.storage.store import Store
from memflow.testing import check_component, make_chunks, make_document
from memflow.types import Hit

TEXT = "Cats purr. Dogs bark. Birds sing. Fish swim. Cows moo."
SPANS = [(0, 10), (11, 21), (22, 33), (34, 44), (45, 54)]


@pytest.fixture()
def store_and_hits(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s")
    store.check_encoder("test", 8, record=True)
    store.check_index("Flat")
    document = make_document(TEXT, uri="/animals.txt", title="Animals")
    chunks = make_chunks(document, SPANS, dimension=8, seed=4)
    state = CentralitySummarizer(slots=2).summarize(chunks)
    store.write_documents([(document, chunks, state)])
    hits = [
        Hit(
            chunk_id=c.id,
            document=document.uri,
            title="Animals",
            ordinal=c.ordinal,
            start=c.start,  # type: ignore[arg-type]
            end=c.end,
            text=c.text,
            score=0.5,
            rank=i + 1,
        )
        for i, c in enumerate(chunks[:3])
    ]
    return store, hits, chunks


def _decoder(store: Store, **params: object) -> AttentionDecoder:
    decoder = AttentionDecoder(**params)  # type: ignore[arg-type]
    decoder.bind(RunContext(store=store))
    return decoder


def test_attends_most_to_the_sentence_nearest_the_question(store_and_hits) -> None:  # type: ignore[no-untyped-def]
    store, hits, chunks = store_and_hits
    answer = _decoder(store, summaries=False).run(query="?", query_vector=chunks[1].vector, hits=hits)["answer"]
    assert answer.evidence[0].text == "Dogs bark."
    assert answer.citations[0].start == 11 and answer.citations[0].end == 21
    assert answer.citations[0].chunk_id == chunks[1].id
    assert len(answer.evidence) == 3  # only the retrieved chunks' sentences
    assert "Dogs bark." in answer.text


def test_summary_state_sentences_join_the_memory(store_and_hits) -> None:  # type: ignore[no-untyped-def]
    store, hits, chunks = store_and_hits
    answer = _decoder(store).run(query="?", query_vector=chunks[4].vector, hits=hits[:1])["answer"]
    origins = {e.origin for e in answer.evidence}
    assert "summary" in origins
    for evidence in answer.evidence:
        assert TEXT[evidence.citation.start : evidence.citation.end] == evidence.text


def test_hops_refine_the_query_and_each_hop_is_a_distribution(store_and_hits) -> None:  # type: ignore[no-untyped-def]
    store, hits, chunks = store_and_hits
    one = _decoder(store, hops=1).run(query="?", query_vector=chunks[0].vector, hits=hits)["answer"]
    three = _decoder(store, hops=3).run(query="?", query_vector=chunks[0].vector, hits=hits)["answer"]
    assert len(one.attention) == 1 and len(three.attention) == 3
    for hop in three.attention:
        assert sum(hop) == pytest.approx(1.0, abs=1e-5)
    assert three.attention[0] != three.attention[2]


def test_answer_keeps_reading_order_and_the_sentence_budget(store_and_hits) -> None:  # type: ignore[no-untyped-def]
    store, hits, chunks = store_and_hits
    flat = np.ones(8, dtype=np.float32) / np.sqrt(8)
    answer = _decoder(store, max_sentences=2, min_relative_weight=0.0, summaries=False).run(
        query="?", query_vector=flat, hits=hits
    )["answer"]
    assert len(answer.citations) == 2
    assert answer.citations[0].start < answer.citations[1].start


def test_no_hits_gives_an_empty_answer(store_and_hits) -> None:  # type: ignore[no-untyped-def]
    store, _, chunks = store_and_hits
    answer = _decoder(store).run(query="?", query_vector=chunks[0].vector, hits=[])["answer"]
    assert answer.text == "" and answer.citations == []


def test_parameters_are_checked() -> None:
    check_component(AttentionDecoder, params={"hops": 1})
    for bad in ({"hops": 0}, {"scale": 0.0}, {"max_sentences": 0}, {"min_relative_weight": 2.0}):
        with pytest.raises(ValueError):
            AttentionDecoder(**bad)  # type: ignore[arg-type]
