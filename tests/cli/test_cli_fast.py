"""The fast CLI: --help and the commands that only read the SQL store load no model library (torch,
sentence-transformers, transformers) and no pipeline graph, and `search`/`ask --server URL` ask a running
server, printing what the local command prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memflow.testing import running_server

MODELS = {"torch", "sentence_transformers", "transformers", "onnxruntime"}
HEAVY = MODELS | {"networkx"}  # the pipeline graph: only commands that check a pipeline need it

PROBE = """
import json, sys
from memflow.cli.main import cli
try:
    cli(sys.argv[2:], prog_name="memflow")
except SystemExit as exit:
    code = exit.code
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "loaded": sorted({m.split(".")[0] for m in sys.modules})}, out)
"""


def probe(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """Run ``memflow ARGS`` in a fresh interpreter: its exit code, the top-level modules it loaded, stdout."""
    report = tmp_path / "probe.json"
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    found = json.loads(report.read_text())
    return found["code"] or 0, set(found["loaded"]), run.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from memflow import Memory

    directory = tmp_path_factory.mktemp("fast-cli-store")
    texts = [
        "Alice prefers green tea in the morning and never drinks coffee.",
        "Bob drinks black coffee late at night while he writes.",
        "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.",
    ]
    with Memory(directory) as memory:
        memory.add(texts, ids=["alice", "bob", "tower"], metadata=[{"user": "alice"}, {"user": "bob"}, {}])
    return directory


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["search", "--help"],
        ["stats"],
        ["stats", "--json"],
        ["list"],
        ["list", "--where", "user=alice"],
        ["get", "tower"],
        ["collections"],
        ["pipeline", "list"],
        ["pipeline", "validate", "ask"],
        ["pipeline", "show", "ask-llm"],
        ["components"],
    ],
)
def test_read_commands_load_no_model_library(tmp_path: Path, store: Path, args: list[str]) -> None:
    with_store = [*args, "--store", str(store)] if args[0] in {"stats", "list", "get", "collections"} else args
    code, loaded, out = probe(tmp_path, *with_store)
    assert code == 0, out
    unwanted = MODELS if args[:2] in (["pipeline", "validate"], ["pipeline", "show"]) else HEAVY
    assert loaded & unwanted == set(), f"memflow {' '.join(args)} loaded {sorted(loaded & unwanted)}"
    assert out.strip()


def test_the_fast_read_commands_print_the_store(tmp_path: Path, store: Path) -> None:
    _, _, listed = probe(tmp_path, "list", "--where", "user=alice", "--store", str(store))
    assert listed.splitlines() == ['alice  (1 chunk)  {"user": "alice"}']
    _, _, text = probe(tmp_path, "get", "tower", "--store", str(store))
    assert text.strip() == "The Eiffel Tower was finished in 1889 for the World's Fair in Paris."
    _, _, stats = probe(tmp_path, "stats", "--json", "--store", str(store))
    assert json.loads(stats)["documents"] == 3 and json.loads(stats)["vectors"] == 3
    code, _, _ = probe(tmp_path, "stats", "--store", str(tmp_path / "missing"))
    assert code == 1 and not (tmp_path / "missing").exists()


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[str]:
    with running_server(store) as url:
        yield url


@pytest.mark.parametrize(
    "args",
    [
        ["search", "When was the Eiffel Tower finished?", "-k", "2"],
        ["search", "What does she drink?", "--where", "user=alice", "--explain"],
        ["search", "coffee", "--json"],
        ["ask", "What does Bob drink?"],
        ["ask", "What does Bob drink?", "--stream", "--explain"],
    ],
)
def test_server_commands_print_what_the_local_ones_print(
    tmp_path: Path, store: Path, server: str, args: list[str]
) -> None:
    local = subprocess.run(
        [sys.executable, "-m", "memflow.cli.main", *args, "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0, local.stderr
    code, loaded, served = probe(tmp_path, *args, "--server", server)
    assert code == 0
    if "--json" in args:  # scores agree to float noise between two processes' encoders
        mine, theirs = json.loads(served), json.loads(local.stdout)
        assert [h["chunk_id"] for h in mine] == [h["chunk_id"] for h in theirs]
        assert [h["score"] for h in mine] == pytest.approx([h["score"] for h in theirs], abs=1e-4)
    else:
        assert served == local.stdout
    assert loaded & HEAVY == set(), sorted(loaded & HEAVY)


def test_server_from_the_environment_and_an_unreachable_one(tmp_path: Path, server: str) -> None:
    code, _, out = probe(tmp_path, "search", "tower", "-k", "1", env={"MEMFLOW_SERVER": server})
    assert code == 0 and "tower" in out
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    run = subprocess.run(
        [sys.executable, "-m", "memflow.cli.main", "search", "tower", "--server", closed],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.strip().startswith(f"error: cannot reach the memflow server at {closed}")
    assert len(run.stderr.strip().splitlines()) == 1
    usage = subprocess.run(
        [sys.executable, "-m", "memflow.cli.main", "search", "x", "--server", closed, "--pipeline", "dense"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert usage.returncode == 2 and "--pipeline picks a pipeline here" in usage.stderr
