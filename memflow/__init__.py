"""memflow: a memory far larger than any context window.

Chunk and encode whole corpora into a FAISS + SQL store, keep a recurrent summary state per document, and
answer questions with an attention decoder over the retrieved memory, through YAML plugin pipelines.

The names below are imported on first use, so ``import memflow`` (and the command line's fast commands)
load only what they touch.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# memflow runs offline and sends nothing anywhere: ONNX Runtime (the default encoder's backend) collects and
# uploads telemetry on Linux and macOS unless told not to before it is first imported, and keeps a device id
# under ~/.cache. A user who sets the variable themselves decides.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

if TYPE_CHECKING:
    from memflow.client import AsyncClient, Client, ServerError
    from memflow.components.base import Component, Problem, RunContext, Socket
    from memflow.errors import (
        InputError,
        MemflowError,
        MissingDependencyError,
        ModelMismatchError,
        PipelineError,
        ReadOnlyStoreError,
        RecordError,
        StorageFullError,
        StoreError,
        StoreLockedError,
    )
    from memflow.memory import IngestReport, Memory
    from memflow.pipeline import Pipeline
    from memflow.records import Record
    from memflow.types import (
        Answer,
        Chunk,
        Citation,
        Document,
        Evidence,
        Hit,
        Section,
        Sentence,
        SummarySlot,
        SummaryState,
    )

__version__ = "0.1.0"

#: Each public name and the module it lives in.
_HOMES = {
    "Memory": "memflow.memory",
    "IngestReport": "memflow.memory",
    "Client": "memflow.client",
    "AsyncClient": "memflow.client",
    "ServerError": "memflow.client",
    "Record": "memflow.records",
    "Pipeline": "memflow.pipeline",
    "Component": "memflow.components.base",
    "Socket": "memflow.components.base",
    "RunContext": "memflow.components.base",
    "Problem": "memflow.components.base",
    **{
        name: "memflow.types"
        for name in (
            "Document",
            "Section",
            "Sentence",
            "Chunk",
            "Hit",
            "Citation",
            "Evidence",
            "Answer",
            "SummarySlot",
            "SummaryState",
        )
    },
    **{
        name: "memflow.errors"
        for name in (
            "MemflowError",
            "PipelineError",
            "InputError",
            "RecordError",
            "StoreError",
            "ModelMismatchError",
            "StoreLockedError",
            "ReadOnlyStoreError",
            "StorageFullError",
            "MissingDependencyError",
        )
    },
}

__all__ = [
    "Memory",
    "IngestReport",
    "Client",
    "AsyncClient",
    "ServerError",
    "Record",
    "Pipeline",
    "Component",
    "Socket",
    "RunContext",
    "Problem",
    "Document",
    "Section",
    "Sentence",
    "Chunk",
    "Hit",
    "Citation",
    "Evidence",
    "Answer",
    "SummarySlot",
    "SummaryState",
    "MemflowError",
    "PipelineError",
    "InputError",
    "RecordError",
    "StoreError",
    "ModelMismatchError",
    "StoreLockedError",
    "ReadOnlyStoreError",
    "StorageFullError",
    "MissingDependencyError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'memflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # imported once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
