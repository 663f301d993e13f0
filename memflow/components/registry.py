"""Finding components by name: the ``memflow.components`` entry-point group, and trusted dotted paths.

memflow registers its own components in that group exactly as a plugin package would, in its
``pyproject.toml``::

    [project.entry-points."memflow.components"]
    "chunkers.sentences" = "memflow.components.chunkers.sentences:SentenceChunker"

A ``type:`` that is not a registered name may be a dotted path (``package.module:Class`` or
``package.module.Class``), but only when its module lies under one of the modules the caller trusts:
a pipeline file alone can never make memflow import arbitrary code.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from memflow.components.base import Component
from memflow.errors import PipelineError

__all__ = ["ENTRY_POINT_GROUP", "available", "resolve", "clear_cache"]

ENTRY_POINT_GROUP = "memflow.components"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def clear_cache() -> None:
    """Forget the entry points seen so far (after installing a plugin in the same process)."""
    _entry_points.cache_clear()


def available() -> dict[str, str]:
    """Registered component names and the ``module:attr`` each points to."""
    return {name: ep.value for name, ep in sorted(_entry_points().items())}


def _is_trusted(module: str, trusted: Iterable[str]) -> bool:
    return any(module == t or module.startswith(t + ".") for t in trusted)


def resolve(name: str, *, trusted_modules: Iterable[str] = ()) -> type[Component]:
    """The component class a ``type:`` string names. Raises PipelineError (without file/line; the
    caller adds them) when the name is unknown, untrusted or not a component."""
    ep = _entry_points().get(name)
    if ep is not None:
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not look like an unknown name
            raise PipelineError(f"component {name!r} failed to load from {ep.value}: {exc}") from exc
        return _check_component(name, obj)

    module_name, _, attr = name.partition(":") if ":" in name else name.rpartition(".")
    close = difflib.get_close_matches(name, list(available()), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    if not module_name or not attr:
        raise PipelineError(f"unknown component type {name!r}; {hint}known: {', '.join(available()) or 'none'}")
    trusted = list(trusted_modules)
    if not _is_trusted(module_name, trusted):
        if close:  # a typo of a registered name, far likelier than an untrusted dotted path
            raise PipelineError(f"unknown component type {name!r}; {hint}(memflow components lists them all)")
        raise PipelineError(
            f"unknown component type {name!r}: not a registered name, and module {module_name!r} is not "
            "trusted (register it under the 'memflow.components' entry point, or trust its module)"
        )
    try:
        module = importlib.import_module(module_name)
        obj = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise PipelineError(f"component type {name!r} cannot be imported: {exc}") from exc
    return _check_component(name, obj)


def _check_component(name: str, obj: object) -> type[Component]:
    if not (isinstance(obj, type) and issubclass(obj, Component)):
        raise PipelineError(f"{name!r} is not a memflow component (a subclass of memflow.Component)")
    return obj
