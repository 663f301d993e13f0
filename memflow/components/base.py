"""The component contract: typed input and output sockets, keyword-only typed parameters, ``run``.

A component is a class that subclasses :class:`Component`, declares ``inputs`` and ``outputs`` as
mappings of socket name to :class:`Socket`, takes its parameters as keyword-only constructor arguments
with type annotations (a pipeline checks YAML ``params`` against them before anything runs), and
implements ``run(**inputs) -> dict`` returning one value per output socket.

The constructor signature is the one declaration of a component's parameters: each parameter ``foo`` is
kept on the instance as ``self.foo`` (or under the attribute its class names in ``param_attributes``), and
:meth:`Component.params` reads them back from there, so what it reports is what the component runs with.
Likewise ``run``'s keyword parameters must be the declared input sockets; a pipeline checks both when it
is built.

Components that need the store, the run's progress settings or its warning channel receive a
:class:`RunContext` through :meth:`Component.bind` before their first run.
"""

from __future__ import annotations

import inspect
import logging
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from memflow.types import DEFAULT_COLLECTION

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from memflow.filters import Where
    from memflow.storage.store import Store

__all__ = ["Socket", "Component", "RunContext", "Problem", "constructor_parameters"]

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


ProblemKind = Literal["failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that could not be ingested or used, reported without stopping the run.

    ``path`` is the file (or the component, for a problem that is not about an input) it is about, ``line``
    the line in it where one applies (a JSONL record); ``kind`` is ``failed`` (broken input: its stored
    documents are kept as they were) or ``skipped`` (nothing to ingest, e.g. an empty or unsupported file).
    """

    path: str
    reason: str
    kind: ProblemKind = "failed"
    line: int | None = None

    @property
    def source(self) -> str:
        """``path``, or ``path:line``."""
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


#: RunContext's allowed set before a component asks for it.
_UNDECIDED = object()


@dataclass(slots=True)
class RunContext:
    """What a pipeline run shares with its components.

    ``store`` is None when a pipeline runs without one (validation, tests of a single component).
    ``problems`` collects what was skipped or failed, so a run can report it and carry on; ``unchanged``
    the documents an ingest found already stored; ``seen`` every document URI an ingest loaded;
    ``seconds`` the time spent in each component, by name. ``collection`` is the collection a run writes
    to and reads from; ``where`` restricts what a question's run may retrieve to the documents the filter
    matches: every retriever searches only :meth:`allowed_chunks`.
    """

    store: Store | None = None
    progress: bool = False
    problems: list[Problem] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)
    where: Where | None = None
    collection: str = DEFAULT_COLLECTION
    _allowed: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._allowed = _UNDECIDED

    def allowed_chunks(self) -> npt.NDArray[np.int64] | None:
        """The sorted ids of the chunks this run may retrieve (those of ``collection`` that ``where``
        matches), or None when it may retrieve any: no filter, and nothing stored outside ``collection``.
        Decided once per run, so every component of it (and the final check) works from the same set."""
        if self._allowed is _UNDECIDED:
            if self.where is None and (self.store is None or set(self.store.collections()) <= {self.collection}):
                self._allowed = None
            else:
                store = self.require_store("a filtered search")
                self._allowed = store.matching_chunk_ids(self.where, collection=self.collection)
        return cast("npt.NDArray[np.int64] | None", self._allowed)

    def report(self, path: str, reason: str, *, kind: ProblemKind = "failed", line: int | None = None) -> None:
        problem = Problem(path=str(path), reason=reason, kind=kind, line=line)
        self.problems.append(problem)
        log.warning("%s", problem)

    def require_store(self, component: str) -> Store:
        from memflow.errors import StoreError

        if self.store is None:
            raise StoreError(f"component {component!r} needs a store; run the pipeline through memflow.Memory")
        return self.store


def constructor_parameters(cls: type) -> tuple[list[str], str | None]:
    """The names of the parameters ``cls`` is built with (without ``self`` and ``*args``, which YAML cannot
    fill), and the name of its ``**kwargs`` parameter if it has one."""
    init = cls.__init__  # type: ignore[misc]
    if init is object.__init__:
        return [], None
    names: list[str] = []
    var_keyword: str | None = None
    for index, p in enumerate(inspect.signature(init).parameters.values()):
        if index == 0 or p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = p.name
        else:
            names.append(p.name)
    return names, var_keyword


class Component:
    """Base class of every pipeline component (memflow's own and plugins alike)."""

    inputs: ClassVar[Mapping[str, Socket]] = {}
    outputs: ClassVar[Mapping[str, Socket]] = {}

    # Constructor parameters kept under another attribute than their own name, by parameter name. A dotted
    # path reads through to the object that uses the value (``"attention.hops"``), so it cannot go stale.
    # Merged along the class's bases, the nearest class winning.
    param_attributes: ClassVar[Mapping[str, str]] = {}
    # Constructor parameters params() never reports: secrets that must not reach ``pipeline show`` or a log.
    secret_params: ClassVar[frozenset[str]] = frozenset()

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
        """The effective value of every constructor parameter, in signature order (for ``pipeline show``).

        Each is read from the attribute of its name, or the one ``param_attributes`` names; a ``**extra``
        parameter is read as the mapping ``self.extra`` and its items added. Raises AttributeError naming
        the parameter when the instance does not keep one where the rule says.
        """
        cls = type(self)
        names, var_keyword = constructor_parameters(cls)
        attributes: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            attributes.update(vars(klass).get("param_attributes", {}))
        found: dict[str, Any] = {}
        for name in [*names, *([var_keyword] if var_keyword else [])]:
            if name in cls.secret_params:
                continue
            attribute = attributes.get(name, name)
            try:
                value = operator.attrgetter(attribute)(self)
            except AttributeError:
                raise AttributeError(
                    f"{cls.__name__}: constructor parameter {name!r} is not kept as self.{attribute}; store it "
                    f"there, or name where it is kept in {cls.__name__}.param_attributes"
                ) from None
            if name == var_keyword:
                found.update(value)
            else:
                found[name] = value
        return found
