"""What a where-filter costs a search: warm `Memory.search` latency with no filter, a broad filter (50 % of
the records) and a selective one (1 %), for the default and the dense pipeline, on SQuAD dev paragraphs.

    .venv/bin/python bench/filters.py [--records 2000] [--questions 100] [--store DIR] [--squad FILE]
                                      [--out bench/results/filters.json]

The first ``--records`` SQuAD dev paragraphs are added as records (metadata ``bucket`` = n % 100), to
``--store`` if given (kept, and reused when it already holds them) or a temporary store. Questions are
every n-th question of those paragraphs. Each pipeline answers every question once first (models loaded,
per-chunk caches warm), then each filter times every question once through ``search(k=10)``: the first
filtered query of a filter also pays for finding its matching chunks (kept until the store changes). It
prints milliseconds (median and 95th percentile) and the fewest hits any question got; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"

FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "broad (50 %)": {"bucket": {"$lt": 50}},
    "selective (1 %)": {"bucket": 7},
}


def squad(count: int, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = []
    questions: list[str] = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            if len(records) == count:
                return records, questions
            n = len(records)
            records.append(
                {
                    "id": f"p{n}",
                    "text": paragraph["context"],
                    "metadata": {"bucket": n % 100, "article": article["title"]},
                }
            )
            questions.extend(q["question"] for q in paragraph["qas"][:1])
    return records, questions


def _ms(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return round(statistics.median(ordered), 1), round(ordered[int(0.95 * (len(ordered) - 1))], 1)


def run(directory: Path, records: list[dict[str, Any]], questions: list[str]) -> list[dict[str, Any]]:
    from memflow import Memory

    with Memory(directory) as memory:
        if memory.stats().documents != len(records):
            memory.add(records)
    rows = []
    for pipeline in ("default", "dense"):
        with Memory(directory, ask_pipeline=pipeline) as memory:
            for question in questions:  # loads the models and fills the per-chunk caches, as a warm memory has
                memory.search(question, k=10)
            for name, where in FILTERS.items():
                times, returned = [], []
                for question in questions:
                    started = time.perf_counter()
                    hits = memory.search(question, k=10, where=where)
                    times.append((time.perf_counter() - started) * 1000)
                    returned.append(len(hits))
                p50, p95 = _ms(times)
                rows.append(
                    {
                        "pipeline": pipeline,
                        "filter": name,
                        "p50_ms": p50,
                        "p95_ms": p95,
                        "min_hits": min(returned),
                        "first_ms": round(times[0], 1),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--store", type=Path, help="keep the store here (reused when it holds the records)")
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    records, questions = squad(args.records, args.squad)
    step = max(1, len(questions) // args.questions)
    questions = questions[::step][: args.questions]
    if args.store is not None:
        rows = run(args.store, records, questions)
    else:
        with tempfile.TemporaryDirectory() as directory:
            rows = run(Path(directory) / "store", records, questions)
    print(f"{len(records)} records, {len(questions)} questions, search k=10 (ms)")
    print(f"{'pipeline':<9} {'filter':<16} {'p50':>7} {'p95':>7} {'first':>7} {'min hits':>9}")
    for row in rows:
        print(
            f"{row['pipeline']:<9} {row['filter']:<16} {row['p50_ms']:>7} {row['p95_ms']:>7} "
            f"{row['first_ms']:>7} {row['min_hits']:>9}"
        )
    if args.out:
        result = {"records": len(records), "questions": len(questions), "rows": rows}
        result["machine"] = {"python": platform.python_version(), "processor": platform.machine()}
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
