"""Memory: the library's front door. A store plus the ingest and ask pipelines that run against it.

import memflow
with memflow.Memory("./storage") as mem:
    mem.ingest(["corpus/"])
    mem.add(["Alice prefers tea."], ids=["pref-1"], metadata={"user": "alice"})
    for hit in mem.search("what is a startup?", k=5): ...
    answer = mem.ask("What does the author say about growth?")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memflow.answering import answer_of, answering_component, question_inputs, ranking_output, stream_answer
from memflow.components.base import RunContext
from memflow.errors import MemflowError, RecordError
from memflow.filters import Where, parse_where
from memflow.ingest import VECTOR_SAVE_INTERVAL_S, BatchObserver, IngestEngine, IngestReport, LocalEngine, add_documents
from memflow.ingest import ingest as run_ingest
from memflow.pipeline import Pipeline, builtin_pipeline, resolve_pipeline
from memflow.records import MetadataInput, Record, RecordInput, checked_collection, record_documents
from memflow.storage.doctor import DoctorReport, diagnose
from memflow.storage.store import Store, StoredDocument, StoreStats
from memflow.types import DEFAULT_COLLECTION, Answer, Hit, SummaryState

__all__ = ["Memory", "IngestReport"]

PipelineSpec = str | Path | Pipeline | None
WhereSpec = Mapping[str, Any] | Where | None


class Memory:
    """A memory stored in ``directory`` (default ``./storage``).

    ``url`` selects another SQL database (any SQLAlchemy URL; the FAISS file and the lock stay in
    ``directory``). ``lock_timeout`` is how long a write (ingest, forget, repair) waits for another
    process's writer lock before failing with StoreLockedError. ``ingest_pipeline`` and ``ask_pipeline``
    replace the default pipelines with a shipped one by name (``ask_pipeline="dense"``: see
    ``memflow pipeline list``), a YAML file or a :class:`Pipeline`; ``trusted_modules`` lets their ``type:``
    name dotted paths under those modules.

    ``collection`` is the collection every call works in unless it names another (``collection=``):
    collections keep users or sources apart in one store. A search never returns another collection's
    documents, and the same id may name a different record in each.
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
        collection: str = DEFAULT_COLLECTION,
    ) -> None:
        self.store = Store(directory, url=url)
        self.lock_timeout = lock_timeout
        self.collection = checked_collection(collection)
        self._trusted = tuple(trusted_modules)
        self._specs: dict[str, PipelineSpec] = {"ingest": ingest_pipeline, "ask": ask_pipeline}
        self._pipelines: dict[str, Pipeline] = {}
        #: Seconds each stage (pipeline component, by name) took in the last search, ask or stream.
        self.last_timings: dict[str, float] = {}

    # -- pipelines ----------------------------------------------------------------------------------------

    def pipeline(self, name: Literal["ingest", "ask"]) -> Pipeline:
        """The ``ingest`` or ``ask`` pipeline, loaded (and checked) on first use."""
        spec = self._specs[name]
        if isinstance(spec, Pipeline):
            return self._pipelines.setdefault(name, spec)
        return self._loaded(name, spec, role=name)

    def _loaded(self, key: str, spec: str | Path | None, *, role: Literal["ingest", "ask"]) -> Pipeline:
        """The pipeline ``spec`` names for ``role`` (None: the shipped one), loaded and checked once, kept
        under ``key``."""
        if key not in self._pipelines:
            path = resolve_pipeline(spec, role=role) if spec is not None else builtin_pipeline(role)
            self._pipelines[key] = Pipeline.from_yaml(path, trusted_modules=self._trusted)
        return self._pipelines[key]

    # -- ingest -------------------------------------------------------------------------------------------

    def ingest(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        progress: bool = False,
        batch_files: int = 16,
        prune: bool = False,
        save_every: float = VECTOR_SAVE_INTERVAL_S,
        engine: Literal["local", "ray"] = "local",
        ray_address: str | None = None,
        collection: str | None = None,
        on_batch: BatchObserver | None = None,
    ) -> IngestReport:
        """Ingest files and folders (streamed in batches of ``batch_files`` files, one transaction each).
        Unchanged documents are skipped, changed ones replaced; unreadable inputs are reported in the
        returned report, never raised, and never affect what is already stored. ``prune`` forgets stored
        documents under ``paths`` whose file is gone (and JSONL records no longer in their file).
        ``save_every`` is how many seconds may pass between saves of the FAISS file (0: after every batch);
        a crash in between costs only re-indexing from SQL on the next open, never data.
        ``engine="ray"`` loads, chunks and encodes on Ray Data (Ray as this process already runs it, else the
        cluster at ``ray_address``, else what ``ray.init()`` finds or starts, shut down after) and writes here,
        in order: the store comes out as a local ingest makes it (the ``ray`` extra; :mod:`memflow.engines.ray`).
        ``on_batch(files_done, report)`` is called after each committed batch (a progress display, a job)."""
        pipeline = self.pipeline("ingest")
        runner: IngestEngine
        if engine == "local":
            if ray_address is not None:
                raise MemflowError("ray_address is for engine='ray'")
            runner = LocalEngine(pipeline)
        elif engine == "ray":
            from memflow.engines.ray import RayEngine

            runner = RayEngine(pipeline, trusted_modules=self._trusted, address=ray_address)
        else:
            raise MemflowError(f"unknown ingest engine {engine!r}; use 'local' or 'ray'")
        return run_ingest(
            self.store,
            pipeline,
            paths,
            engine=runner,
            progress=progress,
            batch_files=batch_files,
            prune=prune,
            save_every=save_every,
            lock_timeout=self.lock_timeout,
            collection=self._in(collection),
            on_batch=on_batch,
        )

    # -- records ------------------------------------------------------------------------------------------

    def add(
        self,
        texts: RecordInput | Iterable[RecordInput],
        *,
        ids: str | Sequence[str] | None = None,
        metadata: MetadataInput = None,
        progress: bool = False,
        collection: str | None = None,
    ) -> list[str]:
        """Store texts as records, chunked, encoded and summarized as files are; returns their ids in order.

        ``texts`` is a string, a record ``{"text", "id"?, "title"?, "metadata"?}`` or a list of either.
        ``ids`` names them (one per text); without, an id is a digest of the text, title and metadata.
        ``metadata`` is one dict for all texts or one per text. Adding a stored id with other content
        replaces that record; unchanged records are skipped. Malformed input raises RecordError naming the
        argument, before anything is written."""
        documents = record_documents(texts, ids=ids, metadata=metadata)
        add_documents(
            self.store,
            self.pipeline("ingest"),
            documents,
            progress=progress,
            lock_timeout=self.lock_timeout,
            collection=self._in(collection),
        )
        return [document.uri for document in documents]

    def get(self, id: str, *, collection: str | None = None) -> Record | None:
        """The record (or ingested document) the collection holds under exactly ``id``, or None."""
        found = self.store.document(id, collection=self._in(collection))
        if found is None:
            return None
        text = self.store.document_text(found.id)
        return Record(found.uri, text, found.title, found.metadata, found.chunk_count, found.collection)

    def delete(
        self, ids: str | Iterable[str] | None = None, *, where: WhereSpec = None, collection: str | None = None
    ) -> int:
        """Remove records of the collection completely (text, chunks, vectors, lexical entries, summary
        state): those stored under ``ids`` (ids not stored are ignored) and those whose metadata ``where``
        matches. Returns how many were removed."""
        wanted = [] if ids is None else [ids] if isinstance(ids, str) else list(ids)
        for n, value in enumerate(wanted):
            if not isinstance(value, str):
                raise RecordError(f"ids[{n}] must be a string, got {type(value).__name__}")
        name = self._in(collection)
        matching = parse_where(where)
        if ids is None and matching is None:
            raise RecordError("delete needs ids or where= (nothing was deleted)")
        if matching is not None:
            wanted += [d.uri for d in self.store.documents(collection=name, where=matching)]
        if not wanted:
            return 0
        with self.store.writer(timeout=self.lock_timeout):
            return self.store.forget(wanted, collection=name)

    def collections(self) -> dict[str, int]:
        """Each collection that holds documents, with how many."""
        return self.store.collections()

    def _in(self, collection: str | None) -> str:
        return self.collection if collection is None else checked_collection(collection)

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

    def forget(self, documents: Iterable[str], *, collection: str | None = None) -> int:
        """Remove documents of the collection (by id, URI, path or file name) completely; returns how many
        were stored. An unknown name is an error (and nothing is removed)."""
        name = self._in(collection)
        uris = []
        for document in documents:
            found = self.store.find_document(document, collection=name)
            if found is None:
                where = f" (collection {name!r})" if name != DEFAULT_COLLECTION else ""
                raise MemflowError(f"no document {document!r} in store {self.store.directory}{where}")
            uris.append(found.uri)
        with self.store.writer(timeout=self.lock_timeout):
            return self.store.forget(uris, collection=name)

    # -- questions ----------------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | Path | None = None,
    ) -> list[Hit]:
        """The ``k`` best stored chunks for ``query``, best first: the ask pipeline run up to its decoder, so
        these are the hits ``ask`` attends to (reranked, duplicates collapsed, as the pipeline does), in order.

        ``where`` restricts the search to the documents it matches, inside retrieval (see
        :mod:`memflow.filters`: ``{"user": "alice"}``, ``{"date": {"$gte": "2024-01-01"}}``): k hits come
        back whenever k matching chunks are stored. Only the collection's documents are searched.
        ``pipeline`` runs another ask pipeline for this call: a shipped one by name (``"dense"``, the
        fastest) or a YAML file, loaded once and kept."""
        chosen = self.ask_pipeline(pipeline=pipeline)
        output = ranking_output(chosen)
        context = self._context(where, collection)
        result = self._ask_pipeline_run(query, k=k, outputs=[output], context=context, pipeline=pipeline)
        component, _, socket = output.partition(".")
        hits: list[Hit] = result[component][socket]
        self.last_timings = dict(context.seconds)
        return self._within(hits, context)[:k]

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        decoder: str | None = None,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | Path | None = None,
    ) -> Answer:
        """An answer composed of the memory's own sentences, with citations and the attention behind it.

        ``decoder`` names another registered decoder type to answer with, e.g. ``"llama_cpp"`` (short for
        ``decoders.llama_cpp``), in place of the ask pipeline's own, with its default params. ``where``
        answers from the documents it matches only, ``pipeline`` through another ask pipeline (as in
        :meth:`search`)."""
        context = self._context(where, collection)
        result = self._ask_pipeline_run(
            question, k=k, outputs=None, decoder=decoder, context=context, pipeline=pipeline
        )
        answer = answer_of(result, self.ask_pipeline(decoder, pipeline=pipeline))
        self.last_timings = dict(context.seconds)
        self._within(answer.hits, context)
        return answer

    def stream(
        self,
        question: str,
        *,
        k: int | None = None,
        decoder: str | None = None,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | Path | None = None,
    ) -> Iterator[str | Answer]:
        """``ask``, streamed: yields the answer's text piece by piece as the decoder writes it, then the whole
        :class:`Answer` (citations included) as the last item. A decoder that cannot stream (the built-in
        attention decoder) yields its text as one piece."""
        chosen = self.ask_pipeline(decoder, pipeline=pipeline)
        context = self._context(where, collection)
        stream = stream_answer(chosen, question_inputs(chosen, question, k=k), context)
        answer = yield from stream
        self.last_timings = dict(context.seconds)
        self._within(answer.hits, context)
        yield answer

    def _context(self, where: WhereSpec, collection: str | None) -> RunContext:
        return RunContext(store=self.store, where=parse_where(where), collection=self._in(collection))

    @staticmethod
    def _within(hits: list[Hit], context: RunContext) -> list[Hit]:
        """``hits``, checked against the run's filter: a component that retrieved past it is a bug to stop
        on, never a hit to hand out."""
        allowed = context.allowed_chunks()
        if allowed is None:
            return hits
        inside = np.isin(np.asarray([h.chunk_id for h in hits], dtype=np.int64), allowed)
        outside = [h.chunk_id for h, ok in zip(hits, inside, strict=True) if not ok]
        if outside:
            raise MemflowError(f"a component of the ask pipeline returned chunks outside the filter: {outside[:5]}")
        return hits

    def ask_pipeline(self, decoder: str | None = None, *, pipeline: str | Path | None = None) -> Pipeline:
        """The ask pipeline, or ``pipeline`` (a shipped ask pipeline's name or a YAML file; loaded once);
        with ``decoder``, a copy whose decoder (the component with an Answer output) is that registered type
        (``"llama_cpp"`` or ``"decoders.llama_cpp"``), built with its default params."""
        base = self.pipeline("ask") if pipeline is None else self._named_pipeline(pipeline)
        if decoder is None:
            return base
        kind = decoder if "." in decoder or ":" in decoder else f"decoders.{decoder}"
        key = f"ask with {kind}" + (f" in {pipeline}" if pipeline is not None else "")
        if key not in self._pipelines:
            name = answering_component(base)
            components = [
                dataclasses.replace(c, type=kind, params={}, param_lines={}) if c.name == name else c
                for c in base.spec.components
            ]
            spec = dataclasses.replace(base.spec, components=components)
            self._pipelines[key] = Pipeline(spec, trusted_modules=self._trusted)
        return self._pipelines[key]

    def _named_pipeline(self, spec: str | Path) -> Pipeline:
        return self._loaded(f"ask pipeline {spec}", spec, role="ask")

    def _ask_pipeline_run(
        self,
        query: str,
        *,
        k: int | None,
        outputs: list[str] | None,
        context: RunContext,
        decoder: str | None = None,
        pipeline: str | Path | None = None,
    ) -> dict[str, dict[str, Any]]:
        if not query.strip():
            raise MemflowError("the question is empty")
        chosen = self.ask_pipeline(decoder, pipeline=pipeline)
        return chosen.run(question_inputs(chosen, query, k=k), context=context, outputs=outputs)

    def summary(self, document: str, *, collection: str | None = None) -> SummaryState:
        """A document's recurrent summary state, by id, URI, path, file name or title."""
        found = self.store.find_document(document, collection=self._in(collection))
        if found is None:
            raise MemflowError(f"no document {document!r} in store {self.store.directory}")
        state = self.store.summary_states([found.id]).get(found.id)
        if state is None:
            raise MemflowError(f"document {found.uri} has no summary state (its ingest pipeline kept none)")
        return state

    def documents(
        self, *, collection: str | None = None, where: WhereSpec = None, limit: int | None = None, offset: int = 0
    ) -> list[StoredDocument]:
        """The collection's documents and records (oldest first), those ``where`` matches when given; with
        ``limit``, that many from ``offset`` (a page read from SQL)."""
        name, matching = self._in(collection), parse_where(where)
        return self.store.documents(collection=name, where=matching, limit=limit, offset=offset)

    def count(self, *, collection: str | None = None, where: WhereSpec = None) -> int:
        """How many of the collection's documents and records ``where`` matches (None: all of them)."""
        return self.store.count_documents(collection=self._in(collection), where=parse_where(where))

    def stats(self, *, collection: str | None = None) -> StoreStats:
        """Counts of the collection's documents, chunks and tokens, and of the store's vectors."""
        return self.store.stats(collection=self._in(collection))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
