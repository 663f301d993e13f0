"""memflow doctor finds what is wrong with a store and repairs what SQL can rebuild."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import text

from memflow.components.summarizers.centrality import CentralitySummarizer
from memflow.storage.doctor import diagnose
from memflow.storage.store import Store
from memflow.storage.vectors import INDEX_FILE, VectorMemory
from memflow.testing import make_chunks, make_document

TEXT = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu."
SPANS = [(0, 17), (18, 36), (37, 52), (53, 71)]


def _healthy(tmp_path: Path, store_url: str | None) -> Store:
    store = Store(tmp_path / "store", url=store_url)
    store.check_encoder("test-model", 8, record=True)
    store.check_index("Flat")
    for n in range(3):
        document = make_document(TEXT, uri=f"/doc{n}")
        chunks = make_chunks(document, SPANS, dimension=8, seed=n)
        store.write_documents([(document, chunks, CentralitySummarizer(slots=2).summarize(chunks))])
    store.save_vectors()
    return store


def _failed(store: Store, **kwargs: object) -> dict[str, str]:
    report = diagnose(store, **kwargs)  # type: ignore[arg-type]
    return {c.name: c.detail for c in report.checks if not c.ok and not c.repaired}


def test_a_healthy_store_passes_every_check(tmp_path: Path, store_url: str | None) -> None:
    store = _healthy(tmp_path, store_url)
    report = diagnose(store, encoder=("test-model", 8))
    assert report.ok, [str(c) for c in report.checks]
    assert {c.name for c in report.checks} >= {"schema", "encoder", "vectors", "chunks", "summaries"}


def test_encoder_mismatch_is_reported(tmp_path: Path, store_url: str | None) -> None:
    failed = _failed(_healthy(tmp_path, store_url), encoder=("other-model", 768))
    assert "other-model (768 dims)" in failed["encoder"] and "test-model (8 dims)" in failed["encoder"]


def test_vectors_missing_from_a_current_file_are_found_and_rebuilt(tmp_path: Path, store_url: str | None) -> None:
    store = _healthy(tmp_path, store_url)
    generation = store.generation
    memory = VectorMemory.load(store.directory, dimension=8, factory="Flat")
    memory.remove(memory.ids()[:2])
    memory.add(np.array([999], dtype=np.int64), np.ones((1, 8), dtype=np.float32))
    memory.save(store.directory, generation=generation)  # claims to be current, but is not
    failed = _failed(store)
    assert "2 chunk rows have no vector" in failed["vectors"] and "1 vectors have no chunk row" in failed["vectors"]
    repaired = diagnose(store, repair=True)
    assert repaired.ok and any(c.repaired for c in repaired.checks)
    assert diagnose(store).ok
    assert sorted(Store(store.directory, url=store.url).vectors.ids().tolist()) == list(range(1, 13))


def test_a_lagging_file_is_not_corruption_and_repair_saves_it(tmp_path: Path, store_url: str | None) -> None:
    store = _healthy(tmp_path, store_url)
    (store.directory / INDEX_FILE).unlink()
    assert diagnose(store).ok
    report = diagnose(store, repair=True)
    assert any(c.repaired for c in report.checks)
    assert VectorMemory.load(store.directory, dimension=8, factory="Flat").ntotal == 12


def test_tampered_text_and_counts_are_found(tmp_path: Path, store_url: str | None) -> None:
    store = _healthy(tmp_path, store_url)
    with store.engine.begin() as db:  # behind memflow's back, on either backend
        db.execute(text("UPDATE chunks SET text = 'tampered' WHERE id = 2"))
        db.execute(text("UPDATE documents SET chunk_count = 7 WHERE id = 3"))
    failed = _failed(store)
    assert "1 chunks whose text" in failed["chunks"] and "/doc0 chunk 1" in failed["chunks"]
    assert "1 documents record a wrong chunk count" in failed["counts"]
    diagnose(store, repair=True)
    assert "counts" not in _failed(store)
