"""The HTTP API over one :class:`~memflow.Memory`: search, ask (streamed as server-sent events on request),
records added, listed, read and deleted, summaries, stats.

Routes are plain ``def`` functions, which FastAPI runs in its thread pool: encoding, FAISS and SQL work never
blocks the event loop, and readers run side by side (the store lets one thread at a time touch its vector
memory and one writer at a time write). Every error is a JSON body ``{"error": "..."}`` with a 4xx or 5xx
status, never a traceback: see :func:`add_error_handlers`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp

from memflow.errors import RecordError
from memflow.memory import Memory
from memflow.records import checked_collection
from memflow.serialize import summary_json, to_jsonable
from memflow.server.errors import FieldError, NotFound, add_error_handlers, bad_field
from memflow.server.jobs import Jobs, confined_paths, save_upload
from memflow.server.schemas import MAX_K, AddRequest, AskRequest, DeleteRequest, IngestRequest, SearchRequest
from memflow.server.security import BodyLimit, TokenGuard
from memflow.server.warm import has_vectors as _has_vectors
from memflow.types import Answer

__all__ = ["ServerSettings", "create_app"]

log = logging.getLogger("memflow.server")

#: The default cap on a request body (a batch of records or an uploaded file).
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """``token``: the bearer token every route but /healthz needs (None: none, loopback only), MCP's included.
    ``max_body_bytes``: the largest request body accepted. ``ingest_roots``: the server-side directories
    POST /ingest may read under. ``pipelines``: the other ask pipelines a request may choose by name
    (``"pipeline": "dense"``), each the YAML file it names; ``"default"`` is always the memory's own."""

    token: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    #: Serve MCP's streamable HTTP at /mcp too (the ``mcp`` extra), behind the same token and body limit;
    #: ``host`` is the address served, which the MCP SDK's DNS-rebinding guard checks requests against.
    mcp: bool = False
    host: str = "127.0.0.1"
    ingest_roots: tuple[Path, ...] = field(default_factory=tuple)
    pipelines: dict[str, Path] = field(default_factory=dict)

    def pipeline(self, name: str | None) -> Path | None:
        """The pipeline file a request's ``pipeline`` names (None: the memory's own); FieldError if this
        server offers none of that name."""
        if name is None or name == "default":
            return None
        if name not in self.pipelines:
            offered = ", ".join(["default", *self.pipelines])
            raise FieldError("pipeline", f"this server offers no pipeline {name!r}; it offers: {offered}")
        return self.pipelines[name]


