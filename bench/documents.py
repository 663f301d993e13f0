"""What listing a large store costs: one page of documents (as GET /documents, the MCP list_documents tool and
``memflow list --limit`` read it) against reading the whole list, with no filter and with a 1 % where-filter.

    .venv/bin/python bench/documents.py [--documents 200000] [--out bench/results/documents.json]

The store's documents table is filled directly through SQL (document rows only: listing reads nothing
else), each with metadata ``bucket`` = n % 100 and a 1 kB text that a listing must not read. Each case is
timed five times on the open store; the first where-filtered page also finds the matching documents (kept
until the store changes), so both the first and the warm page are shown. Milliseconds; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from memflow.filters import parse_where
from memflow.storage.sql import DocumentRow
from memflow.storage.store import Store

REPO = Path(__file__).resolve().parents[1]


def fill(store: Store, count: int) -> None:
    text = "lorem ipsum " * 85
    with store.engine.begin() as connection:
        for start in range(0, count, 10_000):
            rows = [
                {
                    "uri": f"r{n}",
                    "collection": "default",
                    "content_hash": f"{n:064x}",
                    "title": f"record {n}",
                    "metadata": {"bucket": n % 100, "user": f"u{n % 37}"},
                    "sections": [],
                    "text": text,
                    "chunk_count": 1,
                }
                for n in range(start, min(count, start + 10_000))
            ]
            connection.execute(insert(DocumentRow), rows)


def timed(run: Callable[[], Any], times: int = 5) -> tuple[float, float, Any]:
    """(first ms, median ms of the rest, the result)."""
    seconds = []
    result = None
    for _ in range(times):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    return seconds[0] * 1000, statistics.median(seconds[1:]) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "documents.json")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="memflow-documents-bench-") as scratch, Store(scratch) as store:
        fill(store, args.documents)
        selective = parse_where({"bucket": 7})
        middle = args.documents // 2
        cases: dict[str, Callable[[], Any]] = {
            "page of 100 (offset n/2)": lambda: store.documents(limit=100, offset=middle),
            "page of 100, 1 % filter": lambda: store.documents(where=selective, limit=100, offset=500),
            "whole list": lambda: store.documents(collection="default"),
            "whole list, 1 % filter (Python)": lambda: [
                d
                for d in store.documents(collection="default")
                if selective.matches(d.fields())  # type: ignore[union-attr]
            ],
        }
        for name, run in cases.items():
            first, warm, _ = timed(run)
            rows.append({"case": name, "first_ms": round(first, 1), "warm_ms": round(warm, 1)})
            print(f"{name:34} first {first:9.1f} ms   warm {warm:9.1f} ms", flush=True)
    result = {
        "command": f"python bench/documents.py --documents {args.documents}",
        "documents": args.documents,
        "rows": rows,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
