"""Where-filters inside retrieval, on real SQuAD sentences: a filter matching 1 % of the chunks still gives
k hits through every retriever of the default pipeline (and the dense, BM25 and multi-hop ones)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memflow import Memory
from memflow.cli.main import cli
from memflow.filters import FilterError
from memflow.storage.lexical import tokenize

BUCKETS = 100  # metadata "bucket" = n % 100: one bucket is 1 % of the records


@pytest.fixture(scope="module")
def sentences(shared_data: Path) -> list[dict[str, Any]]:
    """1,200+ SQuAD dev sentences as records, each its own chunk, with metadata article, bucket and n."""
    squad = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = []
    for article in squad["data"][:8]:
        for paragraph in article["paragraphs"]:
            for sentence in re.split(r"(?<=[.!?])\s+", paragraph["context"]):
                if len(sentence.split()) >= 6 and len(records) < 1500:
                    n = len(records)
                    records.append(
                        {
                            "id": f"s{n}",
                            "text": sentence,
                            "metadata": {"article": article["title"], "bucket": n % BUCKETS, "n": n},
                        }
                    )
    assert len(records) >= 1200
    return records


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, sentences: list[dict[str, Any]]) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("where-store")
    with Memory(directory) as memory:
        memory.add(sentences)
        assert memory.stats().documents == len(sentences)
    yield directory


QUESTION = "Which team won Super Bowl 50?"


@pytest.mark.parametrize("pipeline", [None, "dense", "bm25", "hybrid", "multihop"])
def test_a_one_percent_filter_still_gives_k_hits(store: Path, sentences: list[dict[str, Any]], pipeline: str) -> None:
    bucket = 37
    matching = {r["id"] for r in sentences if r["metadata"]["bucket"] == bucket}
    assert 10 <= len(matching) <= 0.011 * len(sentences)
    with Memory(store, ask_pipeline=pipeline) as memory:
        unfiltered = memory.search(QUESTION, k=100)
        # post-filtering the unfiltered ranking would not find 10 of them: the filter works inside retrieval
        assert sum(h.document in matching for h in unfiltered) < 10
        hits = memory.search(QUESTION, k=10, where={"bucket": bucket})
        # BM25 alone finds only chunks holding a query term: every such matching chunk, up to k
        terms = set(tokenize(QUESTION))
        lexical = {r["id"] for r in sentences if r["id"] in matching and terms & set(tokenize(r["text"]))}
        assert len(hits) == (min(10, len(lexical)) if pipeline == "bm25" else 10)
        assert {h.document for h in hits} <= matching
        assert all(h.metadata["bucket"] == bucket for h in hits)
        answer = memory.ask(QUESTION, where={"bucket": bucket})
        assert answer.hits and {h.document for h in answer.hits} <= matching
        assert {c.document for c in answer.citations} <= matching
        assert {e.citation.document for e in answer.evidence} <= matching


def test_the_filter_language_inside_search(store: Path, sentences: list[dict[str, Any]]) -> None:
    with Memory(store) as memory:
        warsaw = memory.search("the capital of Poland", k=10, where={"article": "Warsaw", "n": {"$lt": 2000}})
        assert len(warsaw) == 10 and all(h.metadata["article"] == "Warsaw" for h in warsaw)
        either = memory.search(QUESTION, k=5, where={"$or": [{"bucket": 3}, {"bucket": {"$in": [4, 5]}}]})
        assert len(either) == 5 and all(h.metadata["bucket"] in (3, 4, 5) for h in either)
        by_uri = memory.search(QUESTION, k=10, where={"uri": {"$in": ["s1", "s2", "s3"]}})
        assert sorted(h.document for h in by_uri) == ["s1", "s2", "s3"]
        assert memory.search(QUESTION, k=10, where={"article": "no such article"}) == []
        with pytest.raises(FilterError, match=r"unknown operator '\$regex' on 'article'"):
            memory.search(QUESTION, where={"article": {"$regex": "W.*"}})
        with pytest.raises(FilterError, match=r"\$in on 'bucket' needs a list"):
            memory.search(QUESTION, where={"bucket": {"$in": 3}})


def test_cli_where(store: Path) -> None:
    result = CliRunner().invoke(
        cli, ["search", QUESTION, "--store", str(store), "--where", "bucket=37", "--where", "n>=0", "--json"]
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 10 and all(h["metadata"]["bucket"] == 37 for h in hits)
    result = CliRunner().invoke(cli, ["ask", QUESTION, "--store", str(store), "--where", '{"bucket": 37}', "--json"])
    assert result.exit_code == 0, result.output
    assert all(c["metadata"]["bucket"] == 37 for c in json.loads(result.stdout)["citations"])
    result = CliRunner().invoke(cli, ["search", QUESTION, "--store", str(store), "--where", "bucket~3"])
    assert result.exit_code == 2 and "expected FIELD=VALUE" in result.stderr


def test_documents_are_paged_in_sql_with_and_without_a_filter(store: Path, sentences: list[dict[str, Any]]) -> None:
    with Memory(store) as memory:
        assert memory.count() == len(sentences)
        assert [d.uri for d in memory.documents(limit=3, offset=10)] == ["s10", "s11", "s12"]
        assert memory.documents(limit=5, offset=len(sentences)) == []
        where = {"bucket": 7}
        matching = [r["id"] for r in sentences if r["metadata"]["bucket"] == 7]
        assert memory.count(where=where) == len(matching) >= 12
        pages = [memory.documents(where=where, limit=5, offset=offset) for offset in range(0, len(matching), 5)]
        assert [d.uri for page in pages for d in page] == matching  # oldest first, each once
        assert all(d.metadata["bucket"] == 7 for page in pages for d in page)
        assert [d.uri for d in memory.documents(where=where)] == matching
        assert memory.count(where={"n": {"$lt": 0}}) == 0


def test_cli_list_pages_and_counts_the_rest(store: Path) -> None:
    listed = CliRunner().invoke(cli, ["list", "--store", str(store), "--where", "bucket=7", "--limit", "2", "--json"])
    assert listed.exit_code == 0, listed.output
    shown = json.loads(listed.stdout)
    assert [d["metadata"]["bucket"] for d in shown] == [7, 7]
    plain = CliRunner().invoke(cli, ["list", "--store", str(store), "--where", "bucket=7", "--limit", "2"])
    assert plain.exit_code == 0 and len(plain.stdout.splitlines()) == 2, plain.output
    assert re.fullmatch(r"\.\.\. \d+ more \(of \d+\)\n", plain.stderr), plain.stderr
