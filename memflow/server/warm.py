"""Warming a served memory: its pipelines and encoder loaded before the first request, so the first request
is as fast as the hundredth (memflow serve and memflow mcp both)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from memflow.components.encoders.sentence_transformers import QueryEncoder
from memflow.memory import Memory

__all__ = ["warm", "has_vectors"]


def has_vectors(memory: Memory) -> bool:
    """Whether the store holds anything to search yet."""
    return memory.store.setting("dimension") is not None


def warm(memory: Memory, pipelines: Iterable[Path] = ()) -> None:
    """Load the ingest pipeline, the ask pipeline and each of ``pipelines`` with their encoders, and run one
    search through each when the store has vectors (its caches and index pages in memory)."""
    memory.pipeline("ingest")
    for spec in [None, *pipelines]:
        pipeline = memory.ask_pipeline(pipeline=spec)
        for _, encoder in pipeline.find(QueryEncoder):
            encoder.run(query="warm up")
        if has_vectors(memory):
            memory.search("warm up", k=1, pipeline=spec)
