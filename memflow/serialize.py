"""The JSON shape of memflow's results, shared by ``--json`` on the CLI and the HTTP server: dataclasses as
objects of their fields, numpy arrays and scalars as lists and numbers."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memflow.components.base import Problem
from memflow.records import Record
from memflow.types import Answer, Citation, Evidence, Hit, SummarySlot, SummaryState, WrittenSummary

if TYPE_CHECKING:  # imported where used: a client reading search results needs neither the store nor ingest
    from memflow.ingest import IngestReport
    from memflow.storage.store import StoredDocument, StoreStats

__all__ = [
    "to_jsonable",
    "summary_json",
    "hit_from_json",
    "answer_from_json",
    "record_from_json",
    "document_from_json",
    "stats_from_json",
    "summary_from_json",
    "report_from_json",
]


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return value


def summary_json(state: SummaryState, written: WrittenSummary | None, *, vectors: bool = False) -> dict[str, Any]:
    """A document's summary state as a reader wants it: its slots' text and spans (their vectors and the
    running centroid too with ``vectors``), and the written (abstractive) summary when the ingest pipeline
    kept one."""
    hidden = () if vectors else ("centroid_sum", "vector")
    shape: dict[str, Any] = to_jsonable(
        {k: v for k, v in asdict(state).items() if k not in hidden}
        | {"slots": [{k: v for k, v in asdict(s).items() if k not in hidden} for s in state.slots]}
        | {"written": asdict(written) if written is not None else None}
    )
    return shape


# -- back from JSON (memflow.Client) ------------------------------------------------------------------------


def hit_from_json(data: dict[str, Any]) -> Hit:
    return Hit(**data)


def _citation(data: dict[str, Any]) -> Citation:
    return Citation(**data)


def answer_from_json(data: dict[str, Any]) -> Answer:
    return Answer(
        question=data["question"],
        text=data["text"],
        citations=[_citation(c) for c in data["citations"]],
        evidence=[
            Evidence(text=e["text"], weight=e["weight"], citation=_citation(e["citation"]), origin=e["origin"])
            for e in data["evidence"]
        ],
        attention=data["attention"],
        hits=[hit_from_json(h) for h in data["hits"]],
        generated=data.get("generated", False),
        labels=data.get("labels", []),
        notes=data.get("notes", []),
    )


def record_from_json(data: dict[str, Any]) -> Record:
    return Record(**data)


def document_from_json(data: dict[str, Any]) -> StoredDocument:
    """A stored document as GET /documents lists it (``id`` is its record id, ``row`` the store's number)."""
    from memflow.storage.store import StoredDocument

    return StoredDocument(
        id=data["row"],
        uri=data["id"],
        title=data["title"],
        content_hash=data["content_hash"],
        chunk_count=data["chunks"],
        metadata=data["metadata"],
        collection=data["collection"],
    )


def stats_from_json(data: dict[str, Any]) -> StoreStats:
    from memflow.storage.store import StoreStats

    return StoreStats(**data)


def summary_from_json(data: dict[str, Any]) -> SummaryState:
    """A summary state from ``summary_json(..., vectors=True)``."""
    return SummaryState(
        document=data["document"],
        capacity=data["capacity"],
        slots=[
            SummarySlot(**{**slot, "vector": np.asarray(slot["vector"], dtype=np.float16)}) for slot in data["slots"]
        ],
        chunks_seen=data["chunks_seen"],
        sentences_seen=data["sentences_seen"],
        centroid_sum=np.asarray(data["centroid_sum"], dtype=np.float32),
        read_until=data.get("read_until", 0),
    )


def report_from_json(data: dict[str, Any]) -> IngestReport:
    """An ingest report as ``memflow ingest --json`` prints it (and a finished ingest job holds it)."""
    from memflow.ingest import IngestReport

    return IngestReport(
        files=data["files"],
        ingested=list(data["ingested"]),
        unchanged=list(data["unchanged"]),
        pruned=list(data["pruned"]),
        problems=[Problem(**p) for p in data["problems"]],
        chunks=data["chunks"],
        tokens=data["tokens"],
        seconds=data["seconds"],
        stages=dict(data["stages"]),
    )
