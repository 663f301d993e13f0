"""Memory: the library's front door. A store plus the ingest and ask pipelines that run against it.

    import memflow
    with memflow.Memory("./storage") as mem:
        mem.ingest(["corpus/"])
        for hit in mem.search("what is a startup?", k=5): ...
        answer = mem.ask("What does the author say about growth?")
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from memflow.components.base import Problem, RunContext
from memflow.errors import MemflowError, PipelineError
from memflow.pipeline import Pipeline, builtin_pipeline
from memflow.storage.doctor import DoctorReport, diagnose
from memflow.storage.store import Store, StoredDocument, StoreStats
from memflow.types import Answer, Chunk, Hit, SummaryState

__all__ = ["Memory", "IngestReport"]

PipelineSpec = str | Path | Pipeline | None

#: How often a long ingest saves the vector memory, so a crash loses at most this much indexing work
#: (the SQL store, the source of truth, commits every batch regardless).
VECTOR_SAVE_INTERVAL_S = 300.0


@dataclass(slots=True)
class IngestReport:
    """What one ingest did: documents written, skipped as unchanged, and what failed, with reasons."""

    files: int = 0
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
        return (f"ingested {len(self.ingested)} documents ({self.chunks} chunks, {self.tokens} tokens), "
                f"skipped {len(self.unchanged)} unchanged, failed {len(self.failed)}{pruned} "
                f"in {self.seconds:.1f} s")


def _as_paths(paths: str | Path | Iterable[str | Path]) -> list[str]:
    if isinstance(paths, (str, Path)):
        return [str(paths)]
    return [str(p) for p in paths]


def _batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class Memory:
    """A memory stored in ``directory`` (default ``./storage``).

    ``url`` selects another SQL database (any SQLAlchemy URL; the FAISS file and the lock stay in
    ``directory``). ``lock_timeout`` is how long a write (ingest, forget, repair) waits for another
    process's writer lock before failing with StoreLockedError. ``ingest_pipeline`` and ``ask_pipeline``
    replace the built-in pipelines with a YAML file or a :class:`Pipeline`; ``trusted_modules`` lets their
    ``type:`` name dotted paths under those modules.
    """

    def __init__(
        self,
        directory: str | Path = "./storage",
        *,
        url: str | None = None,
        ingest_pipeline: PipelineSpec = None,
        ask_pipeline: PipelineSpec = None,
        trusted_modules: Sequence[str] = (),
        lock_timeout: float = 60.0,
    ) -> None:
        self.store = Store(directory, url=url)
        self.lock_timeout = lock_timeout
        self._trusted = tuple(trusted_modules)
        self._specs: dict[str, PipelineSpec] = {"ingest": ingest_pipeline, "ask": ask_pipeline}
        self._pipelines: dict[str, Pipeline] = {}

    # -- pipelines ----------------------------------------------------------------------------------------

    def pipeline(self, name: str) -> Pipeline:
        """The ``ingest`` or ``ask`` pipeline, loaded (and checked) on first use."""
        if name not in self._pipelines:
            spec = self._specs[name]
            if isinstance(spec, Pipeline):
                self._pipelines[name] = spec
            else:
                path = Path(spec) if spec is not None else builtin_pipeline(name)
                self._pipelines[name] = Pipeline.from_yaml(path, trusted_modules=self._trusted)
        return self._pipelines[name]

    # -- ingest -------------------------------------------------------------------------------------------

    def ingest(self, paths: str | Path | Iterable[str | Path], *, progress: bool = False,
               batch_files: int = 16, prune: bool = False,
               save_every: float = VECTOR_SAVE_INTERVAL_S, engine: Literal["local", "ray"] = "local",
               ray_address: str | None = None) -> IngestReport:
        """Ingest files and folders (streamed in batches of ``batch_files`` files, one transaction each).
        Unchanged documents are skipped, changed ones replaced; unreadable inputs are reported in the
        returned report, never raised, and never affect what is already stored. ``prune`` forgets stored
        documents under ``paths`` whose file is gone (and JSONL records no longer in their file).
        ``save_every`` is how many seconds may pass between saves of the FAISS file (0: after every batch);
        a crash in between costs only re-indexing from SQL on the next open, never data.
        ``engine="ray"`` loads, chunks and encodes on Ray Data (Ray as this process already runs it, else the
        cluster at ``ray_address``, else what ``ray.init()`` finds or starts, shut down after) and writes here,
        in order: the store comes out as a local ingest makes it (the ``ray`` extra; :mod:`memflow.engines.ray`)."""
        if engine != "local":
            if engine != "ray":
                raise MemflowError(f"unknown ingest engine {engine!r}; use 'local' or 'ray'")
            from memflow.engines.ray import ingest as ray_ingest

            return ray_ingest(self, paths, progress=progress, batch_files=batch_files, prune=prune,
                              save_every=save_every, address=ray_address)
        if ray_address is not None:
            raise MemflowError("ray_address is for engine='ray'")
        started = time.perf_counter()
        pipeline = self.pipeline("ingest")
        context = RunContext(store=self.store, progress=progress)
        report = IngestReport()
        files = self._list_files(pipeline, _as_paths(paths), context)
        report.files = len(files)
        listed = time.perf_counter()
        bar = _progress_bar(total=len(files), enabled=progress)
        last_save = time.monotonic()
        try:
            with self.store.writer(timeout=self.lock_timeout):
                for batch in _batches(files, max(1, batch_files)):
                    result = pipeline.run({"paths": batch}, context=context)
                    chunks = _written_chunks(result)
                    report.chunks += len(chunks)
                    report.tokens += sum(c.token_count for c in chunks)
                    report.ingested.extend(dict.fromkeys(c.document.uri for c in chunks))
                    bar.update(len(batch))
                    bar.set_postfix(chunks=report.chunks, refresh=False)
                    if time.monotonic() - last_save >= save_every:
                        self.store.save_vectors()
                        last_save = time.monotonic()
                if prune:
                    report.pruned = self._prune(_as_paths(paths), files, context)
                saving = time.perf_counter()
                self.store.save_vectors()
                context.seconds["save"] = time.perf_counter() - saving
        finally:
            bar.close()
        report.unchanged = list(context.unchanged)
        report.problems = list(context.problems)
        report.seconds = time.perf_counter() - started
        report.stages = {"list": listed - started, **context.seconds}
        return report

    @staticmethod
    def _list_files(pipeline: Pipeline, paths: list[str], context: RunContext) -> list[str]:
        """Expand folders up front through the pipeline's loader, so batches and the progress bar count
        files (only paths are held, never their contents)."""
        owners = [name for name, sockets in pipeline.inputs().items() if "paths" in sockets]
        if len(owners) != 1:
            raise PipelineError("an ingest pipeline needs exactly one component with a 'paths' input",
                                file=pipeline.source)
        loader: Any = pipeline.component(owners[0])
        if not hasattr(loader, "iter_files"):
            return paths
        loader.bind(context)
        return [str(p) for p in loader.iter_files(paths)]

    def _prune(self, roots: list[str], files: list[str], context: RunContext) -> list[str]:
        resolved = [Path(r).expanduser().resolve() for r in roots]
        loaded = {str(Path(f).resolve()) for f in files}
        # A file with any failure (a JSONL line that no longer parses, say) keeps all its stored records.
        failed = {str(Path(re.sub(r":\d+$", "", p.source)).resolve()) for p in context.problems if p.kind == "failed"}
        gone: list[str] = []
        for document in self.store.documents():
            path = document.uri.split("#", 1)[0]
            if not any(path == str(root) or path.startswith(str(root) + "/") for root in resolved):
                continue
            if not Path(path).exists():
                gone.append(document.uri)
            elif "#" in document.uri and path in loaded and path not in failed and document.uri not in context.seen:
                gone.append(document.uri)  # a record removed from a JSONL file that still exists
        if gone:
            self.store.forget(gone)
        return gone

    def doctor(self, *, repair: bool = False) -> DoctorReport:
        """Check the store against itself and the configured encoder; ``repair`` rebuilds what SQL can."""
        from memflow.components.encoders.sentence_transformers import QueryEncoder

        encoder: tuple[str, int] | None = None
        if self.store.setting("encoder") is not None:
            found = self.pipeline("ask").find(QueryEncoder)
            if found:
                component = found[0][1]
                encoder = (component.model_id, component.encoder.dimension)
        if repair:
            with self.store.writer(timeout=self.lock_timeout):
                return diagnose(self.store, encoder=encoder, repair=True)
        return diagnose(self.store, encoder=encoder)

    def forget(self, documents: Iterable[str]) -> int:
        """Remove documents (by URI, path or file name) completely; returns how many were stored."""
        uris = []
        for name in documents:
            found = self.store.find_document(name)
            if found is None:
                raise MemflowError(f"no document {name!r} in store {self.store.directory}")
            uris.append(found.uri)
        with self.store.writer(timeout=self.lock_timeout):
            return self.store.forget(uris)

    # -- questions ----------------------------------------------------------------------------------------

    def search(self, query: str, *, k: int = 10) -> list[Hit]:
        """The ``k`` stored chunks nearest to ``query``, best first."""
        result = self._ask_pipeline_run(query, k=k, outputs=["retrieve.hits"])
        hits: list[Hit] = result["retrieve"]["hits"]
        return hits

    def ask(self, question: str, *, k: int | None = None, decoder: str | None = None) -> Answer:
        """An answer composed of the memory's own sentences, with citations and the attention behind it.

        ``decoder`` names another registered decoder type to answer with, e.g. ``"llama_cpp"`` (short for
        ``decoders.llama_cpp``), in place of the ask pipeline's own, with its default params."""
        result = self._ask_pipeline_run(question, k=k, outputs=None, decoder=decoder)
        for outputs in result.values():
            for value in outputs.values():
                if isinstance(value, Answer):
                    return value
        raise PipelineError("the ask pipeline produced no Answer", file=self.ask_pipeline(decoder).source)

    def ask_pipeline(self, decoder: str | None = None) -> Pipeline:
        """The ask pipeline; with ``decoder``, a copy whose decoder (the component with an Answer output) is
        that registered type (``"llama_cpp"`` or ``"decoders.llama_cpp"``), built with its default params."""
        base = self.pipeline("ask")
        if decoder is None:
            return base
        kind = decoder if "." in decoder or ":" in decoder else f"decoders.{decoder}"
        key = f"ask with {kind}"
        if key not in self._pipelines:
            names = [name for name, component in base.components.items()
                     if any(socket.type is Answer for socket in component.outputs.values())]
            if len(names) != 1:
                raise PipelineError(f"cannot swap the decoder: the ask pipeline has {len(names)} components with an "
                                    "Answer output, not one", file=base.source)
            components = [dataclasses.replace(c, type=kind, params={}, param_lines={}) if c.name == names[0] else c
                          for c in base.spec.components]
            spec = dataclasses.replace(base.spec, components=components)
            self._pipelines[key] = Pipeline(spec, trusted_modules=self._trusted)
        return self._pipelines[key]

    def _ask_pipeline_run(self, query: str, *, k: int | None, outputs: list[str] | None,
                          decoder: str | None = None) -> dict[str, dict[str, Any]]:
        if not query.strip():
            raise MemflowError("the question is empty")
        pipeline = self.ask_pipeline(decoder)
        data: dict[str, Any] = {"query": query}
        if k is not None:
            data["k"] = k
        return pipeline.run(data, context=RunContext(store=self.store), outputs=outputs)

    def summary(self, document: str) -> SummaryState:
        """A document's recurrent summary state, by URI, path, file name or title."""
        found = self.store.find_document(document)
        if found is None:
            raise MemflowError(f"no document {document!r} in store {self.store.directory}")
        state = self.store.summary_states([found.id]).get(found.id)
        if state is None:
            raise MemflowError(f"document {found.uri} has no summary state (its ingest pipeline kept none)")
        return state

    def documents(self) -> list[StoredDocument]:
        return self.store.documents()

    def stats(self) -> StoreStats:
        return self.store.stats()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _written_chunks(result: dict[str, dict[str, Any]]) -> list[Chunk]:
    for outputs in result.values():
        value = outputs.get("chunks")
        if isinstance(value, list):
            return value
    return []


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def _progress_bar(*, total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="ingest", dynamic_ncols=True)
