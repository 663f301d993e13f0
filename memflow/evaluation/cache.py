"""Cached evaluation stores: a data set is prepared and ingested once, then reused across runs.

Layout under the cache root (``--cache DIR``, else ``$MEMFLOW_EVAL_CACHE``, else ``~/.cache/memflow-eval``)::

    <name>-<source key>/corpus/part-0000.jsonl ...     the data set as memflow documents (JSONL shards)
    <name>-<source key>/stores/<pipeline key>/          a store ingested from them

The source key hashes the data set's files and the preparation's version; the pipeline key hashes the
ingest pipeline's components, params and wiring. Changing either builds a new store; re-running the same
eval reuses the stored vectors, and since ingest skips unchanged documents, an interrupted ingest resumes
where it stopped: nothing stored is ever encoded again. Shards keep each ingest transaction small.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from memflow.errors import MemflowError
from memflow.memory import Memory
from memflow.pipeline import Pipeline, builtin_pipeline

__all__ = ["cache_root", "digest_files", "pipeline_digest", "prepare_corpus", "open_eval_memory"]

SHARD_SIZE = 256


def cache_root(cache: str | Path | None = None) -> Path:
    """The eval cache directory (created if needed)."""
    root = Path(cache or os.environ.get("MEMFLOW_EVAL_CACHE") or Path.home() / ".cache" / "memflow-eval")
    root = root.expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MemflowError(f"cannot create the eval cache directory {root}: {exc.strerror}") from exc
    return root


def digest_files(paths: Iterable[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()


def pipeline_digest(pipeline: Pipeline) -> str:
    """A hash of what decides the stored data: component types, params and wiring (not names or prose)."""
    data = pipeline.to_dict()
    canonical = json.dumps(
        {"components": data["components"], "connections": sorted(data["connections"])}, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def prepare_corpus(directory: Path, records: Iterator[dict[str, Any]]) -> Path:
    """Write ``records`` (``{"_id", "title", "text"}``) as JSONL shards into ``directory/corpus`` unless a
    complete preparation is there already. Returns the corpus folder."""
    corpus = directory / "corpus"
    done = corpus / "DONE"
    if done.exists():
        return corpus
    corpus.mkdir(parents=True, exist_ok=True)
    for old in corpus.glob("part-*.jsonl"):
        old.unlink()
    count = 0
    batch: list[str] = []
    for record in records:
        batch.append(json.dumps(record, ensure_ascii=False) + "\n")
        if len(batch) == SHARD_SIZE:
            _write_shard(corpus, count, batch)
            count += len(batch)
            batch = []
    if batch:
        _write_shard(corpus, count, batch)
        count += len(batch)
    done.write_text(json.dumps({"documents": count}))
    return corpus


def _write_shard(corpus: Path, first: int, lines: list[str]) -> None:
    (corpus / f"part-{first // SHARD_SIZE:04d}.jsonl").write_text("".join(lines), encoding="utf-8")


def open_eval_memory(
    directory: Path,
    corpus: Path,
    *,
    ingest_pipeline: str | Path | None = None,
    ask_pipeline: str | Path | Pipeline | None = None,
    url: str | None = None,
    progress: bool = False,
    trusted_modules: Iterable[str] = (),
) -> Memory:
    """A Memory over the cached store of ``corpus`` for this ingest pipeline (ingested now unless a
    complete ingest is recorded)."""
    trusted = tuple(trusted_modules)
    ingest = Pipeline.from_yaml(ingest_pipeline or builtin_pipeline("ingest"), trusted_modules=trusted)
    store_dir = directory / "stores" / pipeline_digest(ingest)[:12]
    memory = Memory(store_dir, url=url, ingest_pipeline=ingest, ask_pipeline=ask_pipeline, trusted_modules=trusted)
    marker = store_dir / "COMPLETE"
    if not marker.exists():
        try:
            report = memory.ingest([str(corpus)], progress=progress, batch_files=1)
        except BaseException:
            memory.close()
            raise
        if report.failed:
            memory.close()
            raise MemflowError(f"{len(report.failed)} inputs of {corpus} failed to ingest: {report.failed[0]}")
        marker.write_text(
            json.dumps({"documents": len(report.ingested) + len(report.unchanged), "seconds": round(report.seconds, 1)})
        )
    return memory
