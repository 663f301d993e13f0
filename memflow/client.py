"""Client and AsyncClient: a served memory (``memflow serve``) with the read and write methods of
:class:`~memflow.Memory`, so an application switches between embedded and served by its constructor alone.

import memflow
mem = memflow.Client("http://127.0.0.1:8000", token="...")     # or memflow.Memory("./storage")
mem.add(["Alice prefers tea."], ids=["pref-1"], metadata={"user": "alice"})
hits = mem.search("what does alice drink?", where={"user": "alice"})

Results are the same dataclasses (:class:`~memflow.Hit`, :class:`~memflow.Answer`, :class:`~memflow.Record`)
and errors the same exceptions (RecordError, FilterError, StoreError, StoreLockedError, ReadOnlyStoreError,
StorageFullError) as in-process; an error only a server has (a wrong token, a body over its limit) is a
:class:`ServerError`.
Records are checked here before they are sent, as ``Memory.add`` checks them. Needs httpx (the ``server`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memflow.errors import (
    MemflowError,
    MissingDependencyError,
    ReadOnlyStoreError,
    RecordError,
    StorageFullError,
    StoreError,
    StoreLockedError,
)
from memflow.filters import FilterError, Where, parse_where
from memflow.records import MetadataInput, Record, RecordInput, record_documents
from memflow.serialize import (
    answer_from_json,
    document_from_json,
    hit_from_json,
    record_from_json,
    report_from_json,
    stats_from_json,
    summary_from_json,
)
from memflow.types import Answer, Hit, SummaryState

if TYPE_CHECKING:
    import httpx

    from memflow.ingest import IngestReport
    from memflow.storage.store import StoredDocument, StoreStats

__all__ = ["Client", "AsyncClient", "ServerError"]

WhereSpec = Mapping[str, Any] | Where | None
#: How often ``ingest`` asks the server how its job is going.
JOB_POLL_S = 0.25


class ServerError(MemflowError):
    """The server refused a request for a reason of its own (``status``: 401 token, 413 body too large...)."""

    def __init__(self, message: str, *, status: int, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:
        raise MissingDependencyError("httpx", extra="server", purpose="memflow.Client") from exc
    return httpx


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message, field = str(body.get("error", response.text)), body.get("field")
    except (ValueError, AttributeError):
        message, field = response.text.strip() or response.reason_phrase, None
    status = response.status_code
    error: MemflowError
    if status == 422 and field == "where":
        error = FilterError(message)
    elif status == 422:
        error = RecordError(message)
    elif status == 503 and response.headers.get("retry-after"):
        error = StoreLockedError(message)
    elif status == 403:
        error = ReadOnlyStoreError(message)
    elif status == 507:
        error = StorageFullError(message)
    elif status == 503:
        error = StoreError(message)
    else:
        error = ServerError(f"{response.request.method} {response.request.url.path}: {status} {message}", status=status)
    # the HTTP status and the field the server named, on whichever error it is
    setattr(error, "status", status)  # noqa: B010
    setattr(error, "field", field)  # noqa: B010
    raise error


def _where(where: WhereSpec) -> dict[str, Any] | None:
    parsed = parse_where(where)  # a malformed filter fails here, as it does in-process
    if parsed is None:
        return None
    return dict(parsed.spec)


def _records(texts: RecordInput | Iterable[RecordInput], ids: Any, metadata: MetadataInput) -> list[dict[str, Any]]:
    documents = record_documents(texts, ids=ids, metadata=metadata)
    return [{"id": d.uri, "text": d.text, "title": d.title, "metadata": dict(d.metadata)} for d in documents]


def _body(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class _Base:
    def __init__(self, url: str, *, token: str | None, timeout: float, collection: str | None) -> None:
        self.url = url.rstrip("/")
        self.collection = collection
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout

    def _in(self, collection: str | None) -> str | None:
        return collection if collection is not None else self.collection

    def _params(self, collection: str | None, **more: Any) -> dict[str, Any]:
        return _body(collection=self._in(collection), **more)

    # The request bodies, one place for Client and AsyncClient alike.

    def _search_body(
        self, query: str, k: int, where: WhereSpec, collection: str | None, pipeline: str | None
    ) -> dict[str, Any]:
        return _body(query=query, k=k, where=_where(where), collection=self._in(collection), pipeline=pipeline)

    def _ask_body(
        self,
        question: str,
        k: int | None,
        where: WhereSpec,
        collection: str | None,
        pipeline: str | None,
        *,
        stream: bool = False,
    ) -> dict[str, Any]:
        return _body(
            question=question,
            k=k,
            where=_where(where),
            collection=self._in(collection),
            pipeline=pipeline,
            stream=True if stream else None,
        )

    def _add_body(
        self, texts: RecordInput | Iterable[RecordInput], ids: Any, metadata: MetadataInput, collection: str | None
    ) -> dict[str, Any]:
        return _body(records=_records(texts, ids, metadata), collection=self._in(collection))

    def _ingest_body(self, paths: str | Iterable[str], prune: bool, collection: str | None) -> dict[str, Any]:
        return _body(paths=_path_list(paths), prune=prune, collection=self._in(collection))

    def _delete_body(self, ids: str | Iterable[str] | None, where: WhereSpec, collection: str | None) -> dict[str, Any]:
        wanted = None if ids is None else [ids] if isinstance(ids, str) else list(ids)
        if wanted is None and where is None:
            raise RecordError("delete needs ids or where= (nothing was deleted)")
        return _body(ids=wanted, where=_where(where), collection=self._in(collection))


class Client(_Base):
    """A served memory at ``url`` (``token``: the server's bearer token). ``collection`` is the collection
    every call works in unless it names another, as in ``Memory(collection=)``."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 120.0,
        collection: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token=token, timeout=timeout, collection=collection)
        httpx = _httpx()
        self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=timeout, transport=transport)

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        with _reaching(self.url):
            response: httpx.Response = self._http.request(method, path, **options)
        return response

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        response = self._request(method, path, params=params, json=json)
        _raise_for(response)
        return response.json()

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | None = None,
    ) -> list[Hit]:
        """As ``Memory.search``; ``pipeline`` names one the server offers (``memflow serve --offer dense``)."""
        body = self._search_body(query, k, where, collection, pipeline)
        return [hit_from_json(h) for h in self._send("POST", "/search", json=body)["hits"]]

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | None = None,
    ) -> Answer:
        body = self._ask_body(question, k, where, collection, pipeline)
        return answer_from_json(self._send("POST", "/ask", json=body))

    def stream(
        self,
        question: str,
        *,
        k: int | None = None,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | None = None,
    ) -> Iterator[str | Answer]:
        """The answer's text piece by piece as the server's decoder writes it, then the whole Answer."""
        body = self._ask_body(question, k, where, collection, pipeline, stream=True)
        with _reaching(self.url), self._http.stream("POST", "/ask", json=body) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            events = _EventStream()
            for line in response.iter_lines():
                piece = events.feed(line)
                if piece is not None:
                    yield piece

    def add(
        self,
        texts: RecordInput | Iterable[RecordInput],
        *,
        ids: str | Sequence[str] | None = None,
        metadata: MetadataInput = None,
        collection: str | None = None,
    ) -> list[str]:
        body = self._add_body(texts, ids, metadata, collection)
        return list(self._send("POST", "/documents", json=body)["ids"])

    def ingest(self, paths: str | Iterable[str], *, prune: bool = False, collection: str | None = None) -> IngestReport:
        """Ingest files and folders on the server's side (under its ``--ingest-root`` directories, relative
        to one or absolute) as one job, and wait for its report."""
        body = self._ingest_body(paths, prune, collection)
        job = self._send("POST", "/ingest", json=body)
        while job["state"] in ("queued", "running"):
            time.sleep(JOB_POLL_S)
            job = self._send("GET", f"/jobs/{job['id']}")
        return _job_report(job)

    def get(self, id: str, *, collection: str | None = None) -> Record | None:
        response = self._request("GET", f"/documents/{_quoted(id)}", params=self._params(collection))
        if response.status_code == 404:
            return None
        _raise_for(response)
        return record_from_json(response.json())

    def delete(
        self, ids: str | Iterable[str] | None = None, *, where: WhereSpec = None, collection: str | None = None
    ) -> int:
        body = self._delete_body(ids, where, collection)
        return int(self._send("POST", "/documents/delete", json=body)["deleted"])

    def documents(self, *, collection: str | None = None, where: WhereSpec = None) -> list[StoredDocument]:
        found: list[StoredDocument] = []
        filtered = _where(where)
        while True:
            params = self._params(collection, offset=len(found), limit=1000)
            if filtered is not None:
                params["where"] = json.dumps(filtered)
            page = self._send("GET", "/documents", params=params)
            found += [document_from_json(d) for d in page["documents"]]
            if not page["documents"] or len(found) >= page["total"]:
                return found

    def summary(self, document: str, *, collection: str | None = None) -> SummaryState:
        params = self._params(collection, vectors="true")
        response = self._request("GET", f"/documents/{_quoted(document)}/summary", params=params)
        if response.status_code == 404:
            raise MemflowError(response.json().get("error", f"no document {document!r}"))
        _raise_for(response)
        return summary_from_json(response.json())

    def collections(self) -> dict[str, int]:
        return dict(self._send("GET", "/collections")["collections"])

    def stats(self, *, collection: str | None = None) -> StoreStats:
        return stats_from_json(self._send("GET", "/stats", params=self._params(collection)))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """:class:`Client` for asyncio: the same methods, awaited (``stream`` is an async iterator)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 120.0,
        collection: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token=token, timeout=timeout, collection=collection)
        httpx = _httpx()
        self._http = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=timeout, transport=transport)

    async def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        with _reaching(self.url):
            response: httpx.Response = await self._http.request(method, path, **options)
        return response

    async def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        response = await self._request(method, path, params=params, json=json)
        _raise_for(response)
        return response.json()

    async def search(
        self,
        query: str,
        *,
        k: int = 10,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | None = None,
    ) -> list[Hit]:
        body = self._search_body(query, k, where, collection, pipeline)
        return [hit_from_json(h) for h in (await self._send("POST", "/search", json=body))["hits"]]

    async def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | None = None,
    ) -> Answer:
        body = self._ask_body(question, k, where, collection, pipeline)
        return answer_from_json(await self._send("POST", "/ask", json=body))

    async def stream(
        self,
        question: str,
        *,
        k: int | None = None,
        where: WhereSpec = None,
        collection: str | None = None,
        pipeline: str | None = None,
    ) -> AsyncIterator[str | Answer]:
        body = self._ask_body(question, k, where, collection, pipeline, stream=True)
        with _reaching(self.url):
            async with self._http.stream("POST", "/ask", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response)
                events = _EventStream()
                async for line in response.aiter_lines():
                    piece = events.feed(line)
                    if piece is not None:
                        yield piece

    async def add(
        self,
        texts: RecordInput | Iterable[RecordInput],
        *,
        ids: str | Sequence[str] | None = None,
        metadata: MetadataInput = None,
        collection: str | None = None,
    ) -> list[str]:
        body = self._add_body(texts, ids, metadata, collection)
        return list((await self._send("POST", "/documents", json=body))["ids"])

    async def ingest(
        self, paths: str | Iterable[str], *, prune: bool = False, collection: str | None = None
    ) -> IngestReport:
        body = self._ingest_body(paths, prune, collection)
        job = await self._send("POST", "/ingest", json=body)
        while job["state"] in ("queued", "running"):
            await asyncio.sleep(JOB_POLL_S)
            job = await self._send("GET", f"/jobs/{job['id']}")
        return _job_report(job)

    async def get(self, id: str, *, collection: str | None = None) -> Record | None:
        response = await self._request("GET", f"/documents/{_quoted(id)}", params=self._params(collection))
        if response.status_code == 404:
            return None
        _raise_for(response)
        return record_from_json(response.json())

    async def delete(
        self, ids: str | Iterable[str] | None = None, *, where: WhereSpec = None, collection: str | None = None
    ) -> int:
        body = self._delete_body(ids, where, collection)
        return int((await self._send("POST", "/documents/delete", json=body))["deleted"])

    async def collections(self) -> dict[str, int]:
        return dict((await self._send("GET", "/collections"))["collections"])

    async def stats(self, *, collection: str | None = None) -> StoreStats:
        return stats_from_json(await self._send("GET", "/stats", params=self._params(collection)))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    """A server that cannot be reached (refused, timed out, gone mid-answer) is a one-line ServerError."""
    httpx = _httpx()
    try:
        yield
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise ServerError(f"cannot reach the memflow server at {url}: {reason}", status=0) from None


def _path_list(paths: str | Iterable[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else [str(p) for p in paths]


def _job_report(job: dict[str, Any]) -> IngestReport:
    if job["state"] != "done":
        raise MemflowError(f"the server's ingest job {job['id']} failed: {job['error']}")
    return report_from_json(job["report"])


def _quoted(id: str) -> str:
    from urllib.parse import quote

    return quote(id, safe="/")


class _EventStream:
    """The server's answer stream read line by line (``event:`` then ``data:``): each ``token`` event's text,
    then the ``answer`` event's Answer; an ``error`` event raises."""

    def __init__(self) -> None:
        self.event: str | None = None

    def feed(self, line: str) -> str | Answer | None:
        if line.startswith("event: "):
            self.event = line[len("event: ") :]
            return None
        if not line.startswith("data: "):
            return None
        data = json.loads(line[len("data: ") :])
        if self.event == "token":
            return str(data["text"])
        if self.event == "answer":
            return answer_from_json(data)
        if self.event == "error":
            raise MemflowError(f"the server failed while answering: {data['error']}")
        return None
