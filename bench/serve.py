"""memflow serve under load: median and 95th-percentile latency and requests per second of POST /search and
POST /ask at 1, 8 and 32 concurrent clients, beside the same calls in-process, for the default and the dense
pipeline, over SQuAD dev paragraphs; then 32 clients searching for ``--soak`` seconds while an ingest job
writes new paragraphs, counting errors.

    .venv/bin/python bench/serve.py [--records 2000] [--seconds 10] [--soak 60] [--store DIR]
                                    [--squad FILE] [--out bench/results/serve.json]

The first ``--records`` SQuAD dev paragraphs are added as records (to ``--store`` if given, kept and reused;
else a temporary store); the questions are one per paragraph. In-process, a warm ``Memory`` answers every
question once, timed one at a time. Served, a real ``memflow serve`` process on 127.0.0.1 is warmed with
every question once, then for each concurrency ``--seconds`` of requests are sent by that many asyncio
clients (httpx, one connection each) in this process, on the same 2 cores as the server: the table's
requests/s are what this machine serves with its clients on it. Every run is bounded in requests and time.
Nothing is asserted; the table is printed and written to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from filters import SQUAD, squad  # noqa: E402  (the same records and questions as bench/filters.py)

CONCURRENCY = (1, 8, 32)
#: At most this many requests in one timed run, whatever --seconds allows.
MAX_REQUESTS = 20_000


def _ms(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    if not ordered:
        return float("nan"), float("nan")
    return round(statistics.median(ordered), 1), round(ordered[int(0.95 * (len(ordered) - 1))], 1)


def in_process(directory: Path, questions: list[str], pipeline: str, *, ask: bool) -> dict[str, dict[str, Any]]:
    from memflow import Memory

    rows: dict[str, dict[str, Any]] = {}
    with Memory(directory, ask_pipeline=pipeline) as memory:
        calls = {"search": lambda q: memory.search(q, k=10)}
        if ask:
            calls["ask"] = lambda q: memory.ask(q)
        for endpoint, call in calls.items():
            for question in questions:  # warm: models loaded, per-chunk caches filled
                call(question)
            times = []
            started = time.perf_counter()
            for question in questions:
                began = time.perf_counter()
                call(question)
                times.append((time.perf_counter() - began) * 1000)
            elapsed = time.perf_counter() - started
            p50, p95 = _ms(times)
            rows[endpoint] = {"p50_ms": p50, "p95_ms": p95, "rps": round(len(times) / elapsed, 1)}
    return rows


async def load(
    url: str, endpoint: str, questions: list[str], *, clients: int, seconds: float, requests: int = MAX_REQUESTS
) -> dict[str, Any]:
    """``clients`` concurrent clients sending ``endpoint`` requests for ``seconds`` (at most ``requests``);
    latencies and errors."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    times: list[float] = []
    errors: list[str] = []
    sent = 0
    deadline = time.perf_counter() + seconds
    key = "query" if endpoint == "search" else "question"
    requests = min(requests, MAX_REQUESTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < requests:
                question = questions[sent % len(questions)]
                sent += 1
                began = time.perf_counter()
                try:
                    answer = await client.post(f"/{endpoint}", json={key: question})
                    if answer.status_code != 200:
                        errors.append(f"{answer.status_code} {answer.text[:200]}")
                        continue
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                times.append((time.perf_counter() - began) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    p50, p95 = _ms(times)
    return {
        "clients": clients,
        "requests": len(times),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": p50,
        "p95_ms": p95,
        "rps": round(len(times) / elapsed, 1),
    }


def served(store: Path, questions: list[str], pipeline: str, *, ask: bool, seconds: float) -> list[dict[str, Any]]:
    from memflow.testing import running_server

    args = () if pipeline == "default" else ("--pipeline", pipeline)
    rows = []
    with running_server(store, *args) as url:
        endpoints = ["search", "ask"] if ask else ["search"]
        for endpoint in endpoints:
            # warm: every question once (models loaded, caches filled), as in-process
            asyncio.run(load(url, endpoint, questions, clients=1, seconds=3600, requests=len(questions)))
            for clients in CONCURRENCY:
                result = asyncio.run(load(url, endpoint, questions, clients=clients, seconds=seconds))
                rows.append({"pipeline": pipeline, "endpoint": endpoint, **result})
                print(f"  served {pipeline:7s} /{endpoint:6s} {clients:>2} clients: {result}", flush=True)
    return rows


def soak(store: Path, questions: list[str], paragraphs: list[str], seconds: float) -> dict[str, Any]:
    """32 clients searching for ``seconds`` while an ingest job adds ``paragraphs`` as files."""
    import httpx

    from memflow.testing import running_server

    with tempfile.TemporaryDirectory(prefix="memflow-soak-") as scratch:
        root = Path(scratch) / "root"
        (root / "new").mkdir(parents=True)
        for n, text in enumerate(paragraphs):
            (root / "new" / f"p{n:05d}.txt").write_text(text + "\n", encoding="utf-8")
        with running_server(store, "--ingest-root", str(root)) as url:
            job = httpx.post(url + "/ingest", json={"paths": ["new"], "collection": "soak"}, timeout=60).json()
            result = asyncio.run(load(url, "search", questions, clients=32, seconds=seconds))
            state = httpx.get(url + f"/jobs/{job['id']}", timeout=60).json()
            while state["state"] in ("queued", "running"):  # bounded by the job, itself bounded by its files
                time.sleep(0.5)
                state = httpx.get(url + f"/jobs/{job['id']}", timeout=60).json()
            finished = state["finished"]
            ingest_seconds = state["report"]["seconds"] if state["report"] else None
            # leave a reused --store as it was
            httpx.post(
                url + "/documents/delete", json={"where": {"collection": "soak"}, "collection": "soak"}, timeout=600
            )
    return {
        **result,
        "seconds": seconds,
        "ingest_files": len(paragraphs),
        "ingest_state": state["state"],
        "ingest_seconds": ingest_seconds,
        "ingest_finished": finished,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--soak-files", type=int, default=300)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serve.json")
    args = parser.parse_args()

    records, questions = squad(args.records + args.soak_files, args.squad)
    records, extra = records[: args.records], [r["text"] for r in records[args.records :]]
    questions = questions[: args.questions]
    with tempfile.TemporaryDirectory(prefix="memflow-serve-bench-") as scratch:
        store = args.store or Path(scratch) / "store"
        from memflow import Memory

        with Memory(store) as memory:
            if memory.stats().documents != len(records):
                memory.add(records)

        rows: list[dict[str, Any]] = []
        local: dict[str, dict[str, dict[str, Any]]] = {}
        for pipeline in ("default", "dense"):
            local[pipeline] = in_process(store, questions, pipeline, ask=pipeline == "default")
            print(f"  in-process {pipeline}: {local[pipeline]}", flush=True)
            rows += served(store, questions, pipeline, ask=pipeline == "default", seconds=args.seconds)
        soaked = soak(store, questions, extra, args.soak)
        print(f"  soak: {soaked}", flush=True)

    print(
        f"\nmemflow serve, {args.records} SQuAD dev paragraphs, {len(questions)} questions, {args.seconds:.0f} s a run"
    )
    print(f"{'pipeline':8s} {'endpoint':8s} {'clients':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'req/s':>7s} errors")
    for pipeline, endpoints in local.items():
        for endpoint, row in endpoints.items():
            print(
                f"{pipeline:8s} {endpoint:8s} {'in-proc':>7s} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} "
                f"{row['rps']:7.1f} {'-':>6s}"
            )
        for row in (r for r in rows if r["pipeline"] == pipeline):
            print(
                f"{pipeline:8s} {row['endpoint']:8s} {row['clients']:>7d} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} "
                f"{row['rps']:7.1f} {row['errors']:>6d}"
            )
    print(
        f"\nsoak: {soaked['requests']} searches by 32 clients in {args.soak:.0f} s while an ingest job wrote "
        f"{soaked['ingest_files']} files ({soaked['ingest_state']}, {soaked['ingest_seconds']} s): "
        f"{soaked['errors']} errors, p50 {soaked['p50_ms']} ms, p95 {soaked['p95_ms']} ms"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "python bench/serve.py " + " ".join(sys.argv[1:]),
                "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
                "records": args.records,
                "questions": len(questions),
                "seconds": args.seconds,
                "in_process": local,
                "served": rows,
                "soak": soaked,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
