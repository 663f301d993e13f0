"""memflow's error types.

Every error memflow raises on purpose is a :class:`MemflowError`; its ``str()`` is one line that names the
file (and line, for YAML) it is about, so the CLI can print it as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "MemflowError",
    "PipelineError",
    "InputError",
    "StoreError",
    "ModelMismatchError",
    "StoreLockedError",
    "MissingDependencyError",
]


class MemflowError(Exception):
    """Base class of every error memflow raises deliberately."""


class PipelineError(MemflowError):
    """A pipeline definition is invalid: YAML syntax, unknown component, bad parameter, wiring, cycle.

    Its fields say where: ``file``, ``line`` and ``column`` (1-based) in it, and the ``component`` (its name in
    the pipeline) when the problem is one component's; ``reason`` is the message without the place. ``str()``
    is ``file:line[:column]: reason``, the form editors and terminals link to.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        component: str | None = None,
    ) -> None:
        self.reason = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column if line is not None else None
        self.component = component
        super().__init__(f"{self.where}: {message}" if self.where else message)

    @property
    def where(self) -> str:
        """``file``, ``file:line`` or ``file:line:column``; empty when the pipeline has no file."""
        if self.file is None:
            return ""
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column is not None else "")


class InputError(MemflowError):
    """An input file cannot be read or parsed. ``path`` names it; the rest of a corpus still ingests."""

    def __init__(self, path: str | Path, message: str, *, line: int | None = None) -> None:
        self.path = str(path)
        self.reason = message
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class RecordError(MemflowError, ValueError):
    """Texts, ids or metadata given to ``Memory.add`` are malformed; the message names the argument
    (``texts[3]``, ``metadata[1]['when']``) and nothing was written."""


class StoreError(MemflowError):
    """The store cannot be opened, read or written. An ingest stopped by one sets ``report``: the
    :class:`~memflow.ingest.IngestReport` of what it committed before (None otherwise)."""

    report: Any = None


class ModelMismatchError(StoreError):
    """The configured encoder differs from the one the store was built with."""


class StoreLockedError(StoreError):
    """Another process holds the store's writer lock."""


class ReadOnlyStoreError(StoreError):
    """The store cannot be written by this process (a read-only mount, another user's files); it can still
    be searched and read."""


class StorageFullError(StoreError):
    """The disk (or quota) under the store is full. The write that hit it was not kept; what was committed
    before it is intact and readable."""


class MissingDependencyError(MemflowError, ImportError):
    """An optional dependency is not installed; the message says what to install."""

    def __init__(self, module: str, *, extra: str, purpose: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(f"{purpose} needs the '{module}' package: pip install 'memflow[{extra}]'")
