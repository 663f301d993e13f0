"""The ingest loop: list the inputs, write them batch after batch under the writer lock, report.

One loop serves every engine. It expands folders up front (so batches and the progress bar count files),
holds the store's writer lock for the whole run, hands batches of ``batch_files`` paths to the engine, counts
what each batch wrote, saves the vector memory every ``save_every`` seconds and at the end, prunes when asked,
and fills the :class:`IngestReport`. An engine is the part that turns a batch of paths into written chunks:
:class:`LocalEngine` runs the ingest pipeline in this process; the Ray engine
(:class:`memflow.engines.ray.RayEngine`) loads, chunks and encodes on Ray Data and writes here. The SQL
store commits every batch (the writer component's transaction), so a crash loses at most the batch in
flight, and the FAISS file, a cache of SQL, is caught up on the next open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from memflow.components.base import Problem, RunContext
from memflow.defaults import INDEX_FILE
from memflow.errors import PipelineError, StoreError
from memflow.pipeline import Pipeline
from memflow.storage.store import Store
from memflow.types import DEFAULT_COLLECTION, Chunk, Document

__all__ = [
    "IngestReport",
    "IngestEngine",
    "LocalEngine",
    "ingest",
    "add_documents",
    "list_files",
    "written_chunks",
    "as_paths",
    "VECTOR_SAVE_INTERVAL_S",
    "BatchObserver",
]

#: How often a long ingest saves the vector memory, so a crash loses at most this much indexing work
#: (the SQL store, the source of truth, commits every batch regardless).
VECTOR_SAVE_INTERVAL_S = 300.0


@dataclass(slots=True)
class IngestReport:
    """What one ingest did: documents written, skipped as unchanged, and what failed, with reasons."""

    files: int = 0
    #: Files whose batches were committed (all of them, unless a storage fault stopped the run).
    files_done: int = 0
    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0
    #: Wall time by stage: "list" (expanding folders), each pipeline component by name, "save" (vectors).
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "failed"]

    def summary(self) -> str:
        pruned = f", pruned {len(self.pruned)}" if self.pruned else ""
        return (
            f"ingested {len(self.ingested)} documents ({self.chunks} chunks, {self.tokens} tokens), "
            f"skipped {len(self.unchanged)} unchanged, failed {len(self.failed)}{pruned} "
            f"in {self.seconds:.1f} s"
        )


#: Told after each committed batch how many of the listed files are done, and the report so far.
BatchObserver = Callable[[int, IngestReport], None]


class IngestEngine(Protocol):
    """Turns batches of paths into written chunks.

    ``run`` is called once per ingest, with the writer lock held, and yields one list of written chunks per
    batch, in batch order (an empty list for a batch that wrote nothing). What it finds on the way (problems,
    unchanged and seen documents, seconds per component) goes into ``context``, as a local run puts it there.
    """

    def run(self, batches: Sequence[list[str]], context: RunContext) -> Iterator[list[Chunk]]: ...


class LocalEngine:
    """Runs the ingest pipeline in this process, one batch at a time."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def run(self, batches: Sequence[list[str]], context: RunContext) -> Iterator[list[Chunk]]:
        for batch in batches:
            yield written_chunks(self.pipeline.run({"paths": batch}, context=context))


def as_paths(paths: str | Path | Iterable[str | Path]) -> list[str]:
    if isinstance(paths, (str, Path)):
        return [str(paths)]
    return [str(p) for p in paths]


def written_chunks(result: dict[str, dict[str, Any]]) -> list[Chunk]:
    """The chunks a pipeline run wrote: the ``chunks`` output of the component that gives one."""
    for outputs in result.values():
        value = outputs.get("chunks")
        if isinstance(value, list):
            return value
    return []


def list_files(pipeline: Pipeline, paths: list[str], context: RunContext) -> list[str]:
    """Expand folders up front through the pipeline's loader, so batches and the progress bar count files
    (only paths are held, never their contents)."""
    loader: Any = pipeline.component(_loader(pipeline))
    if not hasattr(loader, "iter_files"):
        return paths
    loader.bind(context)
    return [str(p) for p in loader.iter_files(paths)]


