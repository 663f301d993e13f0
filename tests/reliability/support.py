"""Corpora and helpers for the fault-injection tests: real processes, real files, real stores."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

MEMFLOW = [sys.executable, "-m", "memflow.cli.main"]


def squad_paragraphs(shared_data: Path) -> list[str]:
    data = json.loads((shared_data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    return [p["context"] for article in data["data"] for p in article["paragraphs"]]


def write_corpus(directory: Path, paragraphs: list[str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, text in enumerate(paragraphs):
        path = directory / f"p{n:04d}.txt"
        path.write_text(text + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def sql_counts(store: Path) -> tuple[int, int]:
    """(documents, chunks) as committed, read with plain sqlite3 (no memflow code in the way)."""
    if not (store / "memflow.db").exists():
        return 0, 0
    with sqlite3.connect(store / "memflow.db", timeout=30) as db:
        try:
            documents = db.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return 0, 0
    return int(documents), int(chunks)
