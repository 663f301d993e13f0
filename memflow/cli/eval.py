"""memflow eval beir / squad / niah: retrieval and answer quality on public data sets."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from memflow.cli.common import configure_logging, echo_json, pipeline_option, user_errors, where_option
from memflow.filters import Where

F = TypeVar("F", bound=Callable[..., Any])


def eval_options(func: F) -> F:
    """What every eval shares: the pipelines, the cache, the database, output."""
    for option in reversed(
        [
            pipeline_option(
                "ask",
                dest="ask_pipeline",
                help="Ask pipeline to evaluate: a shipped one by name (memflow pipeline list) or a YAML "
                "file (default: ask).",
            ),
            pipeline_option(
                "ingest",
                "--ingest-pipeline",
                dest="ingest_pipeline",
                help="Ingest pipeline for the cached store: a shipped one by name or a YAML file (default: ingest).",
            ),
            click.option(
                "--cache",
                type=click.Path(file_okay=False, path_type=Path),
                envvar="MEMFLOW_EVAL_CACHE",
                help="Eval cache directory (or MEMFLOW_EVAL_CACHE; default ~/.cache/memflow-eval).",
            ),
            click.option("--db", "url", metavar="URL", help="SQLAlchemy URL for the cached store's SQL side."),
            click.option(
                "--trust",
                "trusted",
                multiple=True,
                metavar="MODULE",
                help="Allow pipeline types given as dotted paths under MODULE (repeatable).",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
            click.option("-q", "--quiet", is_flag=True, help="No progress bars."),
        ]
    ):
        func = option(func)
    return func


@click.group(name="eval")
def eval_group() -> None:
    """Measure retrieval and answers on BEIR, SQuAD and needle-in-a-haystack data (nothing downloads)."""


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    click.echo(title)
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")


def _progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@eval_group.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--split", default="test", show_default=True, help="qrels/<split>.tsv to score.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N judged queries.")
@click.option(
    "--chunks",
    default=200,
    show_default=True,
    help="Chunks retrieved per query (ranked into documents). A hybrid retriever fetches "
    "max(candidates, chunks) per side, so above its candidates (100 in the shipped pipelines) "
    "this also widens its pools beyond what a plain ask uses.",
)
@where_option
@eval_options
@user_errors
def beir(
    directory: Path,
    where: Where | None,
    split: str,
    limit: int | None,
    chunks: int,
    ask_pipeline: Path | None,
    ingest_pipeline: Path | None,
    cache: Path | None,
    url: str | None,
    trusted: tuple[str, ...],
    as_json: bool,
    quiet: bool,
) -> None:
    """nDCG@10, recall@10/100 and MRR@10 on a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)."""
    from memflow.evaluation.beir import evaluate_beir, load_beir, open_beir_memory

    configure_logging(quiet=True)
    data = load_beir(directory, split=split)
    started = time.perf_counter()
    with open_beir_memory(
        data,
        cache=cache,
        ingest_pipeline=ingest_pipeline,
        ask_pipeline=ask_pipeline,
        url=url,
        progress=_progress(quiet),
        trusted_modules=trusted,
    ) as memory:
        ready = time.perf_counter()
        report = evaluate_beir(memory, data, chunks=chunks, limit=limit, progress=_progress(quiet), where=where)
        store = str(memory.store.directory)
    done = time.perf_counter()
    result = {
        "dataset": data.name,
        "split": split,
        "queries": report.queries,
        **report.metrics,
        "pipeline": str(ask_pipeline or "builtin:ask"),
        "store": store,
        "seconds_store": round(ready - started, 1),
        "seconds_queries": round(done - ready, 1),
    }
    if as_json:
        echo_json(result)
        return
    print_table(
        f"BEIR {data.name} ({split}, {report.queries} queries) with {result['pipeline']}",
        [(k, f"{v:.4f}") for k, v in report.metrics.items()]
        + [("time", f"{result['seconds_store']} s store + {result['seconds_queries']} s queries")],
    )


@eval_group.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--limit", type=click.IntRange(min=1), help="Retrieval on N questions spread over the file.")
@click.option(
    "--ask",
    "ask_count",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Also run ask on N questions spread over the file.",
)
@click.option("--chunks", default=50, show_default=True, help="Chunks retrieved per question.")
@where_option
@eval_options
@user_errors
def squad(
    file: Path,
    where: Where | None,
    limit: int | None,
    ask_count: int,
    chunks: int,
    ask_pipeline: Path | None,
    ingest_pipeline: Path | None,
    cache: Path | None,
    url: str | None,
    trusted: tuple[str, ...],
    as_json: bool,
    quiet: bool,
) -> None:
    """Paragraph retrieval recall@1/5/10 and MRR@10 on a SQuAD v1.1 file; with --ask, reading quality."""
    from memflow.evaluation.squad import evaluate_squad_ask, evaluate_squad_retrieval, load_squad, open_squad_memory

    configure_logging(quiet=True)
    data = load_squad(file)
    started = time.perf_counter()
    with open_squad_memory(
        data,
        cache=cache,
        ingest_pipeline=ingest_pipeline,
        ask_pipeline=ask_pipeline,
        url=url,
        progress=_progress(quiet),
        trusted_modules=trusted,
    ) as memory:
        ready = time.perf_counter()
        report = evaluate_squad_retrieval(
            memory, data, limit=limit, chunks=chunks, progress=_progress(quiet), where=where
        )
        queried = time.perf_counter()
        reading = (
            evaluate_squad_ask(memory, data, limit=ask_count, progress=_progress(quiet), where=where)
            if ask_count
            else {}
        )
        store = str(memory.store.directory)
    result: dict[str, Any] = {
        "dataset": data.name,
        "paragraphs": len(data.paragraphs),
        "questions": report.queries,
        **report.metrics,
        "pipeline": str(ask_pipeline or "builtin:ask"),
        "store": store,
        "seconds_store": round(ready - started, 1),
        "seconds_queries": round(queried - ready, 1),
    }
    if reading:
        result["ask"] = reading
    if as_json:
        echo_json(result)
        return
    rows = [(k, f"{v:.4f}") for k, v in report.metrics.items()]
    rows.append(("time", f"{result['seconds_store']} s store + {result['seconds_queries']} s queries"))
    for key, value in reading.items():
        rows.append((f"ask {key}", f"{value:.4f}" if isinstance(value, float) else str(value)))
    print_table(
        f"SQuAD {data.name} ({len(data.paragraphs)} paragraphs, {report.queries} questions) with {result['pipeline']}",
        rows,
    )


@eval_group.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--lengths", default="1k,8k,64k,256k,1M", show_default=True, help="Haystack sizes in tokens.")
@click.option("--depths", default="0,25,50,75,100", show_default=True, help="Needle depths in percent.")
@click.option("-k", "k", type=click.IntRange(min=1), default=None, help="Chunks to retrieve (default: pipeline's).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Save the grid as a PNG heat map.")
@eval_options
@user_errors
def niah(
    directory: Path,
    lengths: str,
    depths: str,
    k: int | None,
    png: Path | None,
    ask_pipeline: Path | None,
    ingest_pipeline: Path | None,
    cache: Path | None,
    url: str | None,
    trusted: tuple[str, ...],
    as_json: bool,
    quiet: bool,
) -> None:
    """Needle in a haystack built from the text files in DIRECTORY: retrieval rank and answer per cell."""
    from memflow.errors import MemflowError
    from memflow.evaluation.niah import format_grid, parse_length, require_matplotlib, run_niah, save_heatmap

    configure_logging(quiet=True)
    if url:
        raise MemflowError("eval niah builds a fresh store per cell in a temporary folder; --db is not supported")
    try:
        depth_values = [int(d) for d in depths.split(",")]
    except ValueError:
        raise MemflowError(f"invalid --depths {depths!r} (use e.g. 0,25,50,75,100)") from None
    if any(not 0 <= d <= 100 for d in depth_values):
        raise MemflowError("depths are percentages from 0 to 100")
    if png is not None:
        require_matplotlib()  # before the run, not after it
    started = time.perf_counter()
    report = run_niah(
        directory,
        lengths=[parse_length(x) for x in lengths.split(",")],
        depths=depth_values,
        ask_pipeline=ask_pipeline,
        ingest_pipeline=ingest_pipeline,
        cache=cache,
        k=k,
        progress=_progress(quiet),
        trusted_modules=trusted,
    )
    seconds = round(time.perf_counter() - started, 1)
    if png is not None:
        save_heatmap(report, png)
    if as_json:
        echo_json(
            {
                "needle": report.needle,
                "question": report.question,
                "pipeline": str(ask_pipeline or "builtin:ask"),
                **report.summary(),
                "seconds": seconds,
                "grid": report.cells,
            }
        )
        return
    click.echo(f"needle in a haystack with {ask_pipeline or 'builtin:ask'}: {report.question!r}")
    click.echo(format_grid(report))
    summary = report.summary()
    click.echo(
        f"rank 1 in {summary['rank1']:.0%} of {summary['cells']} cells, answer contains and cites the "
        f"needle in {summary['answer_cites']:.0%}; {seconds} s" + (f"; heat map: {png}" if png else "")
    )
