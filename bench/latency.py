"""Warm per-question latency of `Memory.search` and `Memory.ask` for each shipped ask pipeline, in one run.

    .venv/bin/python bench/latency.py [--questions 100] [--pipelines ask ask-hybrid ...] [--json]

The store is the SQuAD dev paragraphs' eval store (`memflow eval squad` builds it; built here if missing).
Questions are every n-th SQuAD dev question. Each pipeline first answers every question once (the warm-up:
models loaded, per-chunk caches filled), then each question is timed through `search` (k=10) and `ask`.
Nothing is asserted; it prints a table of milliseconds per question (median and 95th percentile).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return round(statistics.median(ordered), 1), round(ordered[int(0.95 * (len(ordered) - 1))], 1)


def _timed(call: Callable[[str], Any], questions: list[str]) -> list[float]:
    times = []
    for question in questions:
        started = time.perf_counter()
        call(question)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--pipelines", nargs="*", default=None,
                        help="shipped pipeline names (files in pipelines/ without .yaml); default: every ask-* one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from memflow.evaluation.squad import load_squad, open_squad_memory

    names = args.pipelines or sorted(p.stem for p in (REPO / "pipelines").glob("ask*.yaml")
                                     if p.stem not in ("ask-llm", "ask-multihop"))
    data = load_squad(args.squad)
    step = max(1, len(data.questions) // args.questions)
    questions = [q.question for q in data.questions[::step]][: args.questions]
    rows = []
    for name in names:
        with open_squad_memory(data, ask_pipeline=REPO / "pipelines" / f"{name}.yaml") as memory:
            for question in questions:
                memory.ask(question)
            search_p50, search_p95 = _percentiles(_timed(lambda q: memory.search(q, k=10), questions))
            ask_p50, ask_p95 = _percentiles(_timed(memory.ask, questions))
            rows.append({"pipeline": name, "questions": len(questions), "search_p50_ms": search_p50,
                         "search_p95_ms": search_p95, "ask_p50_ms": ask_p50, "ask_p95_ms": ask_p95})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'pipeline':24} {'questions':>9} {'search p50':>11} {'search p95':>11} {'ask p50':>8} {'ask p95':>8}")
    for row in rows:
        print(f"{row['pipeline']:24} {row['questions']:>9} {row['search_p50_ms']:>11} {row['search_p95_ms']:>11} "
              f"{row['ask_p50_ms']:>8} {row['ask_p95_ms']:>8}")


if __name__ == "__main__":
    main()