def ingest(
    store: Store,
    pipeline: Pipeline,
    paths: str | Path | Iterable[str | Path],
    *,
    engine: IngestEngine,
    progress: bool = False,
    batch_files: int = 16,
    prune: bool = False,
    save_every: float = VECTOR_SAVE_INTERVAL_S,
    lock_timeout: float = 60.0,
    collection: str = DEFAULT_COLLECTION,
    on_batch: BatchObserver | None = None,
) -> IngestReport:
    """Ingest ``paths`` into ``collection`` of ``store`` with ``pipeline`` run by ``engine`` (see the
    module's docstring). ``on_batch(files_done, report)`` is called after each committed batch."""
    started = time.perf_counter()
    context = RunContext(store=store, progress=progress, collection=collection)
    report = IngestReport()
    roots = as_paths(paths)
    files = list_files(pipeline, roots, context)
    report.files = len(files)
    listed = time.perf_counter()
    size = max(1, batch_files)
    batches = [files[start : start + size] for start in range(0, len(files), size)]
    bar = _progress_bar(total=len(files), enabled=progress, unit="file")
    try:
        with store.writer(timeout=lock_timeout):
            try:
                _write_batches(store, batches, engine.run(batches, context), report, bar, save_every, context, on_batch)
            except StoreError as exc:
                raise _stopped(exc, report, files, context, started) from exc.__cause__
            if prune:
                report.pruned = prune_missing(store, roots, files, context)
            saving = time.perf_counter()
            try:
                store.save_vectors(catch_up=True)
            except StoreError as exc:
                raise _stopped(exc, report, files, context, started, unsaved=True) from exc.__cause__
            context.seconds["save"] = time.perf_counter() - saving
    finally:
        bar.close()
    return _finish(report, context, started, {"list": listed - started})


def add_documents(
    store: Store,
    pipeline: Pipeline,
    documents: Sequence[Document],
    *,
    progress: bool = False,
    batch_documents: int = 256,
    save_every: float = VECTOR_SAVE_INTERVAL_S,
    lock_timeout: float = 60.0,
    collection: str = DEFAULT_COLLECTION,
) -> IngestReport:
    """Write ``documents`` (made in memory, e.g. by :func:`memflow.records.record_documents`) into
    ``collection`` through the ingest ``pipeline`` past its loader: skipped when unchanged, else chunked,
    encoded, summarized and written, ``batch_documents`` to a transaction, as files are."""
    started = time.perf_counter()
    context = RunContext(store=store, progress=progress, collection=collection)
    report = IngestReport()
    loader = _loader(pipeline)
    size = max(1, batch_documents)
    batches = [list(documents[start : start + size]) for start in range(0, len(documents), size)]
    written = (written_chunks(pipeline.run(given={loader: {"documents": b}}, context=context)) for b in batches)
    bar = _progress_bar(total=len(documents), enabled=progress, unit="text")
    try:
        with store.writer(timeout=lock_timeout):
            _write_batches(store, batches, written, report, bar, save_every, context)
            saving = time.perf_counter()
            # The records are stored once committed: a vector file that cannot be saved is reported, not raised.
            _save_vectors(store, context, catch_up=True)
            context.seconds["save"] = time.perf_counter() - saving
    finally:
        bar.close()
    return _finish(report, context, started, {})


def _loader(pipeline: Pipeline) -> str:
    """The ingest pipeline's loader: its one component with a ``paths`` input and a ``documents`` output."""
    owners = [name for name, sockets in pipeline.inputs().items() if "paths" in sockets]
    if len(owners) != 1 or "documents" not in pipeline.component(owners[0]).outputs:
        raise PipelineError(
            "an ingest pipeline needs exactly one loader: a component with a 'paths' input and a 'documents' output",
            file=pipeline.source,
        )
    return owners[0]


