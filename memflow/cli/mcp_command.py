"""memflow mcp: the memory as MCP tools for LLM agents, over stdio or streamable HTTP."""

from __future__ import annotations

from pathlib import Path

import click

from memflow.cli.common import (
    collection_option,
    configure_logging,
    open_memory,
    pipeline_option,
    store_options,
    user_errors,
)
from memflow.errors import MissingDependencyError


@click.command("mcp")
@click.option(
    "--http",
    "http",
    is_flag=True,
    help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (what desktop agents start).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (with --http).")
@click.option("--port", type=click.IntRange(1, 65535), default=8001, show_default=True, help="With --http.")
@click.option(
    "--token",
    envvar="MEMFLOW_TOKEN",
    default=None,
    help="Bearer token every HTTP request must carry (or MEMFLOW_TOKEN); needed off loopback.",
)
@pipeline_option("ask")
@pipeline_option("ingest", "--ingest-pipeline", dest="ingest_pipeline", help="The pipeline records are added with.")
@collection_option
@store_options
@user_errors
def mcp_command(
    http: bool,
    host: str,
    port: int,
    token: str | None,
    pipeline: Path | None,
    ingest_pipeline: Path | None,
    collection: str,
    store: Path,
    url: str | None,
    trusted: tuple[str, ...],
) -> None:
    """Serve the memory to LLM agents over MCP: tools search, ask, add, forget, summary, list_documents, stats.

    By default over stdio, for an agent that starts `memflow mcp --store DIR` itself; with --http, over
    streamable HTTP at /mcp (loopback only without --token)."""
    try:
        from memflow.server.mcp_server import build_mcp
        from memflow.server.security import BodyLimit, TokenGuard, check_exposure
        from memflow.server.warm import warm
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "mcp", extra="mcp", purpose="memflow mcp") from exc
    check_exposure(host if http else "127.0.0.1", token)  # stdio listens on nothing
    configure_logging(quiet=True)  # on stdio, stdout is the protocol's: nothing else may be written there
    memory = open_memory(
        store, url, trusted, collection=collection, ask_pipeline=pipeline, ingest_pipeline=ingest_pipeline
    )
    try:
        warm(memory)
        server = build_mcp(memory)
        if not http:
            server.run("stdio")
            return
        import uvicorn

        app = server.streamable_http_app(host=host)
        guarded = TokenGuard(app, token=token) if token else app
        guard = "bearer token required" if token else "no token: this machine only"
        click.echo(f"memflow: MCP for {store} on http://{host}:{port}/mcp ({guard})", err=True)
        uvicorn.run(BodyLimit(guarded, max_bytes=32 * 1024 * 1024), host=host, port=port, log_level="warning")
    finally:
        memory.close()
