"""memflow serve: the memory over HTTP (FastAPI on uvicorn), warm from the first request."""

from __future__ import annotations

import sys
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
from memflow.errors import MemflowError, MissingDependencyError
from memflow.pipeline.shipped import looks_like_path, resolve_pipeline


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--token",
    envvar="MEMFLOW_TOKEN",
    default=None,
    help="Bearer token every request but /healthz must carry (or MEMFLOW_TOKEN); needed off loopback.",
)
@click.option(
    "--ingest-root",
    "ingest_roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, resolve_path=True, path_type=Path),
    metavar="DIR",
    help="A server-side directory POST /ingest may read under (repeatable; none: no server-side paths).",
)
@click.option(
    "--max-body",
    "max_body",
    type=click.IntRange(min=1024),
    default=32 * 1024 * 1024,
    show_default=True,
    metavar="BYTES",
    help="The largest request body accepted (413 beyond).",
)
@click.option(
    "--mcp",
    "with_mcp",
    is_flag=True,
    help="Serve MCP (streamable HTTP) for LLM agents at /mcp too, behind the same token (pip install 'memflow[mcp]').",
)
@pipeline_option("ask")
@click.option(
    "--offer",
    "offered",
    multiple=True,
    metavar="NAME|FILE",
    help='Another ask pipeline a request may choose by name ("pipeline": "dense"); repeatable.',
)
@pipeline_option("ingest", "--ingest-pipeline", dest="ingest_pipeline", help="The pipeline records are added with.")
@collection_option
@store_options
@user_errors
def serve(
    host: str,
    port: int,
    token: str | None,
    ingest_roots: tuple[Path, ...],
    max_body: int,
    with_mcp: bool,
    pipeline: Path | None,
    offered: tuple[str, ...],
    ingest_pipeline: Path | None,
    collection: str,
    store: Path,
    url: str | None,
    trusted: tuple[str, ...],
) -> None:
    """Serve the memory over HTTP: POST /search, /ask, /documents; GET /documents, /stats; docs at /docs.

    Loads the encoder and pipelines before it listens, so the first request is as fast as the hundredth.
    Without --token it listens on loopback only."""
    try:
        import uvicorn

        from memflow.server.app import ServerSettings, create_app
        from memflow.server.security import check_exposure
        from memflow.server.warm import warm
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "fastapi", extra="server", purpose="memflow serve") from exc
    if with_mcp:
        try:
            import memflow.server.mcp_server  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(exc.name or "mcp", extra="mcp", purpose="memflow serve --mcp") from exc
    check_exposure(host, token)
    pipelines = {}
    for spec in offered:
        try:
            pipelines[Path(spec).stem if looks_like_path(spec) else spec] = resolve_pipeline(spec, role="ask")
        except MemflowError as exc:
            raise click.BadParameter(str(exc), param_hint="--offer") from None
    configure_logging(quiet=False)
    memory = open_memory(
        store, url, trusted, collection=collection, ask_pipeline=pipeline, ingest_pipeline=ingest_pipeline
    )
    try:
        settings = ServerSettings(
            token=token,
            max_body_bytes=max_body,
            ingest_roots=ingest_roots,
            pipelines=pipelines,
            mcp=with_mcp,
            host=host,
        )
        warm(memory, settings.pipelines.values())
        app = create_app(memory, settings)
        guard = "bearer token required" if token else "no token: this machine only"
        also = "; MCP at /mcp" if with_mcp else ""
        click.echo(f"memflow: serving {store} on http://{host}:{port} ({guard}); API docs at /docs{also}", err=True)
        sys.stderr.flush()
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        memory.close()
