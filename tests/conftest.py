"""Shared fixtures: the real data sets beside the project, and fresh stores."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (read-only in CI). Tests that need it fail loudly if it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared data sets are missing: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_essays(shared_data: Path) -> Path:
    return shared_data / "pg-essays" / "essays"
