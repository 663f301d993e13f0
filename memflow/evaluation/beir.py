"""BEIR-format retrieval evaluation: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

Each corpus record becomes one memflow document whose text is the title, a blank line, then the text (how
BEIR's own dense and BM25 baselines index a record: title and text together; the blank line makes the
title a sentence of its own, so sentence-level scorers see it as a field). Documents are ranked by their
best chunk's score, and the standard metrics (graded nDCG, recall, MRR) are computed over that ranking.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memflow.errors import MemflowError
from memflow.evaluation.cache import cache_root, digest_files, open_eval_memory, prepare_corpus
from memflow.evaluation.retrieval import RetrievalReport, evaluate_rankings, rank_documents
from memflow.filters import Where
from memflow.memory import Memory
from memflow.pipeline import Pipeline

__all__ = ["BeirData", "load_beir", "beir_records", "evaluate_beir", "open_beir_memory"]

PREPARATION = "beir-title-blank-line-text/1"


@dataclass(frozen=True, slots=True)
class BeirData:
    name: str
    directory: Path
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MemflowError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id  corpus-id  score`` rows (tab separated, with or without the header line)."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.strip().split("\t")
            if not line.strip() or (number == 1 and parts[0] == "query-id"):
                continue
            if len(parts) != 3:
                raise MemflowError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'")
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
            except ValueError:
                raise MemflowError(f"{path}:{number}: score {parts[2]!r} is not an integer") from None
    return qrels


def load_beir(directory: str | Path, *, split: str = "test") -> BeirData:
    """A BEIR folder: the queries that have judgments in ``qrels/<split>.tsv``."""
    root = Path(directory).expanduser().resolve()
    corpus, queries_file, qrels_file = root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / f"{split}.tsv"
    for needed in (corpus, queries_file, qrels_file):
        if not needed.is_file():
            raise MemflowError(f"{root} is not a BEIR folder: {needed.relative_to(root)} is missing")
    qrels = load_qrels(qrels_file)
    queries = {str(q["_id"]): str(q["text"]) for q in _read_jsonl(queries_file) if str(q["_id"]) in qrels}
    missing = set(qrels) - set(queries)
    if missing:
        raise MemflowError(f"{qrels_file}: {len(missing)} judged queries are not in queries.jsonl")
    return BeirData(name=root.name, directory=root, corpus=corpus, queries=queries, qrels=qrels)


def beir_records(corpus: Path) -> Iterator[dict[str, Any]]:
    """Corpus records as memflow JSONL documents: text = title + blank line + text; id and title kept."""
    for record in _read_jsonl(corpus):
        title = str(record.get("title") or "").strip()
        text = str(record.get("text") or "").strip()
        yield {"_id": str(record["_id"]), "title": title, "text": f"{title}\n\n{text}" if title else text}


def open_beir_memory(
    data: BeirData,
    *,
    cache: str | Path | None = None,
    ingest_pipeline: str | Path | None = None,
    ask_pipeline: str | Path | Pipeline | None = None,
    url: str | None = None,
    progress: bool = False,
    trusted_modules: tuple[str, ...] = (),
) -> Memory:
    key = digest_files([data.corpus], PREPARATION)[:12]
    directory = cache_root(cache) / f"beir-{data.name}-{key}"
    corpus = prepare_corpus(directory, beir_records(data.corpus))
    return open_eval_memory(
        directory,
        corpus,
        ingest_pipeline=ingest_pipeline,
        ask_pipeline=ask_pipeline,
        url=url,
        progress=progress,
        trusted_modules=trusted_modules,
    )


def evaluate_beir(
    memory: Memory,
    data: BeirData,
    *,
    depth: int = 100,
    chunks: int = 200,
    limit: int | None = None,
    progress: bool = False,
    where: Mapping[str, Any] | Where | None = None,
) -> RetrievalReport:
    """nDCG@10, recall@10/100 and MRR@10 of the ask pipeline's retrieval over the judged queries (among the
    documents ``where`` matches, when given)."""
    ids = sorted(data.queries)[:limit] if limit else sorted(data.queries)
    queries = [data.queries[i] for i in ids]
    rankings = rank_documents(memory, queries, depth=depth, chunks=chunks, progress=progress, where=where)
    return evaluate_rankings(
        dict(zip(ids, rankings, strict=True)),
        {i: data.qrels[i] for i in ids},
        name=data.name,
        cutoffs={"ndcg": (10,), "recall": (10, 100), "mrr": (10,)},
    )
