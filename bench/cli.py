"""Whole-process wall times of the memflow command line: ``--help``, ``stats``, ``list``, ``collections``, a
local ``search`` (which loads the encoder and pipelines) and ``search --server`` against a warm
``memflow serve``; the median, fastest and slowest of ``--runs`` runs each.

    .venv/bin/python bench/cli.py [--runs 10] [--label after] [--store DIR] [--squad FILE]
                                  [--out bench/results/cli.json]

Each command runs as ``python -m memflow.cli.main ...`` in a fresh process, one at a time, with nothing else
started by the bench running but the server (idle between its requests). The store holds the first 200
SQuAD dev paragraphs as records. ``--label`` names the run in ``--out``, which keeps every label's rows (run
it from an older checkout with ``PYTHONPATH=that-checkout`` and ``--label before`` to compare); a command
that checkout does not have is recorded as failed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
QUERY = "Which NFL team represented the AFC at Super Bowl 50?"


def timed(args: list[str], runs: int) -> dict[str, Any]:
    times, failed = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "memflow.cli.main", *args], capture_output=True, timeout=300)
        times.append(time.perf_counter() - started)
        failed += done.returncode != 0
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--label", default="after")
    parser.add_argument("--store", type=Path)
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cli.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="memflow-cli-bench-") as scratch:
        store = args.store or Path(scratch) / "store"
        from memflow import Memory

        data = json.loads(args.squad.read_text(encoding="utf-8"))["data"]
        texts = [p["context"] for article in data for p in article["paragraphs"]][:200]
        with Memory(store) as memory:
            if memory.stats().documents != len(texts):
                memory.add(texts, ids=[f"p{n}" for n in range(len(texts))])

        from memflow.testing import running_server

        commands: dict[str, list[str]] = {
            "--help": ["--help"],
            "stats": ["stats", "--store", str(store)],
            "list": ["list", "--store", str(store)],
            "collections": ["collections", "--store", str(store)],
            "search (local)": ["search", QUERY, "--store", str(store)],
        }
        rows: dict[str, dict[str, Any]] = {}
        for name, command in commands.items():
            rows[name] = timed(command, args.runs)
            print(f"  {name}: {rows[name]}", flush=True)
        with running_server(store) as url:
            rows["search --server"] = timed(["search", QUERY, "--server", url], args.runs)
            print(f"  search --server: {rows['search --server']}", flush=True)

    print(f"\nmemflow CLI, whole process, {args.runs} runs each ({args.label})")
    print(f"{'command':18s} {'median s':>9s} {'min s':>7s} {'max s':>7s} failed")
    for name, row in rows.items():
        print(f"{name:18s} {row['median_s']:9.3f} {row['min_s']:7.3f} {row['max_s']:7.3f} {row['failed']:>6d}")
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    existing.setdefault("runs", {})[args.label] = {
        "command": "python bench/cli.py " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(existing, indent=2) + "\n")


if __name__ == "__main__":
    main()
