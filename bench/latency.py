"""What a question costs: warm per-question latency of `Memory.search` and `Memory.ask` for each shipped ask
pipeline, and the whole-process time of `memflow search` / `memflow ask`, in one run on SQuAD dev.

    .venv/bin/python bench/latency.py [--questions 100] [--pipelines default dense ...] [--runs 3]
                                      [--out bench/results/latency.json]

The store is the SQuAD dev paragraphs' eval store (`memflow eval squad` builds it; built here if missing).
Questions are every n-th SQuAD dev question. Each pipeline loads its models, answers every question once
(timed: "first ask", the chunks' per-chunk caches still cold), then times each question again through
`search` (k=10) and `ask` (warm: models loaded, caches filled).
The whole-process rows run the CLI as a user does (`memflow search "Q" --store DIR`, a new process that
imports torch and loads the encoder each time), ``--runs`` times each, with the default pipeline and with
``--pipeline dense``. Nothing is asserted; it prints a table of milliseconds (median and 95th percentile)
and, with ``--out``, writes the rows and the machine's load as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
# Pipelines that need a language model or read iteratively are timed by bench/decoders.py, not here.
SKIPPED = ("llm", "multihop")


def _percentiles(times: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return round(statistics.median(ordered), 1), round(ordered[int(0.95 * (len(ordered) - 1))], 1)


def _timed(call: Callable[[str], Any], questions: Sequence[str]) -> list[float]:
    times = []
    for question in questions:
        started = time.perf_counter()
        call(question)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _in_process(names: Sequence[str], data: Any, questions: Sequence[str]) -> list[dict[str, Any]]:
    from memflow.evaluation.squad import open_squad_memory
    from memflow.pipeline import resolve_pipeline

    rows = []
    for name in names:
        with open_squad_memory(data, ask_pipeline=resolve_pipeline(name, role="ask")) as memory:
            memory.ask("What is a memory?")  # loads the models outside the timings
            first_p50, first_p95 = _percentiles(_timed(memory.ask, questions))
            search_p50, search_p95 = _percentiles(_timed(lambda q: memory.search(q, k=10), questions))
            ask_p50, ask_p95 = _percentiles(_timed(memory.ask, questions))
        rows.append(
            {
                "pipeline": name,
                "questions": len(questions),
                "first_ask_p50_ms": first_p50,
                "first_ask_p95_ms": first_p95,
                "search_p50_ms": search_p50,
                "search_p95_ms": search_p95,
                "ask_p50_ms": ask_p50,
                "ask_p95_ms": ask_p95,
            }
        )
    return rows


def _whole_process(store: Path, questions: Sequence[str], runs: int) -> list[dict[str, Any]]:
    memflow = str(Path(sys.executable).with_name("memflow"))
    rows = []
    for pipeline in ("default", "dense"):
        for command in ("search", "ask"):
            times = []
            for question in questions[:runs]:
                started = time.perf_counter()
                done = subprocess.run(
                    [memflow, command, question, "--store", str(store), "--pipeline", pipeline],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                times.append((time.perf_counter() - started) * 1000)
                if done.returncode != 0:
                    raise SystemExit(f"memflow {command} failed: {done.stderr.strip()}")
            rows.append(
                {
                    "command": f"memflow {command} --pipeline {pipeline}",
                    "runs": len(times),
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument(
        "--pipelines",
        nargs="*",
        default=None,
        help="shipped ask pipelines by name (memflow pipeline list); default: all but " + ", ".join(SKIPPED),
    )
    parser.add_argument("--runs", type=int, default=3, help="whole-process runs per command (0: none)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()

    from memflow.evaluation.squad import load_squad, open_squad_memory
    from memflow.pipeline import shipped_pipelines

    names = args.pipelines or [
        p.short_name for p in shipped_pipelines() if p.role == "ask" and p.short_name not in SKIPPED
    ]
    data = load_squad(args.squad)
    step = max(1, len(data.questions) // args.questions)
    questions = [q.question for q in data.questions[::step]][: args.questions]
    started = time.perf_counter()
    rows = _in_process(names, data, questions)
    with open_squad_memory(data) as memory:
        store = memory.store.directory
    processes = _whole_process(store, questions, args.runs) if args.runs > 0 else []
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "total_s": round(time.perf_counter() - started, 1),
        },
        "in_process": rows,
        "whole_process": processes,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"warm, in-process, {len(questions)} SQuAD dev questions (ms per question)")
    print(f"{'pipeline':16} {'first ask p50':>13} {'p95':>7} {'search p50':>11} {'p95':>7} {'ask p50':>8} {'p95':>7}")
    for row in rows:
        print(
            f"{row['pipeline']:16} {row['first_ask_p50_ms']:>13} {row['first_ask_p95_ms']:>7} "
            f"{row['search_p50_ms']:>11} {row['search_p95_ms']:>7} {row['ask_p50_ms']:>8} {row['ask_p95_ms']:>7}"
        )
    if processes:
        print(f"\nwhole process (ms, {args.runs} runs each)")
        print(f"{'command':36} {'median':>8} {'max':>8}")
        for row in processes:
            print(f"{row['command']:36} {row['median_ms']:>8} {row['max_ms']:>8}")


if __name__ == "__main__":
    main()
