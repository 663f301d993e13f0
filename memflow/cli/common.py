"""What every command shares: store options, opening a Memory, and printing errors as one line.

Only light modules are imported here at module level: ``memflow --help`` and the commands that only read the
SQL store (stats, list, get, collections, pipeline) never load torch, the encoder or the pipeline graph."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from memflow.defaults import DB_FILE, DEFAULT_COLLECTION, DEFAULT_STORE
from memflow.errors import MemflowError
from memflow.filters import Where, parse_cli_where
from memflow.pipeline.shipped import Role, resolve_pipeline

if TYPE_CHECKING:
    from memflow.components.base import Problem
    from memflow.memory import Memory
    from memflow.storage.store import Store

F = TypeVar("F", bound=Callable[..., Any])


def store_options(func: F) -> F:
    """--store/--db/--trust on every command that opens a store (a group option would have to come
    before the command name, which nobody remembers)."""
    func = click.option(
        "--trust",
        "trusted",
        multiple=True,
        metavar="MODULE",
        help="Allow pipeline types given as dotted paths under MODULE (repeatable).",
    )(func)
    func = click.option(
        "--db",
        "url",
        envvar="MEMFLOW_DB",
        metavar="URL",
        help="SQLAlchemy URL of the SQL store (default: SQLite in the store directory).",
    )(func)
    func = click.option(
        "--store",
        "store",
        envvar="MEMFLOW_STORE",
        default=DEFAULT_STORE,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Store directory (or MEMFLOW_STORE).",
    )(func)
    return func


def pipeline_option(role: Role, *flags: str, dest: str = "pipeline", help: str | None = None) -> Callable[[F], F]:
    """A ``--pipeline NAME|FILE`` option for ``role``: a shipped pipeline's short name (``dense``) or a YAML
    file, passed on as the file's Path (None: the role's default)."""

    def resolve(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
        if value is None:
            return None
        try:
            return resolve_pipeline(value, role=role)
        except MemflowError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    text = help or (
        f"{role.capitalize()} pipeline: a shipped one by name (memflow pipeline list) or a YAML file (default: {role})."
    )
    return click.option(*(flags or ("--pipeline",)), dest, metavar="NAME|FILE", callback=resolve, help=text)


def verbose_option(func: F) -> F:
    """``-v/--verbose``: print how long each stage took, on stderr."""
    return click.option("-v", "--verbose", is_flag=True, help="Print each stage's time on stderr.")(func)


def echo_timings(seconds: dict[str, float]) -> None:
    """``stages: embed 12.1 ms, retrieve 30.2 ms, ...; total 42.3 ms`` on stderr."""
    parts = ", ".join(f"{name} {value * 1000:.1f} ms" for name, value in seconds.items())
    click.echo(f"stages: {parts}; total {sum(seconds.values()) * 1000:.1f} ms", err=True)


def collection_option(func: F) -> F:
    """``--collection NAME`` (or MEMFLOW_COLLECTION): the collection a command works in."""
    return click.option(
        "--collection",
        "collection",
        envvar="MEMFLOW_COLLECTION",
        default=DEFAULT_COLLECTION,
        show_default=True,
        metavar="NAME",
        help="The collection to work in (collections keep users or sources apart; or MEMFLOW_COLLECTION).",
    )(func)


def where_option(func: F) -> F:
    """``--where FIELD=VALUE`` (repeatable, all must match; also != >= <= > <, or a JSON object), parsed
    into a :class:`memflow.filters.Where` (None without any)."""

    def parse(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Where | None:
        try:
            return parse_cli_where(list(value))
        except MemflowError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return click.option(
        "--where",
        "where",
        multiple=True,
        metavar="FIELD=VALUE",
        callback=parse,
        help="Only documents whose metadata (or uri) match: user=alice, 'date>=2024-01-01', year!=2020, or a "
        'JSON filter {"$or": [...]} (repeatable: all must match).',
    )(func)


def open_memory(
    store: Path,
    url: str | None,
    trusted: tuple[str, ...],
    *,
    existing: bool = False,
    documents: bool = False,
    collection: str = DEFAULT_COLLECTION,
    **pipelines: Path | None,
) -> Memory:
    """The Memory a command works on. MEMFLOW_LOCK_TIMEOUT (seconds, default 60) bounds how long a write
    waits for another process's writer lock.

    ``existing``: a command that only reads (or forgets) refuses a store directory that holds no store and
    creates nothing there, so a mistyped ``--store`` is an error instead of a new empty store (with ``--db``
    the SQL side lives elsewhere and is not checked here). ``documents``: it also refuses a store with no
    documents, before any model is loaded."""
    from memflow.memory import Memory

    if existing or documents:
        _check_exists(store, url)
    try:
        lock_timeout = float(os.environ.get("MEMFLOW_LOCK_TIMEOUT", "60"))
    except ValueError:
        raise MemflowError("MEMFLOW_LOCK_TIMEOUT must be a number of seconds") from None
    memory = Memory(
        store,
        url=url,
        trusted_modules=trusted,
        lock_timeout=lock_timeout,
        ingest_pipeline=pipelines.get("ingest_pipeline"),
        ask_pipeline=pipelines.get("ask_pipeline"),
        collection=collection,
    )
    if documents and memory.stats().documents == 0:
        memory.close()
        if collection != DEFAULT_COLLECTION:
            raise MemflowError(f"collection {collection!r} of the store at {store} holds no documents")
        raise MemflowError(f"the store at {store} holds no documents yet: memflow ingest PATH --store {store}")
    return memory


def _check_exists(store: Path, url: str | None) -> None:
    if url is None and not (store / DB_FILE).is_file():
        raise MemflowError(f"no memflow store at {store} (memflow ingest PATH --store {store} makes one)")


def open_store(store: Path, url: str | None) -> Store:
    """The existing store a read-only command reads (stats, list, get, collections), without the pipelines or
    any model: a missing store is an error, and nothing is created."""
    from memflow.storage.store import Store

    _check_exists(store, url)
    return Store(store, url=url)


def debugging() -> bool:
    """Whether ``memflow --debug`` (or ``MEMFLOW_DEBUG=1``) asked for tracebacks with user errors."""
    context = click.get_current_context(silent=True)
    root = context.find_root() if context is not None else None
    if root is not None and isinstance(root.obj, dict) and root.obj.get("debug"):
        return True
    return os.environ.get("MEMFLOW_DEBUG", "") not in ("", "0")


def user_errors(func: F) -> F:
    """MemflowError → its one-line message on stderr and exit status 1 (with ``--debug``, the traceback
    first)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MemflowError as exc:
            if debugging():
                traceback.print_exc(file=sys.stderr)
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def echo_json(value: Any) -> None:
    from memflow.serialize import to_jsonable

    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def format_problem(problem: Problem) -> str:
    """``kind: path[:line]: reason``, the path as the user reads it."""
    where = display_path(problem.path) + (f":{problem.line}" if problem.line is not None else "")
    return f"{problem.kind}: {where}: {problem.reason}"


def display_path(uri: str) -> str:
    """A document URI as a user reads it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(uri) if not os.path.relpath(uri).startswith("..") else uri
    except ValueError:
        return uri


def configure_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING, format="warning: %(message)s")
    # These libraries report model loading on stderr; a CLI user asked for an answer, not their progress.
    for name in ("sentence_transformers", "transformers", "huggingface_hub", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Read by transformers and huggingface_hub when (and if) the command loads them: importing transformers
    # here to quiet it would cost the commands that never need it a second.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
