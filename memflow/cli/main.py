"""The memflow command line: `memflow --help`."""

from __future__ import annotations

import click

from memflow import __version__
from memflow.cli.eval import eval_group
from memflow.cli.info import collections, stats, summary
from memflow.cli.ingest import doctor, forget, ingest
from memflow.cli.mcp_command import mcp_command
from memflow.cli.pipeline import components, pipeline
from memflow.cli.query import ask, search
from memflow.cli.records import add, get, list_documents
from memflow.cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="memflow")
@click.option("--debug", is_flag=True, help="Print the traceback behind a user error (or MEMFLOW_DEBUG=1).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """memflow: a memory far larger than any context window.

    Exit status: 0 success, 1 a user error (one line on stderr), 2 a usage error.
    """
    ctx.obj = {"debug": debug}


for command in (
    ingest,
    add,
    list_documents,
    get,
    forget,
    doctor,
    ask,
    search,
    summary,
    stats,
    collections,
    pipeline,
    components,
    serve,
    mcp_command,
):
    cli.add_command(command)
cli.add_command(eval_group)  # memflow eval beir/squad/niah (memflow.cli.eval)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
