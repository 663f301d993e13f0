"""memflow ask / search."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from memflow.cli.common import (
    collection_option,
    configure_logging,
    display_path,
    echo_json,
    echo_timings,
    open_memory,
    pipeline_option,
    store_options,
    user_errors,
    verbose_option,
    where_option,
)
from memflow.filters import Where

if TYPE_CHECKING:
    from memflow.client import Client
    from memflow.types import Answer, Citation

ask_pipeline_option = pipeline_option("ask")
server_option = click.option(
    "--server",
    "server",
    envvar="MEMFLOW_SERVER",
    metavar="URL",
    default=None,
    help="Ask a running `memflow serve` at URL (or MEMFLOW_SERVER; its token from MEMFLOW_TOKEN) instead of "
    "opening the store here: no model loads in this process.",
)


def _client(server: str, *, pipeline: Path | None, decoder: str | None = None) -> Client:
    """The served memory at ``server``, for a command whose local-only options are not given."""
    if pipeline is not None:
        raise click.UsageError("--pipeline picks a pipeline here; a server runs its own (memflow serve --offer)")
    if decoder is not None:
        raise click.UsageError("--decoder picks a decoder here; a server answers with its own pipeline's")
    from memflow.client import Client

    return Client(server, token=os.environ.get("MEMFLOW_TOKEN") or None)


def _cite(citation: Citation) -> str:
    return (
        f"{display_path(citation.document)}  chunk {citation.chunk_ordinal} (id {citation.chunk_id})  "
        f"chars {citation.start}-{citation.end}"
    )


@click.command()
@click.argument("question")
@click.option("-k", "k", type=click.IntRange(min=1), default=None, help="Chunks to retrieve (default: pipeline's).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
@click.option("--explain", is_flag=True, help="Also print the attended evidence with its weights.")
@click.option(
    "--decoder",
    "decoder",
    metavar="NAME",
    default=None,
    help="Answer with another registered decoder, e.g. llama_cpp, transformers, openai (default: the pipeline's).",
)
@click.option("--stream", is_flag=True, help="Print the answer as the decoder writes it.")
@server_option
@verbose_option
@where_option
@ask_pipeline_option
@collection_option
@store_options
@user_errors
def ask(
    question: str,
    k: int | None,
    as_json: bool,
    explain: bool,
    decoder: str | None,
    stream: bool,
    server: str | None,
    verbose: bool,
    where: Where | None,
    pipeline: Path | None,
    collection: str,
    store: Path,
    url: str | None,
    trusted: tuple[str, ...],
) -> None:
    """Answer QUESTION from the memory, with citations."""
    configure_logging(quiet=True)
    if server is not None:
        with _client(server, pipeline=pipeline, decoder=decoder) as client:
            if stream and not as_json:
                _print_stream(client.stream(question, k=k, where=where, collection=collection), explain=explain)
                return
            answer = client.ask(question, k=k, where=where, collection=collection)
    else:
        with open_memory(store, url, trusted, documents=True, ask_pipeline=pipeline, collection=collection) as memory:
            if stream and not as_json:
                _print_stream(memory.stream(question, k=k, decoder=decoder, where=where), explain=explain)
                if verbose:
                    echo_timings(memory.last_timings)
                return
            answer = memory.ask(question, k=k, decoder=decoder, where=where)
        if verbose:
            echo_timings(memory.last_timings)
    if as_json:
        echo_json(answer)
        return
    _print_answer(answer, explain=explain)


def _print_stream(pieces: Iterable[str | Answer], *, explain: bool) -> None:
    """The answer's text as it comes, then its citations (and evidence) once the whole Answer is in."""
    for piece in pieces:
        if isinstance(piece, str):
            click.echo(piece, nl=False)
            continue
        click.echo()
        _print_answer(piece, explain=explain, streamed=True)


def _print_answer(answer: Answer, *, explain: bool, streamed: bool = False) -> None:
    if not answer.text:
        click.echo(
            "No answer: the memory holds nothing relevant (is the store empty?)"
            if not answer.generated
            else "No answer."
        )
        for note in answer.notes:
            click.echo(f"Note: {note}")
        return
    if not streamed:
        click.echo(answer.text)
    if answer.citations:
        click.echo("\nCitations:")
    weights = {(e.citation.chunk_id, e.citation.start): e.weight for e in answer.evidence}
    labels = answer.labels if answer.generated else range(1, len(answer.citations) + 1)
    for n, citation in zip(labels, answer.citations, strict=True):
        weight = weights.get((citation.chunk_id, citation.start), 0.0)
        click.echo(f"  [{n}] {_cite(citation)}  weight {weight:.3f}")
    for note in answer.notes:
        click.echo(f"Note: {note}")
    if explain:
        click.echo("\nEvidence attended (final weight, per-hop weights):")
        for i, evidence in enumerate(answer.evidence[:15]):
            hops = ", ".join(f"{hop[i]:.3f}" for hop in answer.attention)
            text = evidence.text if len(evidence.text) < 160 else evidence.text[:157] + "..."
            click.echo(f"  {evidence.weight:.3f} [{hops}] ({evidence.origin}) {text}")
            click.echo(f"        {_cite(evidence.citation)}")


@click.command()
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON (each with its per-stage scores).")
@click.option(
    "--explain", is_flag=True, help="Also print each hit's score at every stage (dense, lexical, fused, reranked)."
)
@server_option
@verbose_option
@where_option
@ask_pipeline_option
@collection_option
@store_options
@user_errors
def search(
    query: str,
    k: int,
    as_json: bool,
    explain: bool,
    server: str | None,
    verbose: bool,
    where: Where | None,
    pipeline: Path | None,
    collection: str,
    store: Path,
    url: str | None,
    trusted: tuple[str, ...],
) -> None:
    """The K best chunks for QUERY, best first: the ranking `memflow ask` answers from (reranked, duplicates
    collapsed, as the pipeline does)."""
    configure_logging(quiet=True)
    if server is not None:
        with _client(server, pipeline=pipeline) as client:
            hits = client.search(query, k=k, where=where, collection=collection)
    else:
        with open_memory(store, url, trusted, documents=True, ask_pipeline=pipeline, collection=collection) as memory:
            hits = memory.search(query, k=k, where=where)
        if verbose:
            echo_timings(memory.last_timings)
    if as_json:
        echo_json(hits)
        return
    for hit in hits:
        preview = " ".join(hit.text.split())
        preview = preview if len(preview) < 200 else preview[:197] + "..."
        click.echo(
            f"{hit.rank:>3}. {hit.score:.3f}  {display_path(hit.document)}  chunk {hit.ordinal}  "
            f"chars {hit.start}-{hit.end}\n     {preview}"
        )
        if explain:
            stages = "  ".join(f"{stage} {score:.3f}" for stage, score in hit.scores.items())
            click.echo(f"     scores: {stages}")
