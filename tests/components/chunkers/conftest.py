"""Fixtures for the chunker tests: the PG essays as Documents, and the encoder's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from memflow.models import load_tokenizer
from memflow.types import Document


@pytest.fixture(scope="session")
def pg_documents(pg_essays: Path) -> list[Document]:
    paths = sorted(pg_essays.glob("*.txt"))
    assert len(paths) == 49, f"expected the 49 PG essays in {pg_essays}, found {len(paths)}"
    return [Document(uri=str(p), text=p.read_text(encoding="utf-8"), content_hash="x") for p in paths]


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return load_tokenizer("default")
