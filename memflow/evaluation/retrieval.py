"""Running a memory's ask pipeline as a retriever over many queries, and scoring the rankings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memflow.answering import question_inputs, ranking_output
from memflow.components.base import RunContext
from memflow.components.encoders.sentence_transformers import QueryEncoder
from memflow.evaluation.metrics import mean, mrr_at_k, ndcg_at_k, recall_at_k
from memflow.filters import Where, parse_where
from memflow.memory import Memory
from memflow.pipeline import Pipeline
from memflow.types import Hit

__all__ = ["RetrievalReport", "run_queries", "rank_documents", "document_id", "evaluate_rankings"]


@dataclass(slots=True)
class RetrievalReport:
    """Mean metrics over ``queries`` queries (``metrics`` keyed like ``"nDCG@10"``), and the wall time."""

    name: str
    queries: int
    metrics: dict[str, float]
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run_queries(
    memory: Memory,
    queries: Sequence[str],
    *,
    k: int,
    output: str | None = None,
    progress: bool = False,
    where: Mapping[str, Any] | Where | None = None,
) -> list[list[Hit]]:
    """The final hits of the ask pipeline (up to ``k``) for each query, in the memory's collection and among
    the documents ``where`` matches (all, without)."""
    pipeline = memory.pipeline("ask")
    output = output or ranking_output(pipeline)
    component, _, socket = output.partition(".")
    context = RunContext(store=memory.store, where=parse_where(where), collection=memory.collection)
    results: list[list[Hit]] = []
    bar = _bar(len(queries), progress)
    with _batched_query_vectors(pipeline, queries, context):
        for query in queries:
            out = pipeline.run(question_inputs(pipeline, query, k=k), context=context, outputs=[output])
            results.append(list(out[component][socket]))
            bar.update(1)
    bar.close()
    return results


@contextlib.contextmanager
def _batched_query_vectors(pipeline: Pipeline, queries: Sequence[str], context: RunContext) -> Iterator[None]:
    """Encode every query up front in batches (one model call per 64 queries instead of one per query) and
    let the pipeline's query encoder answer from them: the same model, the same vectors."""
    encoders = pipeline.find(QueryEncoder)
    if len(encoders) != 1 or not queries:
        yield
        return
    _, encoder = encoders[0]
    encoder.bind(context)
    vectors = encoder.encoder.encode_queries(list(queries))
    by_text = dict(zip(queries, vectors, strict=True))
    original = encoder.run

    def run(*, query: str) -> dict[str, Any]:
        if query not in by_text:
            return original(query=query)
        encoder._check_store()
        return {"query_vector": by_text[query], "query": query}

    encoder.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        del encoder.run


def document_id(uri: str) -> str:
    """A JSONL document's id (``path#id``), else the URI itself."""
    return uri.rsplit("#", 1)[1] if "#" in uri else uri


def rank_documents(
    memory: Memory,
    queries: Sequence[str],
    *,
    depth: int = 100,
    chunks: int = 200,
    progress: bool = False,
    where: Mapping[str, Any] | Where | None = None,
) -> list[list[str]]:
    """Per query, document ids ranked by their best chunk (the chunk ranking collapsed), ``depth`` deep."""
    rankings = []
    for hits in run_queries(memory, queries, k=chunks, progress=progress, where=where):
        rankings.append(list(dict.fromkeys(document_id(h.document) for h in hits))[:depth])
    return rankings


def evaluate_rankings(
    rankings: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    name: str,
    cutoffs: Mapping[str, Sequence[int]],
) -> RetrievalReport:
    """Mean nDCG/recall/MRR at the given cutoffs (``{"ndcg": (10,), "recall": (10, 100), "mrr": (10,)}``)."""
    functions = {"ndcg": ("nDCG", ndcg_at_k), "recall": ("R", recall_at_k), "mrr": ("MRR", mrr_at_k)}
    metrics: dict[str, float] = {}
    for kind, ks in cutoffs.items():
        label, function = functions[kind]
        for k in ks:
            metrics[f"{label}@{k}"] = mean([function(rankings[q], qrels[q], k) for q in qrels])
    return RetrievalReport(name=name, queries=len(qrels), metrics=metrics)


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="query", desc="eval", dynamic_ncols=True)
