"""The programs in examples/ run as a user runs them, so none of them rots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from memflow import Memory

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MEMFLOW = str(Path(sys.executable).with_name("memflow"))


def test_the_quickstart_ingests_searches_asks_and_streams(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ingested 3 documents")
    assert lines[1].startswith("1. foundervisa.txt chars ") and "reranked" in lines[1]
    assert "visa for startup founders" in done.stdout
    assert any(line.startswith("  cited: foundervisa.txt chunk ") for line in lines)
    assert "venture capital" in done.stdout and lines[-1].endswith("citations)")
    assert done.stderr == ""


def test_the_pipeline_variant_runs_without_query_time_encoder_features(essay_memory: Memory) -> None:
    path = EXAMPLES / "ask-fast.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))["components"]["rerank"]["params"]
    assert params["tokens"] == params["rare_tokens"] == params["title"] == 0
    with Memory(essay_memory.store.directory, ask_pipeline=path) as memory:
        reranker = memory.ask_pipeline().component("rerank")
        assert reranker.token_scorer() is None and reranker.title_scorer() is None  # no model in the reranker
        hits = memory.search("What could the government do to increase the number of startups?", k=3)
        assert hits[0].document.endswith("foundervisa.txt")
        assert "visa" in memory.ask("What could the government do to increase the number of startups?").text


def test_the_plugin_example_installs_and_chunks_by_paragraph(tmp_path: Path, shared_data: Path) -> None:
    source = tmp_path / "paragraph_chunker"
    shutil.copytree(EXAMPLES / "paragraph_chunker", source)  # building writes into the source folder
    site = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([MEMFLOW, "components"], capture_output=True, text=True, env=env, timeout=120)
    assert "chunkers.paragraphs" in listed.stdout and "paragraph_chunker:ParagraphChunker" in listed.stdout
    store = tmp_path / "store"
    book = (shared_data / "gutenberg" / "2600-0_war_and_peace.txt").read_text(encoding="utf-8")
    essay = tmp_path / "war-and-peace-book-one.txt"  # a slice of the book, paragraphs between blank lines
    essay.write_text("\n".join(book.splitlines()[1000:1400]).strip() + "\n", encoding="utf-8")
    ingested = subprocess.run(
        [
            MEMFLOW,
            "ingest",
            str(essay),
            "--quiet",
            "--store",
            str(store),
            "--pipeline",
            str(source / "ingest-paragraphs.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ingested.returncode == 0, ingested.stderr
    with Memory(store) as memory:
        chunks = memory.store.chunks(memory.store.chunk_ids_all())
        text = essay.read_text(encoding="utf-8")
        assert len(chunks) > 1
        for chunk in chunks:  # whole paragraphs: each chunk starts a paragraph and ends one
            assert text[chunk.start : chunk.end] == chunk.text
            assert chunk.start == 0 or text[: chunk.start].rstrip(" ").endswith("\n\n")
            assert chunk.end == len(text.rstrip()) or text[chunk.end :].lstrip(" ").startswith("\n\n")
    checked = subprocess.run(
        [MEMFLOW, "doctor", "--store", str(store)], capture_output=True, text=True, env=env, timeout=300
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (
        json.loads(
            subprocess.run(
                [MEMFLOW, "stats", "--json", "--store", str(store)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            ).stdout
        )["documents"]
        == 1
    )
