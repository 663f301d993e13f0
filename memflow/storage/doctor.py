"""`memflow doctor`: check that a store matches itself, and repair what can be rebuilt from SQL.

Checks, each reported with a one-line detail:
- schema: the store's schema version (and any migration this open applied);
- encoder: the encoder the store was built with against the one the pipelines configure;
- vectors: the FAISS file against the SQL rows (the source of truth): one vector per chunk row, no vector
  without a row, no duplicate ids, stored vectors equal to the SQL ones on a sample;
- recall: the vector index's recall@10 against exact search, measured on 200 stored vectors as queries
  (exact: brute force over the SQL vectors) for approximate indexes; 1.0 by construction for Flat. Below
  0.9 it warns (the store is usable, searches miss neighbours) with what to raise; ``repair`` retrains.
  Stored vectors are easier queries than real ones (a few points for IVF, more for HNSW, whose graph holds
  them): read the figure as an upper bound;
- chunks: per document, chunk ordinals 0..n-1, the recorded chunk count, every chunk's text equal to its span
  of the document, sentence spans inside their chunk (the chunk graph is derived from these);
- summaries: every summary slot's span holds its text and points at an existing chunk.
``repair=True`` rebuilds the FAISS file from SQL and fixes recorded chunk counts; what cannot be rebuilt
(text that no longer matches its span) is reported with the command that fixes it (forget and re-ingest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memflow.storage import vector_rows
from memflow.storage.index_build import ExactTop
from memflow.storage.index_policy import PARAMS_ENV
from memflow.storage.sql import SCHEMA_VERSION
from memflow.storage.store import Store
from memflow.storage.vectors import VectorMemory

__all__ = ["Check", "DoctorReport", "diagnose", "measure_recall"]

SAMPLE = 1000
#: Stored vectors used as queries for the recall check, and the recall below which it warns.
RECALL_QUERIES = 200
MIN_RECALL = 0.9


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    repaired: bool = False
    #: A failed check that is not damage (a low index recall): reported, but the store is still usable.
    warning: bool = False

    def __str__(self) -> str:
        status = "repaired" if self.repaired else "ok" if self.ok else "warn" if self.warning else "FAIL"
        return f"{status:>8}  {self.name:<9} {self.detail}"


@dataclass(slots=True)
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok or c.repaired or c.warning for c in self.checks)


def _check_vectors(store: Store, repair: bool) -> Check:
    dimension = store.setting("dimension")
    if dimension is None:
        return Check("vectors", True, "store is empty")
    on_disk = VectorMemory.load(store.directory, dimension=int(dimension), factory=store.index_factory, mmap=True)
    sql_ids = vector_rows.chunk_ids(store.engine)
    file_ids = on_disk.ids()
    duplicates = int(len(file_ids) - len(np.unique(file_ids)))
    missing = np.setdiff1d(sql_ids, file_ids)
    extra = np.setdiff1d(file_ids, sql_ids)
    problems = []
    if missing.size:
        problems.append(f"{missing.size} chunk rows have no vector")
    if extra.size:
        problems.append(f"{extra.size} vectors have no chunk row")
    if duplicates:
        problems.append(f"{duplicates} duplicate vector ids")
    behind = on_disk.generation != store.generation
    if behind:
        # A file saved before the last commits is normal after a crash or between saves: every open catches
        # it up from SQL. Missing or extra ids are only corruption when the file claims to be current.
        problems = [p for p in problems if "duplicate" in p]
    sample = np.intersect1d(sql_ids, file_ids)[:SAMPLE]
    if sample.size and on_disk.index.ntotal:
        try:
            stored = np.vstack([on_disk.index.reconstruct(int(i)) for i in sample])
            drift = float(np.abs(stored - store.chunk_vectors([int(i) for i in sample])).max())
            if drift > 1e-3 and "Flat" in on_disk.kind and "PQ" not in on_disk.kind:
                problems.append(f"stored vectors differ from SQL by up to {drift:.3g}")
        except RuntimeError:
            pass  # index types that cannot reconstruct (some IVF variants) skip this sample check
    detail = f"{len(sql_ids)} chunk rows, {len(file_ids)} vectors in {_index_name(on_disk)}"
    if behind:
        detail += (
            f"; the file reflects generation {on_disk.generation}, SQL {store.generation}: caught up from SQL on open"
        )
        if repair:
            store.vectors  # noqa: B018 - loading catches the file up from SQL
            store.save_vectors()
            return Check("vectors", True, detail + " -> saved", repaired=True)
    if not problems:
        return Check("vectors", True, detail)
    if repair:
        count = store.rebuild_vectors()
        return Check("vectors", False, f"{'; '.join(problems)} -> rebuilt {count} vectors from SQL", repaired=True)
    return Check("vectors", False, f"{detail}: {'; '.join(problems)} (run with --repair to rebuild from SQL)")


def _index_name(memory: VectorMemory) -> str:
    return memory.kind if memory.kind == memory.factory else f"{memory.factory} ({memory.kind})"


def measure_recall(store: Store, *, queries: int = RECALL_QUERIES, k: int = 10, seed: int = 0) -> tuple[float, int]:
    """recall@k of the store's vector memory (as searches use it) against exact search: ``queries`` stored
    vectors, drawn at random, each searched for its k nearest other chunks; exact is brute force over
    every vector in SQL, streamed. Returns (recall, queries)."""
    memory = store.vectors
    ids = vector_rows.chunk_ids(store.engine)
    if len(ids) <= k:
        return 1.0, 0
    rng = np.random.default_rng(seed)
    query_ids, query_vectors = vector_rows.vectors_of(
        store.engine, rng.choice(ids, size=min(queries, len(ids)), replace=False)
    )
    truth = ExactTop(query_vectors, query_ids, k)
    for batch_ids, vectors in vector_rows.iter_vectors(store.engine):
        truth.update(batch_ids, vectors)
    _, found = memory.search(query_vectors, k + 1)
    return truth.recall(found), len(query_ids)


def _check_recall(store: Store, repair: bool) -> Check:
    if store.setting("dimension") is None:
        return Check("recall", True, "store is empty")
    memory = store.vectors
    name = _index_name(memory)
    if not memory.approximate:
        return Check("recall", True, f"recall@10 1.0 by construction: {name} is exact search")
    recall, count = measure_recall(store)
    params = ",".join(f"{k}={v}" for k, v in memory.search_params.items()) or "defaults"
    if memory.tuned:
        params += " (tuned when built)"
    detail = f"recall@10 {recall:.3f} against exact search ({count} stored vectors as queries; {name}, {params})"
    if recall >= MIN_RECALL:
        return Check("recall", True, detail)
    if repair:
        store.rebuild_vectors()
        again, _ = measure_recall(store)
        if again >= MIN_RECALL:
            return Check("recall", False, f"{detail} -> retrained from SQL: {again:.3f}", repaired=True)
        detail += f"; retrained from SQL: still {again:.3f}"
    return Check(
        "recall",
        False,
        f"{detail}: below {MIN_RECALL}; raise the search effort "
        f"(e.g. ${PARAMS_ENV}=nprobe=256,efSearch=256) or retrain the index "
        "(memflow doctor --repair)",
        warning=True,
    )


def _check_chunks(store: Store, repair: bool) -> list[Check]:
    bad_text: list[str] = []
    bad_order: list[str] = []
    bad_count: list[int] = []
    bad_slots: list[str] = []
    documents = 0
    for document in store.document_layouts():
        documents += 1
        chunks = document.chunks
        if [ordinal for ordinal, *_ in chunks] != list(range(len(chunks))):
            bad_order.append(document.uri)
        if document.chunk_count != len(chunks):
            bad_count.append(document.id)
        for ordinal, start, end, text, spans in chunks:
            inside = bool(((spans[:, 0] >= start) & (spans[:, 1] <= end)).all()) if len(spans) else True
            if document.text[start:end] != text or not inside:
                bad_text.append(f"{document.uri} chunk {ordinal}")
        for slot in document.slots:
            if document.text[slot["start"] : slot["end"]] != slot["text"] or slot["chunk"] >= len(chunks):
                bad_slots.append(document.uri)
                break
    checks = []
    problems = []
    if bad_order:
        problems.append(f"{len(bad_order)} documents with gaps in chunk order (e.g. {bad_order[0]})")
    if bad_text:
        problems.append(f"{len(bad_text)} chunks whose text or sentences leave their span (e.g. {bad_text[0]})")
    if problems:
        checks.append(Check("chunks", False, "; ".join(problems) + ": forget and re-ingest those documents"))
    else:
        checks.append(Check("chunks", True, f"{documents} documents: spans exact, chunk order complete"))
    if bad_count:
        if repair:
            store.recount_chunks(bad_count)
            checks.append(Check("counts", False, f"fixed the chunk count of {len(bad_count)} documents", repaired=True))
        else:
            checks.append(
                Check("counts", False, f"{len(bad_count)} documents record a wrong chunk count (run with --repair)")
            )
    if bad_slots:
        checks.append(
            Check(
                "summaries",
                False,
                f"{len(bad_slots)} summary states do not match their document "
                f"(e.g. {bad_slots[0]}): forget and re-ingest",
            )
        )
    else:
        checks.append(Check("summaries", True, "every summary slot holds its span's text"))
    return checks


def diagnose(store: Store, *, encoder: tuple[str, int] | None = None, repair: bool = False) -> DoctorReport:
    """Check ``store``; ``encoder`` is the (model id, dimension) the pipelines configure, if known."""
    report = DoctorReport()
    version = int(store.setting("schema_version"))
    migrated = f" (this open applied: {'; '.join(store.migrations)})" if store.migrations else ""
    report.checks.append(Check("schema", version == SCHEMA_VERSION, f"version {version}{migrated}"))
    stored = (store.setting("encoder"), store.setting("dimension"))
    if encoder is None or stored[0] is None:
        report.checks.append(Check("encoder", True, f"store records {stored[0] or 'none yet'} ({stored[1]} dims)"))
    elif (stored[0], stored[1]) != encoder:
        report.checks.append(
            Check(
                "encoder",
                False,
                f"store was built with {stored[0]} ({stored[1]} dims) but the "
                f"pipeline configures {encoder[0]} ({encoder[1]} dims)",
            )
        )
    else:
        report.checks.append(Check("encoder", True, f"{stored[0]} ({stored[1]} dims) matches the pipeline"))
    report.checks.append(_check_vectors(store, repair))
    report.checks.append(_check_recall(store, repair))
    report.checks.extend(_check_chunks(store, repair))
    return report
