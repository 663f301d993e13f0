"""The one ingest loop: batching, the writer lock, saves and the report, with the engine as a part."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from memflow import Memory
from memflow.components.base import RunContext
from memflow.ingest import LocalEngine, ingest
from memflow.types import Chunk


class CountingEngine(LocalEngine):
    """The local engine, recording the batches it is given and failing on request at one of them."""

    def __init__(self, *args: object, fail_at: int | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[list[str]] = []
        self.fail_at = fail_at
        self.closed = False

    def run(self, batches: Sequence[list[str]], context: RunContext) -> Iterator[list[Chunk]]:
        try:
            for index, written in enumerate(super().run(batches, context)):
                if index == self.fail_at:
                    raise RuntimeError("engine failed")
                self.batches.append(batches[index])
                yield written
        finally:
            self.closed = True


def test_the_loop_hands_batches_in_order_and_counts_what_they_wrote(tmp_path: Path, essay_paths: list[Path]) -> None:
    with Memory(tmp_path / "store") as memory:
        engine = CountingEngine(memory.pipeline("ingest"))
        report = ingest(
            memory.store, memory.pipeline("ingest"), [str(p) for p in essay_paths[:5]], engine=engine, batch_files=2
        )
        assert [len(b) for b in engine.batches] == [2, 2, 1] and engine.closed
        assert [Path(p).name for b in engine.batches for p in b] == [p.name for p in essay_paths[:5]]
        assert len(report.ingested) == 5 and report.chunks == memory.stats().chunks > 0
        assert set(report.stages) >= {"list", "save"}


def test_an_engine_failing_mid_run_keeps_the_batches_written_before(tmp_path: Path, essay_paths: list[Path]) -> None:
    with Memory(tmp_path / "store") as memory:
        engine = CountingEngine(memory.pipeline("ingest"), fail_at=1)
        with pytest.raises(RuntimeError, match="engine failed"):
            ingest(
                memory.store, memory.pipeline("ingest"), [str(p) for p in essay_paths[:4]], engine=engine, batch_files=2
            )
        assert engine.closed
        # batch 1 was written by the pipeline before the engine failed on it: both batches are committed
        assert len(memory.documents()) == 4
    with Memory(tmp_path / "store") as reopened:
        assert reopened.stats().vectors == reopened.stats().chunks
        assert len(reopened.ingest([str(p) for p in essay_paths[:4]]).unchanged) == 4
