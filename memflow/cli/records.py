"""memflow add / list / get: records an application keeps by id, with metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from memflow.cli.common import (
    collection_option,
    configure_logging,
    display_path,
    echo_json,
    format_problem,
    open_memory,
    open_store,
    pipeline_option,
    store_options,
    user_errors,
    where_option,
)
from memflow.errors import MemflowError
from memflow.filters import Where, cli_value

if TYPE_CHECKING:
    from memflow.records import RecordInput


def parse_meta(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--meta KEY=VALUE`` options as a dict; VALUE is read as filters read it (3, 2.5, true, null are JSON)."""
    metadata: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--meta")
        metadata[key.strip()] = cli_value(value)
    return metadata


def _inputs(texts: tuple[str, ...], jsonl: TextIO | None) -> tuple[list[RecordInput], str]:
    """What to add and where it came from: JSONL records, TEXT arguments, or all of stdin as one text."""
    from memflow.records import records_from_jsonl

    if jsonl is not None:
        if texts:
            raise click.UsageError("give TEXT arguments or --jsonl, not both")
        source = "<stdin>" if jsonl is sys.stdin or jsonl.name == "<stdin>" else jsonl.name
        return list(records_from_jsonl(jsonl, source=source)), source
    if texts:
        return list(texts), "arguments"
    if sys.stdin.isatty():
        raise click.UsageError("give TEXT, pipe a text on stdin, or --jsonl FILE")
    return [sys.stdin.read().rstrip("\n")], "<stdin>"


@click.command()
@click.argument("texts", nargs=-1)
@click.option("--id", "ids", multiple=True, metavar="ID", help="The id of each TEXT (or of stdin's text), in order.")
@click.option(
    "--meta",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata for every record added (repeatable); 3, 2.5, true and null are JSON, anything else text.",
)
@click.option(
    "--jsonl",
    type=click.File("r", encoding="utf-8"),
    metavar="FILE",
    help='Records to add, one JSON object a line: {"id", "text", "title", "metadata"} (- for stdin).',
)
@pipeline_option("ingest")
@click.option("--json", "as_json", is_flag=True, help="Print ids and counts as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the ids.")
@collection_option
@store_options
@user_errors
def add(
    texts: tuple[str, ...],
    ids: tuple[str, ...],
    meta: tuple[str, ...],
    jsonl: TextIO | None,
    pipeline: Path | None,
    as_json: bool,
    quiet: bool,
    collection: str,
    store: Path,
    url: str | None,
    trusted: tuple[str, ...],
) -> None:
    """Add texts as records: TEXT arguments, a text piped on stdin, or --jsonl records.

    Prints each record's id, one a line. An id given again with other text or metadata replaces that
    record; an unchanged one is skipped. Without --id, an id is a digest of the text and metadata.
    """
    configure_logging(quiet)
    if ids and jsonl is not None:
        raise click.UsageError("--id is for TEXT or stdin; JSONL records carry their own id")
    from memflow.ingest import add_documents
    from memflow.records import record_documents

    items, source = _inputs(texts, jsonl)
    metadata = parse_meta(meta)
    documents = record_documents(items, ids=list(ids) or None, metadata=metadata or None)
    with open_memory(store, url, trusted, ingest_pipeline=pipeline, collection=collection) as memory:
        report = add_documents(
            memory.store,
            memory.pipeline("ingest"),
            documents,
            progress=not quiet and not as_json and sys.stderr.isatty() and len(documents) > 1,
            lock_timeout=memory.lock_timeout,
            collection=collection,
        )
    record_ids = [d.uri for d in documents]
    if as_json:
        echo_json(
            {
                "ids": record_ids,
                "added": report.ingested,
                "unchanged": report.unchanged,
                "chunks": report.chunks,
                "tokens": report.tokens,
                "seconds": round(report.seconds, 3),
                "problems": [{"path": p.path, "reason": p.reason, "kind": p.kind} for p in report.problems],
            }
        )
    else:
        for record_id in record_ids:
            click.echo(record_id)
    # The records are stored; a problem is about the store (its vector file could not be saved): say so,
    # and exit 1 so that a script notices.
    for problem in report.problems:
        click.echo(format_problem(problem), err=True)
    if report.problems:
        sys.exit(1)
    if as_json:
        return
    if not quiet:
        added = len(report.ingested)
        click.echo(
            f"added {added} record{'s' if added != 1 else ''} ({report.chunks} chunks) from {source}, "
            f"skipped {len(report.unchanged)} unchanged in {report.seconds:.1f} s",
            err=True,
        )


@click.command("list")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Print the first N documents only.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of {id, title, chunks, metadata}.")
@where_option
@collection_option
@store_options
@user_errors
def list_documents(
    limit: int | None,
    as_json: bool,
    where: Where | None,
    collection: str,
    store: Path,
    url: str | None,
    trusted: tuple[str, ...],
) -> None:
    """List stored documents and records: id, chunk count, title and metadata, oldest first."""
    from memflow.records import checked_collection

    with open_store(store, url) as opened:
        name = checked_collection(collection)
        shown = opened.documents(collection=name, where=where, limit=limit)
        total = opened.count_documents(collection=name, where=where) if limit is not None else len(shown)
    if as_json:
        echo_json([{"id": d.uri, "title": d.title, "chunks": d.chunk_count, "metadata": d.metadata} for d in shown])
        return
    for document in shown:
        title = f"  {document.title}" if document.title else ""
        metadata = f"  {json.dumps(document.metadata, ensure_ascii=False)}" if document.metadata else ""
        plural = "s" if document.chunk_count != 1 else ""
        click.echo(f"{display_path(document.uri)}  ({document.chunk_count} chunk{plural}){title}{metadata}")
    if total > len(shown):
        click.echo(f"... {total - len(shown)} more (of {total})", err=True)


@click.command()
@click.argument("id")
@click.option("--json", "as_json", is_flag=True, help="The record as JSON: id, title, chunks, metadata, text.")
@collection_option
@store_options
@user_errors
def get(id: str, as_json: bool, collection: str, store: Path, url: str | None, trusted: tuple[str, ...]) -> None:
    """Print the text of the record stored under ID (or of a document, by path or file name)."""
    from memflow.records import Record, checked_collection

    with open_store(store, url) as opened:
        name = checked_collection(collection)
        # the record stored under exactly ID, else a file's document by path or file name
        found = opened.document(id, collection=name) or opened.find_document(id, collection=name)
        record = (
            Record(found.uri, opened.document_text(found.id), found.title, found.metadata, found.chunk_count, name)
            if found is not None
            else None
        )
    if record is None:
        raise MemflowError(f"no record {id!r} in store {store} (memflow list shows the ids)")
    if as_json:
        echo_json(record)
        return
    click.echo(record.text)
