"""memflow pipeline list / validate / show, and memflow components."""

from __future__ import annotations

from pathlib import Path

import click

from memflow.cli.common import echo_json, user_errors
from memflow.errors import MemflowError
from memflow.pipeline.shipped import resolve_pipeline, shipped_pipelines


@click.group()
def pipeline() -> None:
    """Check and inspect YAML pipelines."""


def _resolve(ctx: click.Context, param: click.Parameter, value: str) -> Path:
    try:
        return resolve_pipeline(value)
    except MemflowError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


_file = click.argument("file", metavar="NAME|FILE", callback=_resolve)
_trust = click.option(
    "--trust", "trusted", multiple=True, metavar="MODULE", help="Allow dotted-path types under MODULE."
)


@pipeline.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of {name, role, file, description}.")
@user_errors
def list_pipelines(as_json: bool) -> None:
    """Print the shipped pipelines: the name --pipeline takes, the file, and what each does."""
    if as_json:
        echo_json(
            [
                {"name": p.short_name, "role": p.role, "file": f"{p.stem}.yaml", "description": p.description}
                for p in shipped_pipelines()
            ]
        )
        return
    commands = {"ingest": "memflow ingest", "ask": "memflow ask / search / eval"}
    for role, command in commands.items():
        click.echo(f"{role} pipelines ({command} --pipeline NAME):")
        for shipped in shipped_pipelines():
            if shipped.role == role:
                file = f"{shipped.stem}.yaml"
                click.echo(f"  {shipped.short_name:<14} {file:<23} {shipped.description}")


@pipeline.command()
@_file
@_trust
@user_errors
def validate(file: Path, trusted: tuple[str, ...]) -> None:
    """Check a pipeline (a shipped one's stem, e.g. ask-dense, or a YAML file): components, parameters,
    sockets, types and cycles, without running it."""
    from memflow.pipeline.pipeline import Pipeline

    loaded = Pipeline.from_yaml(file, trusted_modules=trusted)
    click.echo(f"{file}: ok ({len(loaded.components)} components, {loaded.graph.number_of_edges()} connections)")


@pipeline.command()
@_file
@_trust
@user_errors
def show(file: Path, trusted: tuple[str, ...]) -> None:
    """Print a pipeline's graph (a shipped one's stem or a YAML file): components in run order and their connections."""
    from memflow.pipeline.pipeline import Pipeline

    click.echo(Pipeline.from_yaml(file, trusted_modules=trusted).show())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object of type -> implementation.")
def components(as_json: bool) -> None:
    """List the registered component types (the memflow.components entry-point group)."""
    from memflow.components.registry import available

    if as_json:
        echo_json(dict(available()))
        return
    for name, target in available().items():
        click.echo(f"{name:<32} {target}")
