"""Every kind of bad input at once, through the real CLI: each gets a one-line message naming the file (and
line), the rest of the corpus is ingested, and nothing already stored is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from memflow.cli.main import cli
from tests.reliability.support import MEMFLOW

MINIMAL_PDF_HEADER = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"  # then cut off


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMFLOW, *args], capture_output=True, text=True, timeout=600)


def _stats(store: Path) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["stats", "--json", "--store", str(store)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, pg_essays: Path) -> Path:
    good = tmp_path_factory.mktemp("good")
    for name in ("foundervisa", "sun"):
        shutil.copy(pg_essays / f"{name}.txt", good / f"{name}.txt")
    store = tmp_path_factory.mktemp("store")
    assert _run("ingest", str(good), "--store", str(store), "--quiet").returncode == 0
    return store


def test_bad_files_are_named_the_rest_ingested_nothing_lost(store: Path, tmp_path: Path, pg_essays: Path) -> None:
    before = _stats(store)
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(pg_essays / "nft.txt", bad / "good.txt")
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (bad / "latin1.txt").write_bytes("Le café coûte cher à Paris. Il était une fois un été.".encode("latin-1"))
    (bad / "utf16.txt").write_bytes("Ceci est un texte en UTF-16 avec un BOM.".encode("utf-16"))
    (bad / "invalid-utf8.md").write_bytes(b"# Title\n\nValid start \xff\xfe\xfa invalid bytes, then more text.\n")
    (bad / "empty.txt").write_text("", encoding="utf-8")
    (bad / "huge.txt").write_bytes(b"word " * (50 * 2**20 // 5 + 1))  # 50 MB, no newline
    (bad / "corrupt.pdf").write_bytes(MINIMAL_PDF_HEADER)
    (bad / "records.jsonl").write_text(
        '{"id": "a", "text": "Record A is about apples."}\n{"id": "b", "text": broken json\n'
        '{"id": "c", "text": "Record C is about cherries."}\n',
        encoding="utf-8",
    )
    (bad / "loop").mkdir()
    os.symlink(bad, bad / "loop" / "back-to-parent")
    (bad / "secret.txt").write_text("Nobody may read this.", encoding="utf-8")
    (bad / "secret.txt").chmod(0)
    (bad / "broken-link.txt").symlink_to(tmp_path / "nowhere.txt")

    result = _run("ingest", str(bad), str(tmp_path / "does-not-exist.txt"), "--store", str(store))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    failures = {line.split(": ", 2)[1].rsplit("/", 1)[-1]: line for line in lines if line.startswith("failed: ")}
    for name in ("binary.txt", "huge.txt", "corrupt.pdf", "records.jsonl:2", "does-not-exist.txt", "broken-link.txt"):
        assert name in failures or any(name in line for line in lines), f"{name} not reported: {lines}"
    assert any("empty.txt" in line for line in lines)
    assert "MiB, over loaders.auto max_bytes" in failures["huge.txt"]
    assert all("\n" not in line and len(line) < 400 for line in lines)
    summary = result.stdout.strip().splitlines()[-1]
    # good.txt, latin1, utf16, invalid-utf8.md, records a and c, and secret.txt where root ignores chmod
    ingested = int(summary.split()[1])
    assert ingested >= 6 and "failed" in summary
    after = _stats(store)
    assert after["documents"] == before["documents"] + ingested  # type: ignore[operator]
    search = CliRunner().invoke(cli, ["search", "Le café coûte cher", "-k", "1", "--json", "--store", str(store)])
    assert json.loads(search.output)[0]["document"].endswith("latin1.txt")
    cherries = CliRunner().invoke(cli, ["search", "cherries", "-k", "1", "--json", "--store", str(store)])
    assert json.loads(cherries.output)[0]["document"].endswith("records.jsonl#c")


def test_nothing_ingestible_exits_1(store: Path, tmp_path: Path) -> None:
    result = _run("ingest", str(tmp_path / "nothing-here"), "--store", str(store))
    assert result.returncode == 1
    assert "no such file or directory" in result.stderr.lower()


PIPELINE_ERRORS = {
    "syntax": ("components:\n  load: {type: loaders.auto\n", 2, "YAML"),
    "unknown": ("components:\n  load: {type: loaders.auto}\n  chunk: {type: chunkers.nope}\n", 3, "chunkers.nope"),
    "missing": ("components:\n  load: {type: loaders.auto}\n  write: {type: storage.writer}\n", 3, "missing input"),
    "cycle": (
        "components:\n  a: {type: summarizers.centrality}\n  b: {type: summarizers.centrality}\n"
        "connections:\n  - a.chunks -> b.chunks\n  - b.chunks -> a.chunks\n",
        6,
        "cycle",
    ),
    "param": (
        "components:\n  load: {type: loaders.auto}\n  chunk: {type: chunkers.sentences, params:\n"
        "      {max_tokens: many}}\n",
        4,
        "max_tokens",
    ),
}


@pytest.mark.parametrize("kind", sorted(PIPELINE_ERRORS))
def test_bad_pipelines_name_file_and_line_and_change_nothing(
    store: Path, tmp_path: Path, pg_essays: Path, kind: str
) -> None:
    text, line, words = PIPELINE_ERRORS[kind]
    pipeline = tmp_path / f"{kind}.yaml"
    pipeline.write_text(text, encoding="utf-8")
    before = _stats(store)
    # In-process: the pipeline is rejected before anything else starts, exactly as in a subprocess.
    result = CliRunner().invoke(
        cli, ["ingest", str(pg_essays / "todo.txt"), "--pipeline", str(pipeline), "--store", str(store)]
    )
    assert result.exit_code == 1
    message = result.output.strip()
    assert message.count("\n") == 0, message
    assert f"{pipeline}:{line}" in message and words.lower() in message.lower(), message
    assert _stats(store) == before
