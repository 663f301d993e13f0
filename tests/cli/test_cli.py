"""The command line, run in-process through click's runner against real stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from memflow.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, pg_essays: Path) -> Path:
    corpus = tmp_path_factory.mktemp("corpus")
    for name in ("foundervisa", "sun", "nft"):
        shutil.copy(pg_essays / f"{name}.txt", corpus / f"{name}.txt")
    return corpus


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    store = tmp_path_factory.mktemp("cli-store")
    result = CliRunner().invoke(cli, ["ingest", str(corpus), "--store", str(store), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "ingested 3 documents" in result.output
    return store


def test_ingest_again_skips_unchanged(cli_store: Path, corpus: Path) -> None:
    result = CliRunner().invoke(cli, ["ingest", str(corpus / "sun.txt"), "--store", str(cli_store)])
    assert result.exit_code == 0
    assert "ingested 0 documents" in result.output and "skipped 1 unchanged" in result.output


def test_ask_prints_answer_and_citations(cli_store: Path) -> None:
    result = CliRunner().invoke(cli, ["ask", "What visa should founders get?", "--store", str(cli_store)])
    assert result.exit_code == 0, result.output
    assert "Citations:" in result.output and "foundervisa.txt" in result.output
    assert "chars " in result.output


def test_ask_json_and_explain(cli_store: Path) -> None:
    result = CliRunner().invoke(cli, ["ask", "most valuable insights", "-k", "3", "--json", "--store", str(cli_store)])
    data = json.loads(result.output)
    assert data["citations"] and len(data["hits"]) == 3
    assert abs(sum(data["attention"][0]) - 1.0) < 1e-3
    explained = CliRunner().invoke(cli, ["ask", "most valuable insights", "--explain", "--store", str(cli_store)])
    assert "Evidence attended" in explained.output


def test_search_summary_stats(cli_store: Path) -> None:
    runner = CliRunner()
    search = runner.invoke(cli, ["search", "visa for startup founders", "-k", "2", "--json", "--store", str(cli_store)])
    hits = json.loads(search.output)
    assert len(hits) == 2 and hits[0]["document"].endswith("foundervisa.txt")
    for hit in hits:  # the default pipeline's stages, each hit's last one its score
        assert {"fused", "reranked"} <= set(hit["scores"]) <= {"dense", "lexical", "fused", "reranked"}
        assert hit["scores"]["reranked"] == hit["score"]
    assert set(hits[0]["scores"]) == {"dense", "lexical", "fused", "reranked"}
    explained = runner.invoke(
        cli, ["search", "visa for startup founders", "-k", "1", "--explain", "--store", str(cli_store)]
    )
    assert explained.exit_code == 0 and "scores: dense " in explained.output and " reranked " in explained.output
    summary = runner.invoke(cli, ["summary", "sun.txt", "--store", str(cli_store)])
    assert summary.exit_code == 0 and "slots after" in summary.output
    stats = json.loads(runner.invoke(cli, ["stats", "--json", "--store", str(cli_store)]).output)
    assert stats["documents"] == 3 and stats["chunks"] == stats["vectors"] > 0
    assert stats["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_store_from_environment(cli_store: Path) -> None:
    result = CliRunner().invoke(cli, ["stats"], env={"MEMFLOW_STORE": str(cli_store)})
    assert "documents: 3" in result.output


def test_user_errors_are_one_line_with_exit_1(tmp_path: Path) -> None:
    from memflow import Memory

    Memory(tmp_path / "empty").close()
    runner = CliRunner()
    result = runner.invoke(cli, ["ask", "anything", "--store", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and result.output.startswith("error:")
    unknown = runner.invoke(cli, ["summary", "nope.txt", "--store", str(tmp_path / "empty")])
    assert unknown.exit_code == 1 and "no document 'nope.txt'" in unknown.output


def test_usage_errors_exit_2() -> None:
    assert CliRunner().invoke(cli, ["ask"]).exit_code == 2
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2


def test_pipeline_validate_and_show_builtin() -> None:
    runner = CliRunner()
    for name in ("ingest", "ask"):
        path = REPO / "pipelines" / f"{name}.yaml"
        assert runner.invoke(cli, ["pipeline", "validate", str(path)]).exit_code == 0
        shown = runner.invoke(cli, ["pipeline", "show", str(path)])
        assert shown.exit_code == 0 and "->" in shown.output


def test_pipeline_list_names_every_shipped_pipeline() -> None:
    result = CliRunner().invoke(cli, ["pipeline", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        line = next((x for x in lines if f" {path.name} " in x), None)
        assert line is not None, path.name
        role, _, variant = path.stem.partition("-")
        assert line.split()[0] == (variant or "default")
        assert len(line.split()) > 2  # a description
    assert lines.index(next(x for x in lines if x.startswith("ask pipelines"))) > 0


def test_pipelines_by_name(cli_store: Path) -> None:
    runner = CliRunner()
    dense = runner.invoke(
        cli, ["search", "startup founders visa", "--pipeline", "dense", "-k", "2", "--json", "--store", str(cli_store)]
    )
    assert dense.exit_code == 0, dense.output
    assert json.loads(dense.output)[0]["document"].endswith("foundervisa.txt")
    assert runner.invoke(cli, ["pipeline", "validate", "ask-dense"]).exit_code == 0
    unknown = runner.invoke(cli, ["ask", "x", "--pipeline", "nosuch", "--store", str(cli_store)])
    assert unknown.exit_code == 2
    assert "unknown ask pipeline 'nosuch'; shipped: default, bm25, dense, hybrid" in unknown.output
    missing = runner.invoke(cli, ["ask", "x", "--pipeline", "no/such.yaml", "--store", str(cli_store)])
    assert missing.exit_code == 2 and "no pipeline file no/such.yaml" in missing.output


def test_invalid_pipeline_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ncomponents:\n  load: {type: loaders.auto}\n  chunk: {type: chunkers.nope}\n"
        "connections:\n  - load.documents -> chunk.documents\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["pipeline", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:4:" in result.output and "chunkers.nope" in result.output


def test_ingest_with_a_broken_pipeline_loses_nothing(cli_store: Path, tmp_path: Path, pg_essays: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ncomponents:\n  load: {type: loaders.auto, params: {follow_symlinks: 3}}\n", encoding="utf-8"
    )
    before = CliRunner().invoke(cli, ["stats", "--json", "--store", str(cli_store)]).output
    result = CliRunner().invoke(
        cli, ["ingest", str(pg_essays / "todo.txt"), "--pipeline", str(bad), "--store", str(cli_store)]
    )
    assert result.exit_code == 1 and f"{bad}:3" in result.output
    assert CliRunner().invoke(cli, ["stats", "--json", "--store", str(cli_store)]).output == before


def test_components_lists_registered_types() -> None:
    result = CliRunner().invoke(cli, ["components"])
    assert "chunkers.sentences" in result.output and "decoders.attention" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["search", "visa"],
        ["ask", "visa?"],
        ["stats"],
        ["stats", "--json"],
        ["summary", "sun.txt"],
        ["doctor"],
        ["forget", "sun.txt"],
    ],
)
def test_a_read_command_on_a_missing_store_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "no-such-store"
    result = CliRunner().invoke(cli, [*command, "--store", str(missing)])
    assert result.exit_code == 1
    assert result.output == f"error: no memflow store at {missing} (memflow ingest PATH --store {missing} makes one)\n"
    assert not missing.exists()


@pytest.mark.parametrize("command", [["search", "visa"], ["ask", "visa?"]])
def test_asking_an_empty_store_says_so(tmp_path: Path, command: list[str]) -> None:
    from memflow import Memory

    store = tmp_path / "store"
    Memory(store).close()  # a store with no documents
    result = CliRunner().invoke(cli, [*command, "--store", str(store)])
    assert result.exit_code == 1
    assert result.output == f"error: the store at {store} holds no documents yet: memflow ingest PATH --store {store}\n"
    stats = CliRunner().invoke(cli, ["stats", "--store", str(store)])
    assert stats.exit_code == 0 and "documents: 0" in stats.output


def test_debug_shows_the_traceback_behind_a_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-store"
    plain = CliRunner().invoke(cli, ["stats", "--store", str(missing)])
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    debug = CliRunner().invoke(cli, ["--debug", "stats", "--store", str(missing)])
    assert debug.exit_code == 1
    assert debug.output.startswith("Traceback (most recent call last):")
    assert "memflow.errors.MemflowError: no memflow store at" in debug.output
    assert debug.output.rstrip().splitlines()[-1].startswith("error: no memflow store at")
    from_env = CliRunner().invoke(cli, ["stats", "--store", str(missing)], env={"MEMFLOW_DEBUG": "1"})
    assert from_env.exit_code == 1 and "Traceback" in from_env.output


def test_verbose_prints_each_stages_time(cli_store: Path) -> None:
    result = CliRunner().invoke(cli, ["search", "founder visa", "--store", str(cli_store), "-v", "-k", "3"])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("stages: ")]
    assert all(f"{stage} " in line for stage in ("embed", "retrieve", "rerank")) and "; total " in line
    result = CliRunner().invoke(cli, ["ask", "Who should get a founder visa?", "--store", str(cli_store), "--verbose"])
    assert result.exit_code == 0 and "stages: " in result.stderr and "decode " in result.stderr


def test_json_on_every_command_that_prints_data(cli_store: Path, corpus: Path) -> None:
    runner = CliRunner()
    report = json.loads(runner.invoke(cli, ["ingest", str(corpus), "--store", str(cli_store), "--json"]).stdout)
    assert report["files"] == 3 and len(report["unchanged"]) == 3 and report["problems"] == []
    doctor = json.loads(runner.invoke(cli, ["doctor", "--store", str(cli_store), "--json"]).stdout)
    assert doctor["ok"] is True and {c["name"] for c in doctor["checks"]} >= {"vectors"}
    shipped = json.loads(runner.invoke(cli, ["pipeline", "list", "--json"]).stdout)
    assert {"name": "dense", "role": "ask", "file": "ask-dense.yaml"}.items() <= next(
        p for p in shipped if p["name"] == "dense"
    ).items()
    assert "retrievers.hybrid" in json.loads(runner.invoke(cli, ["components", "--json"]).stdout)


def test_a_store_built_with_another_encoder_is_refused_naming_both(tmp_path: Path, corpus: Path) -> None:
    from memflow.storage.store import Store

    with Store(tmp_path / "store") as store:
        store.check_encoder("acme/other-encoder", 768, record=True)
    result = CliRunner().invoke(cli, ["ingest", str(corpus / "sun.txt"), "--store", str(tmp_path / "store")])
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert "acme/other-encoder (768 dims)" in message and "all-MiniLM-L6-v2 (384 dims)" in message
