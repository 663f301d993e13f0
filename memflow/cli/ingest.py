"""memflow ingest / forget."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from memflow.cli.common import (
    collection_option,
    configure_logging,
    display_path,
    echo_json,
    echo_timings,
    format_problem,
    open_memory,
    pipeline_option,
    store_options,
    user_errors,
    verbose_option,
)
from memflow.engines import ENGINES
from memflow.errors import StoreError


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pipeline_option("ingest")
@click.option("--batch-files", default=16, show_default=True, help="Files per transaction.")
@click.option(
    "--save-every",
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest time between saves of the vector file (0: after every batch).",
)
@click.option("--prune", is_flag=True, help="Forget stored documents under PATHS whose files are gone.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no per-file warnings.")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="Where loading, chunking and encoding run: this process, or Ray Data (pip install "
    "'memflow[ray]'); the store is written here either way, with the same result.",
)
@click.option(
    "--address",
    metavar="ADDR",
    help="Ray cluster to run on (--engine ray; default: a running one, else a local instance).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the ingest report as JSON.")
@verbose_option
@collection_option
@store_options
@user_errors
def ingest(
    paths: tuple[Path, ...],
    pipeline: Path | None,
    batch_files: int,
    save_every: float,
    prune: bool,
    quiet: bool,
    engine: str,
    address: str | None,
    as_json: bool,
    verbose: bool,
    collection: str,
    store: Path,
    url: str | None,
    trusted: tuple[str, ...],
) -> None:
    """Ingest files and folders (.txt .md .html .pdf .jsonl); unchanged files are skipped."""
    if address is not None and engine != "ray":
        raise click.UsageError("--address needs --engine ray")
    configure_logging(quiet)
    with open_memory(store, url, trusted, ingest_pipeline=pipeline, collection=collection) as memory:
        progress = not quiet and not as_json and sys.stderr.isatty()
        for message in memory.store.migrations:
            click.echo(message, err=True)
        try:
            report = memory.ingest(
                [str(p) for p in paths],
                progress=progress,
                batch_files=batch_files,
                prune=prune,
                save_every=save_every,
                engine="ray" if engine == "ray" else "local",
                ray_address=address,
            )
        except StoreError as exc:
            if as_json and exc.report is not None:  # what was committed before the fault, and the fault
                from memflow.serialize import to_jsonable

                echo_json(to_jsonable(exc.report) | {"error": str(exc)})
            raise
    if verbose:
        echo_timings(report.stages)
    if as_json:
        echo_json(report)
    else:
        for problem in report.problems:
            if problem.kind == "failed" or not quiet:
                click.echo(format_problem(problem), err=True)
        for uri in report.pruned:
            click.echo(f"pruned: {display_path(uri)}", err=True)
        click.echo(report.summary())
    if not report.ingested and not report.unchanged and report.failed:
        sys.exit(1)


@click.command()
@click.argument("documents", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print {forgot: N} as JSON.")
@collection_option
@store_options
@user_errors
def forget(
    documents: tuple[str, ...], as_json: bool, collection: str, store: Path, url: str | None, trusted: tuple[str, ...]
) -> None:
    """Remove documents and records (by id, path, URI or file name) with their chunks, vectors and summary states."""
    with open_memory(store, url, trusted, existing=True, collection=collection) as memory:
        count = memory.forget(documents)
    if as_json:
        echo_json({"forgot": count})
        return
    click.echo(f"forgot {count} documents")


@click.command()
@click.option("--repair", is_flag=True, help="Rebuild the vector memory from SQL and fix recorded counts.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@pipeline_option(
    "ask", help="Ask pipeline whose encoder the store must match: a shipped one by name or a YAML file (default: ask)."
)
@store_options
@user_errors
def doctor(
    repair: bool, as_json: bool, pipeline: Path | None, store: Path, url: str | None, trusted: tuple[str, ...]
) -> None:
    """Check the store: schema, encoder, SQL <-> FAISS, chunk spans and order, summary states."""
    configure_logging(quiet=True)
    with open_memory(store, url, trusted, existing=True, ask_pipeline=pipeline) as memory:
        report = memory.doctor(repair=repair)
    if as_json:
        echo_json({"ok": report.ok, "checks": report.checks})
    else:
        for check in report.checks:
            click.echo(str(check))
    if not report.ok:
        sys.exit(1)
