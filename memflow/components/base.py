"""The component contract: typed input and output sockets, keyword-only typed parameters, ``run``.

A component is a class that subclasses :class:`Component`, declares ``inputs`` and ``outputs`` as
mappings of socket name to :class:`Socket`, takes its parameters as keyword-only constructor arguments
with type annotations (a pipeline checks YAML ``params`` against them before anything runs), and
implements ``run(**inputs) -> dict`` returning one value per output socket.

Components that need the store, the run's progress settings or its warning channel receive a
:class:`RunContext` through :meth:`Component.bind` before their first run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from memflow.storage.store import Store

__all__ = ["Socket", "Component", "RunContext", "Problem"]

log = logging.getLogger("memflow")


@dataclass(frozen=True, slots=True)
class Socket:
    """One named input or output of a component. ``type`` is a typing annotation, e.g. ``list[Chunk]``.

    An input with ``optional=True`` may stay unconnected (its ``default`` is then passed).
    """

    type: Any
    optional: bool = False
    default: Any = None
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that could not be ingested or used, reported without stopping the run."""

    source: str
    reason: str
    kind: str = "failed"

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(slots=True)
class RunContext:
    """What a pipeline run shares with its components.

    ``store`` is None when a pipeline runs without one (validation, tests of a single component).
    ``problems`` collects what was skipped or failed, so a run can report it and carry on; ``unchanged``
    the documents an ingest found already stored; ``seen`` every document URI an ingest loaded;
    ``seconds`` the time spent in each component, by name.
    """

    store: Store | None = None
    progress: bool = False
    problems: list[Problem] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)

    def report(self, source: str, reason: str, *, kind: str = "failed") -> None:
        problem = Problem(source=str(source), reason=reason, kind=kind)
        self.problems.append(problem)
        log.warning("%s", problem)

    def require_store(self, component: str) -> Store:
        from memflow.errors import StoreError

        if self.store is None:
            raise StoreError(f"component {component!r} needs a store; run the pipeline through memflow.Memory")
        return self.store


class Component:
    """Base class of every pipeline component (memflow's own and plugins alike)."""

    inputs: ClassVar[Mapping[str, Socket]] = {}
    outputs: ClassVar[Mapping[str, Socket]] = {}

    context: RunContext

    def bind(self, context: RunContext) -> None:
        """Called by the pipeline before a run; override to prepare store-bound resources."""
        self.context = context

    if TYPE_CHECKING:
        # Each component declares run() with its own keyword-only inputs; typed as a free-form callable so
        # those precise signatures are not "incompatible overrides" of a generic one.
        run: Callable[..., dict[str, Any]]
    else:

        def run(self, **inputs: Any) -> dict[str, Any]:
            raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def params(self) -> dict[str, Any]:
        """The parameters the component was built with (for ``pipeline show`` and store settings)."""
        return dict(getattr(self, "_params", {}))
