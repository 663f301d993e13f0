"""``memflow ingest --engine ray``: loading, chunking and encoding on Ray Data (a local instance with 2 CPUs,
as the issue asks), the driver writing in order. The store it makes must be the one a local ingest of the
same corpus makes: documents, chunks (ids, ordinals, spans, text, token counts), vectors, sentence vectors
and summary states, compared row by row."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

import memflow
from memflow.cli.main import cli
from memflow.components.loaders.auto import AutoLoader
from memflow.engines.ray import _raise, _StageRunner, cpu_pool, plan_stages
from memflow.pipeline import builtin_pipeline
from memflow.storage.sql import ChunkRow
from memflow.storage.store import Store

# Ray Data's own DataContext warns about its deprecated fields when it is copied to the workers.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

ESSAYS = ("todo", "nft", "weird", "foundervisa")  # four short essays: 1 to 3 chunks each


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """One local Ray for the module (2 CPUs, no dashboard), shut down after."""
    ray = pytest.importorskip("ray", reason="the Ray engine tests need Ray: pip install 'memflow[ray]'")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)  # a new one
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, pg_essays: Path) -> Path:
    """Real essays, a JSONL file (two records and a malformed line), and a binary file named .txt."""
    folder = tmp_path_factory.mktemp("ray-corpus")
    for name in ESSAYS:
        shutil.copy(pg_essays / f"{name}.txt", folder / f"{name}.txt")
    todo = (pg_essays / "todo.txt").read_text(encoding="utf-8")
    lines = [
        json.dumps({"id": "a", "title": "first half", "text": todo[: len(todo) // 2]}),
        "{not json",
        json.dumps({"id": "b", "title": "second half", "text": todo[len(todo) // 2 :]}),
    ]
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 8)
    return folder


def _ingest(store: Path, paths: list[Path], **kwargs: Any) -> memflow.IngestReport:
    with memflow.Memory(store) as memory:
        return memory.ingest([str(p) for p in paths], batch_files=2, **kwargs)


def snapshot(directory: Path) -> dict[str, Any]:
    """Everything a store holds, as plain values, in id order."""
    with Store(directory) as store:
        documents = store.documents()
        with Session(store.engine) as session:
            chunks = [
                (
                    r.id,
                    r.document_id,
                    r.ordinal,
                    r.start,
                    r.end,
                    r.text,
                    r.token_count,
                    r.section,
                    bytes(r.sentence_spans),
                )
                for r in session.scalars(select(ChunkRow).order_by(ChunkRow.id))
            ]
        ids = [c[0] for c in chunks]
        return {
            "documents": [
                (d.id, d.uri, d.title, d.content_hash, d.chunk_count, d.metadata, store.document_text(d.id))
                for d in documents
            ],
            "chunks": chunks,
            "vectors": store.chunk_vectors(ids),
            "sentence_vectors": [c.sentence_vectors.astype(np.float32) for c in store.chunks(ids)],
            "states": store.summary_states([d.id for d in documents]),
            "indexed": sorted(int(i) for i in store.vectors.ids()),
            "settings": {k: store.setting(k) for k in ("encoder", "dimension", "index_factory", "generation")},
        }


def assert_same_store(ray_store: dict[str, Any], local_store: dict[str, Any]) -> None:
    assert ray_store["documents"] == local_store["documents"]
    assert ray_store["chunks"] == local_store["chunks"]
    assert ray_store["indexed"] == local_store["indexed"] == [c[0] for c in local_store["chunks"]]
    assert ray_store["settings"] == local_store["settings"]
    np.testing.assert_allclose(ray_store["vectors"], local_store["vectors"], atol=1e-5, rtol=0)
    assert len(ray_store["sentence_vectors"]) == len(local_store["sentence_vectors"])
    for got, want in zip(ray_store["sentence_vectors"], local_store["sentence_vectors"], strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=2e-3, rtol=0)  # float16 storage
    assert ray_store["states"].keys() == local_store["states"].keys()
    for doc_id, state in ray_store["states"].items():
        want = local_store["states"][doc_id]
        assert (state.document, state.capacity, state.chunks_seen, state.sentences_seen, state.read_until) == (
            want.document,
            want.capacity,
            want.chunks_seen,
            want.sentences_seen,
            want.read_until,
        )
        assert [(s.text, s.start, s.end, s.chunk_ordinal) for s in state.slots] == [
            (s.text, s.start, s.end, s.chunk_ordinal) for s in want.slots
        ]
        np.testing.assert_allclose([s.score for s in state.slots], [s.score for s in want.slots], atol=1e-3)
        np.testing.assert_allclose(state.centroid_sum, want.centroid_sum, atol=1e-2)


@pytest.fixture(scope="module")
def ingested(ray_instance: Any, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The corpus ingested on Ray into one store and locally into another (in batches of 2 files)."""
    ray_dir, local_dir = tmp_path_factory.mktemp("ray-store"), tmp_path_factory.mktemp("local-store")
    ray_report = _ingest(ray_dir, [corpus], engine="ray")
    local_report = _ingest(local_dir, [corpus])
    return {
        "ray_dir": ray_dir,
        "local_dir": local_dir,
        "ray": ray_report,
        "local": local_report,
        "ray_store": snapshot(ray_dir),
        "local_store": snapshot(local_dir),
    }


