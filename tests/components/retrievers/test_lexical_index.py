"""The lexical (BM25) index in the SQL store: scores, incremental upkeep, old stores, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from memflow.storage.lexical import TOKENIZER, LexicalChunkRow, LexicalPostingRow, field_text, tokenize
from memflow.storage.sql import SettingRow
from memflow.storage.store import Store
from memflow.testing import make_chunks, make_document

TEXTS = {
    "visa": "The government could create a startup visa. A visa for founders costs nothing.",
    "sun": "The sun rises in the east. Founders of companies rarely watch the sun.",
    "nft": "An NFT is a token on a blockchain. Artists sell NFTs to collectors.",
    "cells": "Stem cells differentiate into neurons. Neuronal differentiation of stem cells is studied.",
}


def _store(directory: Path, url: str | None = None) -> Store:
    return Store(directory, url=url)


def _write(store: Store, name: str, text: str, *, title: str = "") -> None:
    document = make_document(text, uri=f"memory://{name}", title=title)
    middle = text.index(". ") + 1
    store.check_encoder("test-encoder", 384, record=True)
    store.write_documents([(document, make_chunks(document, [(0, middle), (middle + 1, len(text))]), None)])


def _reference_bm25(query: str, texts: dict[int, str], k1: float = 0.9, b: float = 0.4) -> dict[int, float]:
    """Lucene BM25 written out independently of the SQL implementation."""
    docs = {i: Counter(tokenize(t)) for i, t in texts.items()}
    lengths = {i: sum(c.values()) for i, c in docs.items()}
    avgdl = sum(lengths.values()) / len(lengths)
    scores = {}
    for i, counts in docs.items():
        score = 0.0
        for term, qtf in Counter(tokenize(query)).items():
            df = sum(1 for c in docs.values() if term in c)
            if df == 0 or term not in counts:
                continue
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            tf = counts[term]
            score += qtf * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[i] / avgdl))
        if score > 0:
            scores[i] = score
    return scores


def test_tokenizer_lowercases_drops_stop_words_and_possessives_and_stems() -> None:
    assert tokenize("The Founders' visas are NOT the founder's Visa!") == ["founder", "visa", "founder", "visa"]
    assert tokenize("Differentiation of stem cells, studied_in 2021") == ["differenti", "stem", "cell", "studi", "2021"]
    assert tokenize("the of and") == []


def test_fields_add_the_title_and_section_unless_already_there() -> None:
    assert field_text("Body.", title="Essay", section="Part 1") == "Essay\nPart 1\nBody."
    assert field_text("Essay\n\nBody.", title="Essay") == "Essay\n\nBody."
    assert field_text("Body.", title="4983", document_id="4983") == "Body."


def _check_index(store: Store) -> None:
    for name, text in TEXTS.items():
        _write(store, name, text)
    with Session(store.engine) as session:
        chunk_texts = {c.id: c.text for c in store.chunks(list(range(1, 100)))}
        assert session.scalar(select(func.count()).select_from(LexicalChunkRow)) == len(chunk_texts) == 8
    expected = _reference_bm25("startup visa founders", chunk_texts)
    found = store.lexical.search("startup visa founders", 10)
    assert [i for i, _ in found] == sorted(expected, key=lambda i: -expected[i])
    for chunk_id, score in found:
        assert score == pytest.approx(expected[chunk_id], rel=1e-9)
    assert store.lexical.score("startup visa founders", [i for i, _ in found[:2]] + [999]) == {
        found[0][0]: pytest.approx(found[0][1]),
        found[1][0]: pytest.approx(found[1][1]),
        999: 0.0,
    }
    assert store.lexical.search("zebra quagga", 5) == [] and store.lexical.search("the of", 5) == []

    # a document holds a term when any of its chunks does: "startup" is in the visa essay's first chunk,
    # "founder" only in its second
    ids = {c.document: c.document_id for c in store.chunks(list(range(1, 100)))}
    held = store.lexical.document_terms(tokenize("startup founders sun zebra"), ids.values())
    assert held == {ids["memory://visa"]: {"startup", "founder"}, ids["memory://sun"]: {"sun", "founder"}}
    assert store.lexical.document_terms([], ids.values()) == {} == store.lexical.document_terms(["sun"], [])

    # replacing a document replaces its postings in the same write; forgetting removes them
    _write(store, "visa", "Nothing here about travel documents. Only gardens and roses.")
    assert all(store.chunks([i])[0].document != "memory://visa" for i, _ in store.lexical.search("visa", 10))
    assert store.lexical.search("roses", 3)[0][0] in {
        c.id for c in store.chunks(list(range(1, 100))) if c.document == "memory://visa"
    }
    assert store.forget(["memory://visa"]) == 1
    assert store.lexical.search("roses gardens", 3) == []
    with Session(store.engine) as session:
        indexed = set(session.scalars(select(LexicalChunkRow.chunk_id)))
        posted = set(session.scalars(select(LexicalPostingRow.chunk_id)))
    live = {c.id for c in store.chunks(list(range(1, 100)))}
    assert indexed == live and posted <= live and len(live) == 6
    assert store.lexical.stats()["chunks"] == 6


def test_index_on_sqlite(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        _check_index(store)
        assert {"lexical_postings", "lexical_chunks"} <= set(store.tables())


@pytest.mark.postgres
def test_index_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    with _store(tmp_path, postgres_url) as store:
        assert store.engine.dialect.name == "postgresql"
        _check_index(store)


def test_a_store_from_before_the_index_gets_it_built_on_first_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _store(tmp_path) as store:
        for name, text in TEXTS.items():
            _write(store, name, text)
        before = store.lexical.search("stem cells neurons", 5)
    # what an older memflow left: chunks, but no lexical rows and no tokenizer setting
    with Store(tmp_path) as store, Session(store.engine) as session, session.begin():
        session.execute(delete(LexicalPostingRow))
        session.execute(delete(LexicalChunkRow))
        session.execute(delete(SettingRow).where(SettingRow.key == "lexical_tokenizer"))
    with Store(tmp_path) as store, caplog.at_level(logging.WARNING, logger="memflow"):
        assert store.lexical.search("stem cells neurons", 5) == before
        assert "indexing 8 chunks" in caplog.text
        assert store.setting("lexical_tokenizer") == TOKENIZER
    # a store indexed by another tokenizer version is re-indexed
    with Store(tmp_path) as store, Session(store.engine) as session, session.begin():
        session.get(SettingRow, "lexical_tokenizer").value = "older/0"  # type: ignore[union-attr]
        session.execute(delete(LexicalPostingRow).where(LexicalPostingRow.term == "stem"))
    caplog.clear()
    with Store(tmp_path) as store, caplog.at_level(logging.WARNING, logger="memflow"):
        assert store.lexical.search("stem cells neurons", 5) == before
        assert "re-indexing every chunk" in caplog.text


def test_hybrid_dedupe_returns_a_passage_stored_twice_once(tmp_path: Path) -> None:
    from memflow.components.base import RunContext
    from memflow.components.retrievers.hybrid import HybridRetriever

    with _store(tmp_path) as store:
        for name in ("visa-a", "visa-b"):
            _write(store, name, TEXTS["visa"])
        _write(store, "sun", TEXTS["sun"])
        query_vector = store.chunk_vectors([1])[0]
        plain, unique = HybridRetriever(k=4), HybridRetriever(k=4, dedupe=True)
        for retriever in (plain, unique):
            retriever.bind(RunContext(store=store))
        with_copies = plain.run(query="startup visa founders", query_vector=query_vector)["hits"]
        deduped = unique.run(query="startup visa founders", query_vector=query_vector)["hits"]
    assert len({h.text for h in with_copies}) < len(with_copies) == 4
    assert len({h.text for h in deduped}) == len(deduped) == 4
    assert [h.rank for h in deduped] == [1, 2, 3, 4]
    assert deduped[0].text == with_copies[0].text
