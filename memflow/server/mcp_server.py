"""``memflow mcp``: the memory as tools an LLM agent calls, on the official MCP Python SDK (the ``mcp`` extra),
over stdio (desktop agents start it as a subprocess) or streamable HTTP (behind the same bearer token and
body limit as ``memflow serve``), on its own port (``memflow mcp --http``) or beside the HTTP API at /mcp
(``memflow serve --mcp``).

Tools: search, ask, add, forget, summary, list_documents, stats. Each takes JSON arguments checked against
its schema (bounds included) and returns structured JSON; every passage carries its citation (document,
character span, chunk id) so an agent can quote its source. The tools run on the server's one warm
:class:`~memflow.Memory` in worker threads; a memflow error comes back as a tool error with its one-line
message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from starlette.types import ASGIApp, Receive, Scope, Send

from memflow.errors import MemflowError
from memflow.memory import Memory
from memflow.server.warm import has_vectors
from memflow.storage.store import StoredDocument
from memflow.types import Hit

__all__ = ["build_mcp", "INSTRUCTIONS", "MCP_PATH", "WithMcp"]

INSTRUCTIONS = (
    "memflow is a long-term memory over documents and records. Call search (or ask) before answering from "
    "what the user stored, and cite each passage you use by its document and character span. Call add to "
    "remember what the user asks you to keep (with metadata such as a user or topic, to filter by later), "
    'and forget to remove it. where-filters match metadata: {"user": "alice"}, '
    '{"date": {"$gte": "2024-01-01"}}; operators $eq $ne $in $nin $gt $gte $lt $lte $and $or.'
)

Where = Annotated[
    dict[str, Any] | None,
    Field(description='A metadata filter, e.g. {"user": "alice"} or {"year": {"$gte": 2020}}; null: none.'),
]
Collection = Annotated[
    str | None, Field(description="The collection to work in (null: the server's default).", max_length=128)
]


T = TypeVar("T")


async def _in_thread(work: Callable[[], T]) -> T:
    """``work`` on a worker thread; a memflow error becomes a tool error the agent reads (its one line)."""
    try:
        return await anyio.to_thread.run_sync(work)
    except MemflowError as exc:
        raise ToolError(str(exc)) from None


def _citation(hit: Hit) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        "score": round(hit.score, 4),
        "document": hit.document,
        "title": hit.title,
        "chunk_id": hit.chunk_id,
        "start": hit.start,
        "end": hit.end,
        "text": hit.text,
        "metadata": dict(hit.metadata),
        "collection": hit.collection,
    }


def build_mcp(memory: Memory, *, name: str = "memflow") -> MCPServer:
    """The MCP server whose tools work on ``memory``."""
    from memflow import __version__

    server = MCPServer(name, instructions=INSTRUCTIONS, version=__version__)

    @server.tool()
    async def search(
        query: Annotated[str, Field(min_length=1, max_length=10_000, description="What to look for.")],
        k: Annotated[int, Field(ge=1, le=100, description="How many passages.")] = 5,
        where: Where = None,
        collection: Collection = None,
    ) -> dict[str, Any]:
        """Search the memory: the k stored passages most relevant to the query, best first, each with its
        document, title, character span (start, end), chunk id and metadata to cite."""

        def run() -> list[Hit]:
            return memory.search(query, k=k, where=where, collection=collection) if has_vectors(memory) else []

        return {"hits": [_citation(h) for h in await _in_thread(run)]}

    @server.tool()
    async def ask(
        question: Annotated[str, Field(min_length=1, max_length=10_000)],
        k: Annotated[int | None, Field(ge=1, le=100, description="Passages to read (null: default).")] = None,
        where: Where = None,
        collection: Collection = None,
    ) -> dict[str, Any]:
        """Answer a question from the memory: an answer made of the memory's own sentences, with the
        citations (document, character span) it rests on and notes on what it could not find."""
        if not has_vectors(memory):
            return {"answer": "", "citations": [], "notes": ["the memory is empty: add something first"]}
        answer = await _in_thread(lambda: memory.ask(question, k=k, where=where, collection=collection))
        return {
            "answer": answer.text,
            "citations": [
                {"document": c.document, "title": c.title, "chunk_id": c.chunk_id, "start": c.start, "end": c.end}
                for c in answer.citations
            ],
            "notes": list(answer.notes),
        }

    @server.tool()
    async def add(
        texts: Annotated[list[str], Field(min_length=1, max_length=1000, description="The texts to remember.")],
        ids: Annotated[
            list[str] | None,
            Field(description="One id per text; a stored id is replaced (null: an id from the content)."),
        ] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description='Metadata for every text, e.g. {"user": "alice"}.')
        ] = None,
        collection: Collection = None,
    ) -> dict[str, Any]:
        """Remember texts (notes, facts, messages) as records with metadata; returns their ids. Adding an
        id again with other text replaces the record."""
        stored = await _in_thread(lambda: memory.add(texts, ids=ids, metadata=metadata, collection=collection))
        return {"ids": stored}

    @server.tool()
    async def forget(
        ids: Annotated[list[str] | None, Field(description="Ids of the records to remove.")] = None,
        where: Where = None,
        collection: Collection = None,
    ) -> dict[str, Any]:
        """Remove records completely: those with these ids and those the where-filter matches. Returns
        how many were removed."""
        return {"deleted": await _in_thread(lambda: memory.delete(ids, where=where, collection=collection))}

    @server.tool()
    async def summary(
        document: Annotated[str, Field(min_length=1, description="A document's id, path, file name or title.")],
        collection: Collection = None,
    ) -> dict[str, Any]:
        """A document's running summary: the sentences that best represent it, with their spans."""
        state = await _in_thread(lambda: memory.summary(document, collection=collection))
        return {
            "document": state.document,
            "chunks_seen": state.chunks_seen,
            "sentences": [{"text": s.text, "start": s.start, "end": s.end} for s in state.slots],
        }

    @server.tool()
    async def list_documents(
        where: Where = None,
        collection: Collection = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> dict[str, Any]:
        """The stored documents and records (oldest first): id, title, metadata, chunk count; a page of
        ``limit`` from ``offset``, and the total."""

        def run() -> tuple[list[StoredDocument], int]:
            page = memory.documents(collection=collection, where=where, limit=limit, offset=offset)
            return page, memory.count(collection=collection, where=where)

        page, total = await _in_thread(run)
        return {
            "documents": [
                {"id": d.uri, "title": d.title, "metadata": d.metadata, "chunks": d.chunk_count} for d in page
            ],
            "total": total,
        }

    @server.tool()
    async def stats(collection: Collection = None) -> dict[str, Any]:
        """How much the memory holds: documents, chunks and tokens (of the collection), vectors, encoder."""
        found = await _in_thread(lambda: memory.stats(collection=collection))
        return {
            "documents": found.documents,
            "chunks": found.chunks,
            "tokens": found.tokens,
            "vectors": found.vectors,
            "encoder": found.encoder,
            "collections": memory.collections(),
        }

    return server


MCP_PATH = "/mcp"


class WithMcp:
    """An ASGI app that serves MCP's streamable HTTP at :data:`MCP_PATH` and everything else from ``app``:
    ``memflow serve --mcp``, one process and port for the HTTP API and for agents. The lifespan goes to the
    MCP app, whose session manager lives as long as the server (the HTTP API needs none)."""

    def __init__(self, app: ASGIApp, memory: Memory, *, host: str) -> None:
        self.app = app
        # host: what the SDK's DNS-rebinding guard allows (loopback names when serving on loopback)
        self.mcp = build_mcp(memory).streamable_http_app(streamable_http_path=MCP_PATH, host=host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for_mcp = scope["type"] == "lifespan" or (scope["type"] == "http" and scope["path"].rstrip("/") == MCP_PATH)
        await (self.mcp if for_mcp else self.app)(scope, receive, send)