def test_ray_ingest_makes_the_store_a_local_ingest_makes(ingested: dict[str, Any], corpus: Path) -> None:
    ray_report, local_report = ingested["ray"], ingested["local"]
    assert len(ray_report.ingested) == len(ESSAYS) + 2  # the essays and two JSONL records
    assert ray_report.ingested == local_report.ingested
    assert (ray_report.chunks, ray_report.tokens, ray_report.files) == (
        local_report.chunks,
        local_report.tokens,
        local_report.files,
    )
    # The bad inputs are reported (by the Ray workers) as a local ingest reports them; the rest is stored.
    assert ray_report.problems == local_report.problems
    sources = {p.source: p.kind for p in ray_report.problems}
    assert sources == {str(corpus / "binary.txt"): "skipped", f"{corpus.resolve() / 'records.jsonl'}:2": "failed"}
    assert {"load", "chunk", "encode", "summarize", "write"} <= set(ray_report.stages)
    assert_same_store(ingested["ray_store"], ingested["local_store"])


def test_ray_rerun_skips_unchanged_replaces_changed_and_prunes(ingested: dict[str, Any], corpus: Path) -> None:
    again = _ingest(ingested["ray_dir"], [corpus], engine="ray")
    assert again.ingested == [] and again.chunks == 0
    assert sorted(again.unchanged) == sorted(ingested["ray"].ingested)
    assert again.problems == ingested["ray"].problems
    changed = corpus / "weird.txt"
    changed.write_text(
        changed.read_text(encoding="utf-8") + "\n\nA paragraph added later changes the hash.\n", encoding="utf-8"
    )
    ray_report = _ingest(ingested["ray_dir"], [corpus], engine="ray")
    local_report = _ingest(ingested["local_dir"], [corpus])
    assert ray_report.ingested == local_report.ingested == [str(changed.resolve())]
    assert ray_report.unchanged == local_report.unchanged and len(ray_report.unchanged) == len(ESSAYS) + 1
    assert_same_store(snapshot(ingested["ray_dir"]), snapshot(ingested["local_dir"]))
    # --prune: a deleted file and a record gone from its JSONL file are forgotten alike (workers report `seen`).
    (corpus / "nft.txt").unlink()
    records = (corpus / "records.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [line for line in records if '"id": "a"' in line]  # (a file with a bad line keeps all its records)
    (corpus / "records.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    ray_report = _ingest(ingested["ray_dir"], [corpus], engine="ray", prune=True)
    local_report = _ingest(ingested["local_dir"], [corpus], prune=True)
    assert (
        sorted(ray_report.pruned)
        == sorted(local_report.pruned)
        == sorted([str((corpus / "nft.txt").resolve()), f"{(corpus / 'records.jsonl').resolve()}#b"])
    )
    assert_same_store(snapshot(ingested["ray_dir"]), snapshot(ingested["local_dir"]))


def test_cli_ingest_engine_ray_honours_the_pipeline_params(ray_instance: Any, pg_essays: Path, tmp_path: Path) -> None:
    builtin = (Path(__file__).resolve().parents[2] / "pipelines" / "ingest.yaml").read_text(encoding="utf-8")
    custom = tmp_path / "small-chunks.yaml"
    custom.write_text(
        builtin.replace("max_tokens: 256", "max_tokens: 64").replace("slots: 8", "slots: 3"), encoding="utf-8"
    )
    store = tmp_path / "store"
    result = CliRunner().invoke(
        cli,
        [
            "ingest",
            str(pg_essays / "foundervisa.txt"),
            "--engine",
            "ray",
            "--store",
            str(store),
            "--pipeline",
            str(custom),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ingested 1 documents" in result.output
    with Store(store) as opened:
        with Session(opened.engine) as session:
            tokens = list(session.scalars(select(ChunkRow.token_count)))
        (state,) = opened.summary_states([d.id for d in opened.documents()]).values()
    assert len(tokens) > 3 and max(tokens) <= 64  # the workers chunked with the file's params
    assert state.capacity == 3 and len(state.slots) == 3


def test_without_ray_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_essays: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with memflow.Memory(tmp_path / "store") as memory, pytest.raises(memflow.MissingDependencyError) as caught:
        memory.ingest([str(pg_essays / "todo.txt")], engine="ray")
    assert "pip install 'memflow[ray]'" in str(caught.value)
    result = CliRunner().invoke(
        cli, ["ingest", str(pg_essays / "todo.txt"), "--engine", "ray", "--store", str(tmp_path / "store")]
    )
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "pip install 'memflow[ray]'" in result.output


def test_engine_arguments_are_checked(tmp_path: Path, pg_essays: Path) -> None:
    with memflow.Memory(tmp_path / "store") as memory, pytest.raises(memflow.MemflowError, match="unknown ingest"):
        memory.ingest([str(pg_essays / "todo.txt")], engine="spark")  # type: ignore[arg-type]
    result = CliRunner().invoke(
        cli, ["ingest", str(pg_essays / "todo.txt"), "--address", "127.0.0.1:6379", "--store", str(tmp_path / "store")]
    )
    assert result.exit_code == 2 and "--address needs --engine ray" in result.output


# -- the plan and the worker stages, in this process (no Ray needed) -----------------------------------------


def _batch_state(paths: list[Path], stored: dict[str, str]) -> bytes:
    return pickle.dumps(
        {
            "paths": [str(p) for p in paths],
            "stored": stored,
            "values": {},
            "problems": [],
            "unchanged": [],
            "seen": [],
            "seconds": {},
            "encoded": {},
        }
    )


def test_the_ingest_pipeline_is_cut_into_worker_and_driver_stages() -> None:
    plan = plan_stages(memflow.Pipeline.from_yaml(builtin_pipeline("ingest")))
    assert [[c.name for c in stage.spec.components] for stage in plan.workers] == [
        ["load", "skip", "chunk"],
        ["encode", "summarize"],
    ]
    assert plan.write is not None and [c.name for c in plan.write.spec.components] == ["write"]
    assert plan.loader == "load" and plan.workers[1].encoders == ("encode",)
    assert plan.carry == (frozenset({"chunk.chunks"}), frozenset({"summarize.chunks", "summarize.states"}))
    assert cpu_pool(2) == (2, 1.0) and cpu_pool(16) == (4, 4.0) and cpu_pool(1) == (1, 1.0)


def test_workers_skip_unchanged_documents_from_the_shipped_hashes(pg_essays: Path) -> None:
    plan = plan_stages(memflow.Pipeline.from_yaml(builtin_pipeline("ingest")))
    todo, nft = pg_essays / "todo.txt", pg_essays / "nft.txt"
    (stored,) = AutoLoader().load_file(todo)
    result = pickle.loads(_StageRunner(plan, (0,)).run(_batch_state([todo, nft], {stored.uri: stored.content_hash})))
    assert result["unchanged"] == [stored.uri]
    assert sorted(result["seen"]) == sorted([stored.uri, str(nft.resolve())])
    chunks = result["values"]["chunk.chunks"]
    assert chunks and {c.document.uri for c in chunks} == {str(nft.resolve())}  # only the new one is chunked


def test_a_worker_error_comes_back_as_the_memflow_error_it_was(pg_essays: Path) -> None:
    plan = plan_stages(memflow.Pipeline.from_yaml(builtin_pipeline("ingest")))
    # As if a plugin the pipeline names were not installed where the workers run.
    prepare = plan.workers[0]
    components = [
        dataclasses.replace(c, type="memflow_missing_plugin.Chunker") if c.name == "chunk" else c
        for c in prepare.spec.components
    ]
    broken = dataclasses.replace(prepare, spec=dataclasses.replace(prepare.spec, components=components))
    plan = dataclasses.replace(plan, workers=(broken, *plan.workers[1:]), trusted=("memflow_missing_plugin",))
    result = pickle.loads(_StageRunner(plan, (0,)).run(_batch_state([pg_essays / "todo.txt"], {})))
    with pytest.raises(memflow.PipelineError, match="memflow_missing_plugin") as caught:
        _raise(result["error"])
    assert "\n" not in str(caught.value)
