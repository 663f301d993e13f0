"""Core benchmark: ingest a folder into a fresh store, then time `ask` and check the summary state.

    .venv/bin/python bench/core.py                      # the PG essays in ../shared/data
    .venv/bin/python bench/core.py --corpus DIR --json

Prints one table: ingest wall time, documents, chunks, tokens, tokens/s; ask latency (median and p95 over
the questions, model already loaded); and how much of the batch summary selection the one-pass summary
state recovers (over every document of the corpus). Timings are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "pg-essays" / "essays"

QUESTIONS = [
    "What could the government do to increase the number of startups at no cost?",
    "Should you worry about repeating yourself when you write about general ideas?",
    "Are venture capital firms biased against female founders?",
    "What is your mind like?",
    "Why do so many programmers believe all programming languages are equivalent?",
    "What does the author say about startups and growth?",
    "How should founders think about fundraising?",
    "What makes a good startup idea?",
    "Why is Lisp a powerful programming language?",
    "What is the best way to get rich?",
    "How do you do great work?",
    "What should you do in college if you want to start a startup?",
    "Why do cities matter for ambitious people?",
    "What is wrong with the way schools teach writing?",
    "How can a startup compete with big companies?",
    "Why is it hard to predict which startups will succeed?",
    "What did the author learn from Y Combinator?",
    "What is the difference between a hacker and a painter?",
    "Why are some people addicted to technology?",
    "How do you find out what you want to work on?",
]


def summary_recovery(memory: object, capacity: int) -> tuple[int, int]:
    """(sentences the one-pass state shares with the batch selection, size of the batch selection)."""
    import numpy as np
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from memflow.components.summarizers.centrality import select as mmr_select
    from memflow.storage.sql import ChunkRow

    store = memory.store  # type: ignore[attr-defined]
    recovered = total = 0
    for document in store.documents():
        state = store.summary_states([document.id]).get(document.id)
        if state is None:
            continue
        with Session(store.engine) as session:
            ids = list(session.scalars(select(ChunkRow.id).where(ChunkRow.document_id == document.id)))
        spans: dict[tuple[int, int], np.ndarray] = {}
        for chunk in store.chunks(ids):
            for sentence, vector in zip(chunk.sentences, chunk.sentence_vectors, strict=True):
                spans.setdefault((sentence.start, sentence.end), vector.astype(np.float32))
        keys = list(spans)
        matrix = np.vstack([spans[k] for k in keys])
        chosen, _ = mmr_select(matrix, matrix.sum(axis=0), capacity=capacity, diversity=0.3)
        batch = {keys[i] for i in chosen}
        recovered += len(batch & {(s.start, s.end) for s in state.slots})
        total += len(batch)
    return recovered, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder to ingest (default: PG essays)")
    parser.add_argument("--store", type=Path, default=None, help="store directory (default: a fresh temp dir)")
    parser.add_argument("--repeat", type=int, default=1, help="times to ask each question")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    from memflow import Memory
    from memflow.components.encoders.sentence_transformers import load_encoder

    started = time.perf_counter()
    load_encoder("default")
    load_seconds = time.perf_counter() - started

    directory = args.store or Path(tempfile.mkdtemp(prefix="memflow-bench-"))
    with Memory(directory) as memory:
        report = memory.ingest([str(args.corpus)])
        memory.ask(QUESTIONS[0])  # first call builds the ask pipeline
        latencies = []
        for _ in range(args.repeat):
            for question in QUESTIONS:
                t0 = time.perf_counter()
                memory.ask(question)
                latencies.append((time.perf_counter() - t0) * 1000)
        recovered, total = summary_recovery(memory, capacity=8)
        stats = memory.stats()

    latencies.sort()
    result = {
        "corpus": str(args.corpus),
        "model_load_s": round(load_seconds, 2),
        "ingest_s": round(report.seconds, 2),
        "documents": stats.documents,
        "chunks": stats.chunks,
        "tokens": stats.tokens,
        "tokens_per_s": round(stats.tokens / report.seconds, 1),
        "failed": len(report.failed),
        **{f"stage_{name}_s": round(sec, 2) for name, sec in report.stages.items()},
        "ask_questions": len(latencies),
        "ask_median_ms": round(statistics.median(latencies), 1),
        "ask_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "summary_recovered": f"{recovered}/{total}",
        "summary_recovery": round(recovered / total, 3) if total else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
