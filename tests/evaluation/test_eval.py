"""`memflow eval` end to end on small real subsets: SciFact (BEIR), SQuAD dev, PG essays (NIAH)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from memflow.cli.main import cli
from memflow.evaluation.beir import evaluate_beir, load_beir, open_beir_memory
from memflow.evaluation.niah import NEEDLE, _haystack, _sources, parse_length
from memflow.models import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(scope="module")
def mini_scifact(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """12 SciFact test queries, their relevant abstracts and 24 others, in BEIR layout."""
    source = shared_data / "scifact"
    rows = [line.split("\t") for line in (source / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    queries = sorted({q for q, _, _ in rows}, key=int)[:12]
    relevant = {d for q, d, _ in rows if q in queries}
    corpus = [json.loads(line) for line in (source / "corpus.jsonl").read_text().splitlines()]
    keep = [r for r in corpus if r["_id"] in relevant] + [r for r in corpus if r["_id"] not in relevant][:24]
    target = tmp_path_factory.mktemp("mini-scifact")
    (target / "qrels").mkdir()
    (target / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    query_lines = [
        line for line in (source / "queries.jsonl").read_text().splitlines() if json.loads(line)["_id"] in queries
    ]
    (target / "queries.jsonl").write_text("\n".join(query_lines) + "\n")
    (target / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\r\n" + "".join(f"{q}\t{d}\t{s}\r\n" for q, d, s in rows if q in queries)
    )
    return target


def test_beir_eval_ranks_documents_and_reuses_the_cached_store(mini_scifact: Path, cache: Path) -> None:
    data = load_beir(mini_scifact)
    assert len(data.queries) == 12
    with open_beir_memory(data, cache=cache) as memory:
        generation = memory.store.generation
        stats = memory.stats()
        assert stats.documents == len(data.qrels and (mini_scifact / "corpus.jsonl").read_text().splitlines())
        dense = evaluate_beir(memory, data)
        first = memory.store.documents()[0]
        assert memory.store.document_text(first.id).startswith(first.title + "\n\n")  # title + text
    assert set(dense.metrics) == {"nDCG@10", "R@10", "R@100", "MRR@10"}
    assert 0.6 < dense.metrics["nDCG@10"] <= 1.0 and dense.metrics["R@100"] == 1.0
    # the second run opens the same store and encodes nothing
    with open_beir_memory(data, cache=cache, ask_pipeline=REPO / "pipelines" / "ask-bm25.yaml") as memory:
        assert memory.store.generation == generation
        bm25 = evaluate_beir(memory, data)
    assert bm25.metrics != dense.metrics and bm25.metrics["nDCG@10"] > 0.5


def test_cli_eval_beir_json_and_table(mini_scifact: Path, cache: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "eval",
            "beir",
            str(mini_scifact),
            "--cache",
            str(cache),
            "--json",
            "--pipeline",
            str(REPO / "pipelines" / "ask-hybrid.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["queries"] == 12 and 0.6 < data["nDCG@10"] <= 1.0
    table = runner.invoke(cli, ["eval", "beir", str(mini_scifact), "--cache", str(cache), "--limit", "3"])
    assert table.exit_code == 0 and "3 queries" in table.output and "nDCG@10" in table.output
    missing = runner.invoke(cli, ["eval", "beir", str(mini_scifact / "qrels"), "--cache", str(cache)])
    assert missing.exit_code == 1 and "is not a BEIR folder" in missing.output


def test_cli_eval_squad(tmp_path: Path, shared_data: Path, cache: Path) -> None:
    full = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text())
    small = {"version": "1.1", "data": [dict(a, paragraphs=a["paragraphs"][:4]) for a in full["data"][:3]]}
    file = tmp_path / "mini-squad.json"
    file.write_text(json.dumps(small))
    result = CliRunner().invoke(cli, ["eval", "squad", str(file), "--cache", str(cache), "--ask", "6", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["paragraphs"] == 12 and data["questions"] == sum(
        len(p["qas"]) for a in small["data"] for p in a["paragraphs"]
    )
    assert data["R@1"] <= data["R@5"] <= data["R@10"] == 1.0 and data["R@5"] > 0.8
    assert data["ask"]["questions"] == 6 and 0.0 <= data["ask"]["top_sentence_has_answer"] <= 1.0
    # --where: only the first article's four paragraphs (lines 1-4 of the cached corpus) can be found, and
    # each of their questions still is, so R@10 is exactly their share of the questions
    filtered = CliRunner().invoke(
        cli, ["eval", "squad", str(file), "--cache", str(cache), "--where", "line<=4", "--json"]
    )
    assert filtered.exit_code == 0, filtered.output
    first = sum(len(p["qas"]) for p in small["data"][0]["paragraphs"])
    assert json.loads(filtered.output)["R@10"] == pytest.approx(first / data["questions"])


def test_niah_haystack_lengths_and_needle_depths(pg_essays: Path) -> None:
    sources = _sources(pg_essays, DEFAULT_MODEL)
    assert parse_length("64k") == 64_000 and parse_length("1M") == 1_000_000 and parse_length("500") == 500
    for depth in (0, 50, 100):
        pieces, tokens = _haystack(sources, 20_000, depth)
        text = "".join(t for _, t, _ in pieces)
        assert 19_000 < tokens <= 20_000 and text.count(NEEDLE) == 1
        position = text.index(NEEDLE) / len(text)
        assert abs(position - depth / 100) < 0.1
        assert sum(1 for _, _, s in pieces if s is None) <= 2  # only the needle's file and the cut file re-encode


def test_cli_eval_niah_grid_and_heat_map(tmp_path: Path, pg_essays: Path, cache: Path) -> None:
    folder = tmp_path / "essays"
    folder.mkdir()
    for name in ("foundervisa", "sun", "nft"):
        shutil.copy(pg_essays / f"{name}.txt", folder / f"{name}.txt")
    png = tmp_path / "grid.png"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "niah",
            str(folder),
            "--lengths",
            "1k,5k",
            "--depths",
            "0,100",
            "--cache",
            str(cache),
            "--png",
            str(png),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["cells"] == 4 and {(c["length"], c["depth"]) for c in data["grid"]} == {
        (1000, 0),
        (1000, 100),
        (5000, 0),
        (5000, 100),
    }
    assert data["rank1"] == 1.0 and data["answer_contains"] == 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
