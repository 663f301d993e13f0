"""memflow: a memory far larger than any context window.

Chunk and encode whole corpora into a FAISS + SQL store, keep a recurrent summary state per document, and
answer questions with an attention decoder over the retrieved memory, through YAML plugin pipelines.
"""

from memflow.client import AsyncClient, Client, ServerError
from memflow.components.base import Component, Problem, RunContext, Socket
from memflow.errors import (
    InputError,
    MemflowError,
    MissingDependencyError,
    ModelMismatchError,
    PipelineError,
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

__all__ = [
    "Memory",
    "Client",
    "AsyncClient",
    "IngestReport",
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
    "StorageFullError",
    "MissingDependencyError",
    "ServerError",
    "__version__",
]
