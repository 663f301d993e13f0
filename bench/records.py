"""Records at application scale: `Memory.add` throughput on SQuAD dev paragraphs, then an upsert and delete
check on the same store.

    .venv/bin/python bench/records.py [--records 2000] [--changed 100] [--squad FILE]
                                      [--out bench/results/records.json]

Adds the first ``--records`` SQuAD dev paragraphs (ids ``Title/n``, metadata article and paragraph) to a
fresh store with the default ingest pipeline, timing the call (encoder load excluded: one record is added
first); adds them all again (unchanged: nothing rewritten); replaces ``--changed`` of them with new text;
deletes another ``--changed``. Then it checks what an application relies on and prints a table: counts in
SQL and FAISS, every replaced record's new text found first by its own words through the default search,
no deleted record returned by the default, dense or BM25 search for its own text, and the same after
reopening the store. Nothing is asserted; the "check" rows say ok or FAILED.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def squad_records(count: int, squad: Path = SQUAD) -> list[dict[str, Any]]:
    data = json.loads(squad.read_text(encoding="utf-8"))
    records = []
    for article in data["data"]:
        for n, paragraph in enumerate(article["paragraphs"]):
            records.append(
                {
                    "id": f"{article['title']}/{n}",
                    "text": paragraph["context"],
                    "metadata": {"article": article["title"], "paragraph": n},
                }
            )
    return records[:count]


def timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def run(count: int, changed: int, squad: Path = SQUAD) -> dict[str, Any]:
    from memflow import Memory

    records = squad_records(count, squad)
    replaced = records[:changed]
    deleted = records[changed : 2 * changed]
    rows: list[dict[str, Any]] = []
    checks: list[tuple[str, bool]] = []
    with tempfile.TemporaryDirectory() as directory:
        with Memory(Path(directory) / "store") as memory:
            memory.add("warm-up: loads the encoder before the timing", ids="warm-up")
            memory.delete("warm-up")
            _, seconds = timed(lambda: memory.add(records))
            stats = memory.stats()
            rows.append(
                {"step": f"add {count} records", "seconds": round(seconds, 2), "records/s": round(count / seconds, 1)}
            )
            rows[-1]["chunks"] = stats.chunks
            _, seconds = timed(lambda: memory.add(records))
            rows.append({"step": "add them again (unchanged)", "seconds": round(seconds, 2)})
            checks.append(("unchanged add rewrites nothing", memory.stats() == stats))

            new_texts = [f"Revised note {n}: {r['text'][::-1][:200]} zebra{n}quartz" for n, r in enumerate(replaced)]
            _, seconds = timed(
                lambda: memory.add(new_texts, ids=[r["id"] for r in replaced], metadata={"revised": True})
            )
            rows.append({"step": f"replace {changed} records", "seconds": round(seconds, 2)})
            _, seconds = timed(lambda: memory.delete([r["id"] for r in deleted]))
            rows.append({"step": f"delete {changed} records", "seconds": round(seconds, 2)})

            stats = memory.stats()
            checks.append((f"{count - changed} records stored", stats.documents == count - changed))
            checks.append(("SQL chunks == FAISS vectors", stats.chunks == stats.vectors))
            got = [memory.get(r["id"]) for r in replaced]
            checks.append(
                (
                    "replaced records read back new text and metadata",
                    all(
                        g is not None and g.text == t and g.metadata == {"revised": True}
                        for g, t in zip(got, new_texts, strict=True)
                    ),
                )
            )
            first = [memory.search(f"zebra{n}quartz", k=1) for n in range(changed)]
            checks.append(
                (
                    "each replaced record is the first hit for its own new words",
                    all(h and h[0].document == r["id"] for h, r in zip(first, replaced, strict=True)),
                )
            )
            old = sum(1 for r in replaced for h in memory.search(r["text"], k=10) if h.text == r["text"])
            checks.append(("no hit carries a replaced record's old text", old == 0))
            gone = {r["id"] for r in deleted}
            for name in ("default", "dense", "bm25"):
                with Memory(memory.store.directory, ask_pipeline=name) as asker:
                    found = sum(1 for r in deleted for h in asker.search(r["text"], k=10) if h.document in gone)
                checks.append((f"no deleted record in {name} search", found == 0))
        with Memory(Path(directory) / "store") as reopened:
            again = reopened.stats()
            found = sum(1 for r in deleted for h in reopened.search(r["text"], k=10) if h.document in gone)
            checks.append(("after reopening: counts and no deleted record", again == stats and found == 0))
    return {
        "records": count,
        "changed": changed,
        "rows": rows,
        "checks": [{"check": name, "ok": ok} for name, ok in checks],
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--squad", type=Path, default=SQUAD, help="SQuAD dev JSON (default: ../shared/data)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    result = run(args.records, args.changed, args.squad)
    print(f"{'step':<32} {'seconds':>8} {'records/s':>10} {'chunks':>7}")
    for row in result["rows"]:
        print(f"{row['step']:<32} {row['seconds']:>8} {row.get('records/s', ''):>10} {row.get('chunks', ''):>7}")
    for check in result["checks"]:
        print(f"check: {check['check']}: {'ok' if check['ok'] else 'FAILED'}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
