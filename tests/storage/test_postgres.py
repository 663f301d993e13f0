"""The same store on the real PostgreSQL server (127.0.0.1:5432, database test), in a schema of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from memflow import Memory


@pytest.mark.postgres
def test_ingest_ask_and_reingest_on_postgresql(tmp_path: Path, pg_essays: Path, postgres_url: str) -> None:
    paths = [str(pg_essays / f"{name}.txt") for name in ("foundervisa", "sun", "nft")]
    with Memory(tmp_path / "store", url=postgres_url) as memory:
        report = memory.ingest(paths)
        assert len(report.ingested) == 3
        assert memory.store.engine.dialect.name == "postgresql"
        assert not (tmp_path / "store" / "memflow.db").exists()
        answer = memory.ask("What could the government do to increase the number of startups at no cost?")
        assert "visa for startup founders" in answer.text
        assert answer.citations[0].document.endswith("foundervisa.txt")
        again = memory.ingest(paths)
        assert again.ingested == [] and len(again.unchanged) == 3
        stats = memory.stats()
        assert stats.documents == 3 and stats.chunks == stats.vectors
        assert memory.summary("sun.txt").slots
        assert memory.forget(["nft.txt"]) == 1 and memory.stats().documents == 2
