"""memflow summary / stats."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from memflow.cli.common import (
    collection_option,
    display_path,
    echo_json,
    open_memory,
    open_store,
    store_options,
    user_errors,
)


@click.command()
@click.argument("document")
@click.option("--json", "as_json", is_flag=True)
@collection_option
@store_options
@user_errors
def summary(
    document: str, as_json: bool, collection: str, store: Path, url: str | None, trusted: tuple[str, ...]
) -> None:
    """Print DOCUMENT's summary state (by path, URI, file name or title)."""
    from memflow.serialize import summary_json

    with open_memory(store, url, trusted, existing=True, collection=collection) as memory:
        state = memory.summary(document)
        found = memory.store.find_document(state.document, collection=collection)
        written = memory.store.written_summaries([found.id]).get(found.id) if found is not None else None
    if as_json:
        echo_json(summary_json(state, written))
        return
    click.echo(
        f"{display_path(state.document)}: {len(state.slots)} of {state.capacity} slots after "
        f"{state.chunks_seen} chunks, {state.sentences_seen} sentences"
    )
    for slot in state.slots:
        click.echo(f"  [{slot.start}-{slot.end}] (chunk {slot.chunk_ordinal}, centrality {slot.score:.3f}) {slot.text}")
    if written is not None:
        click.echo(
            f"written summary ({written.model}, {written.tokens} of {written.budget} tokens, after "
            f"{written.chunks_seen} chunks, chars 0-{written.read_until}):"
        )
        click.echo(f"  {written.text}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@collection_option
@store_options
@user_errors
def stats(as_json: bool, collection: str, store: Path, url: str | None, trusted: tuple[str, ...]) -> None:
    """Counts and settings of the store."""
    from memflow.records import checked_collection

    with open_store(store, url) as opened:
        result = opened.stats(collection=checked_collection(collection))
    if as_json:
        echo_json(result)
        return
    for key, value in asdict(result).items():
        click.echo(f"{key:>10}: {value}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@store_options
@user_errors
def collections(as_json: bool, store: Path, url: str | None, trusted: tuple[str, ...]) -> None:
    """The store's collections, each with how many documents it holds."""
    with open_store(store, url) as opened:
        found = opened.collections()
    if as_json:
        echo_json(found)
        return
    for name, count in found.items():
        click.echo(f"{name}  ({count} document{'s' if count != 1 else ''})")