def _empty_answer(question: str) -> Answer:
    return Answer(question, "", [], [], [], [], notes=["the memory is empty: add or ingest something first"])


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _where_param(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_field("where", f"not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, dict):
        raise bad_field("where", f"must be a JSON object, got {type(value).__name__}")
    return value


def create_app(memory: Memory, settings: ServerSettings | None = None) -> ASGIApp:
    """The ASGI app serving ``memory``: FastAPI's routes behind the body limit and, with a token, its guard."""
    settings = settings or ServerSettings()
    api = FastAPI(
        title="memflow",
        summary="A memory far larger than any context window: search, ask and keep records over HTTP.",
        version=_version(),
    )
    add_error_handlers(api)
    api.state.memory = memory
    api.state.settings = settings
    jobs = api.state.jobs = Jobs(memory)

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: answers once the server is warm. Needs no token."""
        return {"status": "ok"}

    @api.post("/search", response_model=None)
    def search(request: SearchRequest) -> JSONResponse:
        """The k best chunks for ``query`` (as ``memflow search --json``), within ``where`` and ``collection``."""
        chosen = settings.pipeline(request.pipeline)
        if not _has_vectors(memory):
            return JSONResponse({"hits": []})
        hits = memory.search(
            request.query, k=request.k, where=request.where, collection=request.collection, pipeline=chosen
        )
        # JSON already: a JSONResponse skips FastAPI's re-encoding of every field, the most of a fast search
        return JSONResponse({"hits": to_jsonable(hits)})

    @api.post("/ask", response_model=None)
    def ask(request: AskRequest) -> dict[str, Any] | JSONResponse | StreamingResponse:
        """An answer with citations (as ``memflow ask --json``). With ``"stream": true``, server-sent events:
        ``token`` events carry the text as the decoder writes it, the last ``answer`` event the whole answer."""
        chosen = settings.pipeline(request.pipeline)
        if not _has_vectors(memory):
            empty = _empty_answer(request.question)
            if request.stream:
                return StreamingResponse(iter([_sse("answer", to_jsonable(empty))]), media_type="text/event-stream")
            return dict(to_jsonable(empty))
        if not request.stream:
            answer = memory.ask(
                request.question, k=request.k, where=request.where, collection=request.collection, pipeline=chosen
            )
            return JSONResponse(to_jsonable(answer))
        pieces = memory.stream(
            request.question, k=request.k, where=request.where, collection=request.collection, pipeline=chosen
        )
        return StreamingResponse(_answer_events(pieces), media_type="text/event-stream")

    @api.post("/documents")
    def add(request: AddRequest) -> dict[str, Any]:
        """Store records (``text``, optional ``id``, ``title``, ``metadata``); a stored id with other content is
        replaced, an unchanged one skipped. Returns the ids in order."""
        records = [r.model_dump(exclude_none=True) for r in request.records]
        try:
            ids = memory.add(records, collection=request.collection)
        except RecordError as exc:  # Memory.add names its argument "texts"; this request calls it "records"
            raise bad_field("records", str(exc).replace("texts[", "records[", 1)) from None
        return {"ids": ids}

    @api.get("/documents")
    def list_documents(
        collection: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        where: Annotated[str | None, Query(description="a filter, as JSON")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_K)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """The collection's records and documents, oldest first, those ``where`` matches when given."""
        matching = _where_param(where)
        page = memory.documents(collection=collection, where=matching, limit=limit, offset=offset)
        return {
            "documents": [
                {
                    "id": d.uri,
                    "title": d.title,
                    "metadata": d.metadata,
                    "chunks": d.chunk_count,
                    "collection": d.collection,
                    "content_hash": d.content_hash,
                    "row": d.id,
                }
                for d in page
            ],
            "total": memory.count(collection=collection, where=matching),
            "offset": offset,
            "limit": limit,
        }

    @api.post("/documents/delete")
    def delete_many(request: DeleteRequest) -> dict[str, int]:
        """Remove the records under ``ids`` and those ``where`` matches; returns how many were removed."""
        return {"deleted": memory.delete(request.ids, where=request.where, collection=request.collection)}

    @api.get("/documents/{id:path}/summary")
    def summary(
        id: str,
        collection: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        vectors: bool = False,
    ) -> Any:
        """The document's recurrent summary state (as ``memflow summary --json``), found by id, path, file name
        or title as ``memflow summary`` finds it; ``vectors=true`` adds the slots' vectors and the centroid."""
        found = memory.store.find_document(id, collection=memory._in(collection))
        if found is None:
            raise NotFound(f"no document {id!r}")
        state = memory.store.summary_states([found.id]).get(found.id)
        if state is None:
            raise NotFound(f"document {id!r} has no summary state (its ingest pipeline kept none)")
        written = memory.store.written_summaries([found.id]).get(found.id)
        return summary_json(state, written, vectors=vectors)

    @api.get("/documents/{id:path}")
    def get(id: str, collection: Annotated[str | None, Query(min_length=1, max_length=128)] = None) -> Any:
        """The record stored under exactly ``id``: its text, title, metadata and chunk count."""
        record = memory.get(id, collection=collection)
        if record is None:
            raise NotFound(f"no document {id!r}")
        return to_jsonable(record)

    @api.delete("/documents/{id:path}")
    def delete(id: str, collection: Annotated[str | None, Query(min_length=1, max_length=128)] = None) -> Any:
        """Remove the record stored under ``id`` completely (text, chunks, vectors, summary state)."""
        if memory.delete([id], collection=collection) == 0:
            raise NotFound(f"no document {id!r}")
        return {"deleted": 1}

    @api.post("/ingest", status_code=202, response_model=None)
    async def ingest(request: Request) -> JSONResponse:
        """Queue an ingest job; answers 202 with the job at once (follow it at GET /jobs/{id}). As JSON,
        ``{"paths": [...], "collection"?, "prune"?}`` names server-side files and folders under the
        ``--ingest-root`` directories; as multipart/form-data, the ``files`` parts are uploaded files (and a
        ``collection`` field may name their collection)."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=1000, max_fields=10)
            uploads = [part for part in form.getlist("files") if isinstance(part, UploadFile)]
            if not uploads:
                raise FieldError("files", "no files uploaded (send them as multipart parts named 'files')")
            collection = form.get("collection")
            if collection is not None and not isinstance(collection, str):
                raise FieldError("collection", "must be a text field")
            paths = [await run_in_threadpool(save_upload, memory, part.filename, await part.read()) for part in uploads]
            files, prune = len(paths), False
        elif "json" in content_type:
            try:
                body = IngestRequest.model_validate_json(await request.body())
            except ValidationError as exc:
                errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                raise RequestValidationError(errors) from None
            paths, files = await run_in_threadpool(confined_paths, memory, body.paths, settings.ingest_roots)
            collection, prune = body.collection, body.prune
        else:
            raise FieldError("body", f"send JSON paths or multipart/form-data files, not {content_type!r}")
        if collection is not None:
            checked_collection(collection)
        job = jobs.submit(paths, files=files, collection=collection, prune=prune)
        return JSONResponse(job.to_json(), status_code=202)

    @api.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        """An ingest job: ``state`` (queued, running, done, failed), files listed and done, and once done the
        ingest report (as ``memflow ingest --json``) or the error."""
        found = jobs.get(job_id)
        if found is None:
            raise NotFound(f"no job {job_id!r} (the server keeps the last jobs since it started)")
        return found.to_json()

    @api.get("/jobs")
    def list_jobs() -> dict[str, Any]:
        """The last ingest jobs, oldest first (a restarted server remembers them: see memflow.server.jobs)."""
        return {"jobs": [j.to_json() for j in jobs.all()]}

    @api.get("/collections")
    def collections() -> dict[str, dict[str, int]]:
        """Each collection that holds documents, with how many."""
        return {"collections": memory.collections()}

    @api.get("/stats")
    def stats(collection: Annotated[str | None, Query(min_length=1, max_length=128)] = None) -> Any:
        """Counts of the collection's documents, chunks and tokens and of the store's vectors, and its settings
        (the database URL without its password)."""
        return to_jsonable(memory.stats(collection=collection))

    app: ASGIApp = api
    if settings.mcp:
        from memflow.server.mcp_server import WithMcp

        app = WithMcp(api, memory, host=settings.host)
    if settings.token is not None:
        app = TokenGuard(app, token=settings.token)
    return BodyLimit(app, max_bytes=settings.max_body_bytes)


def _answer_events(pieces: Iterator[str | Answer]) -> Iterator[str]:
    try:
        for piece in pieces:
            if isinstance(piece, str):
                yield _sse("token", {"text": piece})
            else:
                yield _sse("answer", to_jsonable(piece))
    except Exception as exc:  # the response has started: the error can only be the stream's last event
        from memflow.errors import MemflowError

        if not isinstance(exc, MemflowError):
            log.exception("ask stream failed")
        yield _sse("error", {"error": str(exc) if isinstance(exc, MemflowError) else "internal server error"})


def _version() -> str:
    from memflow import __version__

    return __version__
