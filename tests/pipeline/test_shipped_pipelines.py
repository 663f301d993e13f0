"""Every pipeline YAML this repository ships (pipelines/, bench/pipelines/) builds and passes the check
that runs before a pipeline does: a typo in one is a failing test, not a user's first error."""

from __future__ import annotations

from pathlib import Path

import pytest

from memflow.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*REPO.glob("pipelines/*.yaml"), *REPO.glob("bench/pipelines/*.yaml")])


def test_the_shipped_pipelines_are_found() -> None:
    names = {p.name for p in SHIPPED}
    assert {"ingest.yaml", "ask.yaml", "ask-hybrid.yaml", "ingest-sentences.yaml", "ingest-fp32.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_pipeline_builds(path: Path) -> None:
    pipeline = Pipeline.from_yaml(path)
    assert pipeline.components
    assert pipeline.name == path.stem