def _write_batches(
    store: Store,
    batches: Sequence[Sequence[Any]],
    written: Iterator[list[Chunk]],
    report: IngestReport,
    bar: Any,
    save_every: float,
    context: RunContext,
    on_batch: BatchObserver | None = None,
) -> None:
    """Count what each batch wrote into ``report`` and save the vector memory every ``save_every`` seconds."""
    last_save = time.monotonic()
    done = 0
    try:
        for batch, chunks in zip(batches, written, strict=True):
            report.chunks += len(chunks)
            report.tokens += sum(c.token_count for c in chunks)
            report.ingested.extend(dict.fromkeys(c.document.uri for c in chunks))
            bar.update(len(batch))
            bar.set_postfix(chunks=report.chunks, refresh=False)
            done += len(batch)
            report.files_done = done
            if on_batch is not None:
                on_batch(done, report)
            if time.monotonic() - last_save >= save_every:
                _save_vectors(store, context)
                last_save = time.monotonic()
    finally:
        # An engine's generator releases what it holds (a Ray instance it started) when closed.
        close = getattr(written, "close", None)
        if close is not None:
            close()


def _stopped(
    exc: StoreError,
    report: IngestReport,
    files: Sequence[str],
    context: RunContext,
    started: float,
    *,
    unsaved: bool = False,
) -> StoreError:
    """``exc`` (the same kind) saying how far the ingest got, with the report of what it committed.
    ``unsaved``: every batch was committed and only the final save of the vector file failed."""
    if unsaved:
        message = (
            f"{exc} (the ingest committed {len(report.ingested)} documents from {report.files_done} of "
            f"{len(files)} files: they stand in SQL; the vector file is caught up from it when the store is next "
            "opened, and the next ingest saves it once it can be written)"
        )
    else:
        first = files[report.files_done] if report.files_done < len(files) else None
        where = f"; the first file not stored: {first}" if first is not None else ""
        message = (
            f"{exc} (the ingest stopped after committing {len(report.ingested)} documents from "
            f"{report.files_done} of {len(files)} files{where})"
        )
    stopped = type(exc)(message)
    stopped.report = _finish(report, context, started, {})
    return stopped


def _save_vectors(store: Store, context: RunContext, *, catch_up: bool = False) -> None:
    """Save the vector file (``catch_up``: see :meth:`Store.save_vectors`). A failed save (a full disk, a file
    that cannot be written) leaves the file behind SQL, where every committed chunk and vector is: the
    batches stand, the ingest goes on, the next open catches the file up, and the report says so."""
    try:
        store.save_vectors(catch_up=catch_up)
    except StoreError as exc:
        reason = (
            f"the vector file could not be saved ({exc}); the committed chunks are safe in SQL and the file "
            "is caught up from it when the store is next opened"
        )
        if not any(p.reason == reason for p in context.problems):
            context.report(str(store.directory / INDEX_FILE), reason, kind="skipped")


def _finish(report: IngestReport, context: RunContext, started: float, stages: dict[str, float]) -> IngestReport:
    report.unchanged = list(context.unchanged)
    report.problems = list(context.problems)
    report.seconds = time.perf_counter() - started
    report.stages = {**stages, **context.seconds}
    return report


def prune_missing(store: Store, roots: list[str], files: list[str], context: RunContext) -> list[str]:
    """Forget the stored documents under ``roots`` whose file is gone, and the records (``path#id``) no
    longer in a file that was loaded without failure; returns their URIs."""
    from memflow.components.loaders.auto import is_within

    resolved = [Path(r).expanduser().resolve() for r in roots]
    loaded = {str(Path(f).resolve()) for f in files}
    # A file with any failure (a JSONL line that no longer parses, say) keeps all its stored records.
    failed = {str(Path(p.path).resolve()) for p in context.problems if p.kind == "failed"}
    gone: list[str] = []
    for document in store.documents(collection=context.collection):
        path = document.uri.split("#", 1)[0]
        if not any(is_within(path, str(root)) for root in resolved):
            continue
        if not Path(path).exists():
            gone.append(document.uri)
        elif "#" in document.uri and path in loaded and path not in failed and document.uri not in context.seen:
            gone.append(document.uri)  # a record removed from a JSONL file that still exists
    if gone:
        store.forget(gone, collection=context.collection)
    return gone


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def _progress_bar(*, total: int, enabled: bool, unit: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc="ingest" if unit == "file" else "add", dynamic_ncols=True)
