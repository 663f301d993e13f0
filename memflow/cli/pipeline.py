"""memflow pipeline validate / show, and memflow components."""

from __future__ import annotations

from pathlib import Path

import click

from memflow.cli.common import user_errors
from memflow.components.registry import available
from memflow.pipeline import Pipeline


@click.group()
def pipeline() -> None:
    """Check and inspect YAML pipelines."""


_file = click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
_trust = click.option("--trust", "trusted", multiple=True, metavar="MODULE",
                      help="Allow dotted-path types under MODULE.")


@pipeline.command()
@_file
@_trust
@user_errors
def validate(file: Path, trusted: tuple[str, ...]) -> None:
    """Check FILE: components, parameters, sockets, types and cycles, without running it."""
    loaded = Pipeline.from_yaml(file, trusted_modules=trusted)
    click.echo(f"{file}: ok ({len(loaded.components)} components, {loaded.graph.number_of_edges()} connections)")


@pipeline.command()
@_file
@_trust
@user_errors
def show(file: Path, trusted: tuple[str, ...]) -> None:
    """Print FILE's graph: components in run order and their connections."""
    click.echo(Pipeline.from_yaml(file, trusted_modules=trusted).show())


@click.command()
def components() -> None:
    """List the registered component types (the memflow.components entry-point group)."""
    for name, target in available().items():
        click.echo(f"{name:<32} {target}")
