"""Scale benchmark: a synthetic corpus of 1,000,000+ chunks through the real store write path, then every
FAISS index type over the same vectors.

    .venv/bin/python bench/scale.py                        # 1M chunks into SQLite, --pg-chunks into PostgreSQL
    .venv/bin/python bench/scale.py --chunks 100000 --pg-chunks 20000 --hnsw-chunks 50000   # a quick run
    add --json for machines; bench/scale.py --print RUN.json prints the tables of a saved --json run.
    Nothing here is asserted: it measures and prints tables.

The corpus: sentences of the two Gutenberg books in ../shared/data (War and Peace, Les Misérables), read in
runs from random places, with variations (a tenth of the sentences swapped for random ones, some words
replaced, some sentences dropped), as documents of ~20 chunks of ~1,000 characters (one sentence of overlap
between neighbouring chunks, like chunkers.sentences). The encoder is not the point, so embeddings are
cheap and deterministic: a hashing-trick bag of words (each word adds its idf, with a hashed sign, to 8
hashed coordinates of 384), normalized. Texts that share words are near each other, so an index's recall
means something, unlike with random vectors. Each sentence keeps its own float16 vector, as a real ingest
stores.

Stages (each row of the table):
- ingest into SQLite and into PostgreSQL through ``Store.write_documents`` (documents, chunks with their
  vectors and sentence vectors, BM25 postings; one transaction per batch of documents): rows/s, store size on
  disk, peak RSS of the process (each backend in its own subprocess) and the RSS growth per chunk. The
  ingest streams (batches of documents, nothing kept), so what grows is the writer's in-memory vector index:
  1,536 bytes a vector for Flat; IVF's inverted lists, grown list by list as batches arrive, hold 1.6-2.1
  times their payload in this FAISS build (measured alone: 934 MB resident for 442 MB of IVF1024 lists).
- ``auto`` on the SQLite store: what the store's ``index: auto`` rebuilds from SQL at that size (train on a
  random sample, add every vector, tune nprobe on 200 stored vectors), and the index file the ingest left
  (chosen and re-chosen by ``auto`` as the store grew), loaded memory-mapped as a reader loads it.
- each index type (Flat, the auto choice, IVF across nprobe, HNSW32 across efSearch and tuned, IVF-PQ tuned,
  re-ranked from SQL and not) over the same vectors: build (train + add) time, single-query p50/p95 latency
  and recall@10 against exact (Flat) search, for 1,000 queries that are perturbed chunk texts (a fifth of
  their words dropped, an eighth replaced by random words) through the same embedding.

PostgreSQL gets fewer chunks by default (--pg-chunks 100,000): through the full write path it takes ~220
rows/s here (2 shared cores), so 1M would take over an hour; its rows/s and bytes per chunk are what
matter. Results of the full run: bench/results/scale.txt and scale.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BOOKS = ["2600-0_war_and_peace.txt", "135-0_les_miserables.txt"]
POSTGRES_SERVER = "postgresql+psycopg://root@127.0.0.1:5432/test"
DIM = 384
HASHES = 8  # coordinates each word touches
CHUNKS_PER_DOC = 20
REGION = 300  # a document's sentences come from within this many sentences of where it starts ...
JUMP_LOCAL = 0.3  # ... in runs: after each sentence, a jump elsewhere in the region ...
JUMP_GLOBAL = 0.1  # ... or to a random sentence of either book
PG_CHUNKS = 100_000  # PostgreSQL through the full write path: ~200 rows/s here, 1M would take 1.5 hours
HNSW_CHUNKS = 1_000_000
FLAT_LATENCY_QUERIES = 200  # exact search of 1M vectors is ~100+ ms a query: its latency on a subset
_WORD = re.compile(r"[^\W_]+")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# On this shared 2-core machine FAISS's spinning OpenMP threads wait for each other whenever another process
# holds a core (an IVF add of 10 vectors: 20 ms instead of 0.06 ms). Passive waiting, set before FAISS
# loads, keeps build times about what a dedicated machine shows. Overridable from the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# -- the synthetic corpus -----------------------------------------------------------------------------------


def _book_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8-sig")
    start = text.find("***", text.find("*** START OF")) + 3
    end = text.find("*** END OF")
    return text[start : end if end > 0 else len(text)]


@dataclass
class Base:
    """The source sentences and the embedding of every word."""

    sentences: list[str]
    words: list[npt.NDArray[np.int32]]  # word ids of each sentence
    vocabulary: list[str]
    vocab_ids: dict[str, int]
    word_dims: npt.NDArray[np.int64]  # (V, HASHES) coordinates each word adds to
    word_weights: npt.NDArray[np.float32]  # (V, HASHES) idf times a hashed sign
    raw: npt.NDArray[np.float32]  # (S, DIM) unnormalized bag-of-words vector of each sentence

    @classmethod
    def load(cls) -> Base:
        from memflow.components.chunkers.sentence_split import split_sentences

        sentences: list[str] = []
        for name in BOOKS:
            text = _book_text(DATA / "gutenberg" / name)
            for paragraph in re.split(r"\n\s*\n", text):
                flat = " ".join(paragraph.split())
                if len(flat) < 20:
                    continue  # headings, chapter numbers
                sentences.extend(flat[s:e] for s, e in split_sentences(flat) if e - s >= 12)
        vocab_ids: dict[str, int] = {}
        words = []
        df: list[int] = []
        for sentence in sentences:
            ids = [vocab_ids.setdefault(w, len(vocab_ids)) for w in _WORD.findall(sentence.lower())]
            while len(df) < len(vocab_ids):
                df.append(0)
            for i in set(ids):
                df[i] += 1
            words.append(np.asarray(ids, dtype=np.int32))
        vocabulary = list(vocab_ids)
        idf = np.log(len(sentences) / (np.asarray(df, dtype=np.float64) + 1.0)).clip(0.1).astype(np.float32)
        dims = np.empty((len(vocabulary), HASHES), dtype=np.int64)
        signs = np.empty((len(vocabulary), HASHES), dtype=np.float32)
        for i, word in enumerate(vocabulary):
            digest = hashlib.blake2b(word.encode(), digest_size=3 * HASHES).digest()
            dims[i] = np.frombuffer(digest[: 2 * HASHES], dtype="<u2") % DIM
            signs[i] = np.where(np.frombuffer(digest[2 * HASHES :], dtype=np.uint8) & 1, 1.0, -1.0)
        base = cls(
            sentences, words, vocabulary, vocab_ids, dims, signs * idf[:, None], np.zeros((0, DIM), dtype=np.float32)
        )
        base.raw = base.embed_many(words)
        return base

    def embed_many(self, word_lists: list[npt.NDArray[np.int32]]) -> npt.NDArray[np.float32]:
        """Unnormalized bag-of-words vectors of word-id lists (one row each)."""
        out = np.zeros((len(word_lists), DIM), dtype=np.float32)
        if not word_lists:
            return out
        lengths = np.asarray([len(w) for w in word_lists])
        ids = np.concatenate(word_lists) if lengths.sum() else np.zeros(0, dtype=np.int32)
        rows = np.repeat(np.arange(len(word_lists)), lengths)
        flat = (rows[:, None] * DIM + self.word_dims[ids]).ravel()
        np.add.at(out.reshape(-1), flat, self.word_weights[ids].ravel())
        return out

    def word_ids(self, text: str) -> npt.NDArray[np.int32]:
        return np.asarray(
            [self.vocab_ids[w] for w in _WORD.findall(text.lower()) if w in self.vocab_ids], dtype=np.int32
        )

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Normalized embeddings of arbitrary texts (queries)."""
        return _normalize(self.embed_many([self.word_ids(t) for t in texts]))


def _normalize(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class SyntheticChunk:
    start: int
    end: int
    sentences: list[tuple[int, int]]
    vector: npt.NDArray[np.float32]
    sentence_vectors: npt.NDArray[np.float16]


@dataclass
class SyntheticDocument:
    uri: str
    title: str
    text: str
    chunks: list[SyntheticChunk]


def synthetic_documents(base: Base, chunks: int, *, seed: int = 0) -> Iterator[SyntheticDocument]:
    """Documents of ~CHUNKS_PER_DOC chunks of ~1,000 characters, ``chunks`` chunks in all, deterministic."""
    rng = np.random.default_rng(seed)
    n_sent = len(base.sentences)
    made = 0
    doc_no = 0
    while made < chunks:
        want = min(CHUNKS_PER_DOC, chunks - made)
        position = int(rng.integers(n_sent))
        texts: list[str] = []
        raws: list[npt.NDArray[np.float32]] = []
        mutated: list[tuple[int, npt.NDArray[np.int32]]] = []
        pieces: list[tuple[int, int]] = []  # sentence spans in the document text
        cursor = 0
        chunk_spans: list[tuple[int, int]] = []  # (first sentence, last sentence + 1)
        first, size, target = 0, 0, int(rng.integers(850, 1150))
        centre = position
        while len(chunk_spans) < want:
            roll = rng.random()
            if roll < JUMP_GLOBAL:  # a sentence from anywhere
                index = int(rng.integers(n_sent))
            elif roll < JUMP_GLOBAL + JUMP_LOCAL:  # a jump within the document's region of the book
                position = (centre + int(rng.integers(-REGION, REGION + 1))) % n_sent
                index = position
            else:  # the next sentence
                index = position
            position = (position + 1) % n_sent
            sentence = base.sentences[index]
            if rng.random() < 0.08:  # a few words replaced by others
                words = sentence.split(" ")
                for _ in range(int(rng.integers(1, 4))):
                    words[int(rng.integers(len(words)))] = base.vocabulary[int(rng.integers(len(base.vocabulary)))]
                sentence = " ".join(words)
                mutated.append((len(texts), base.word_ids(sentence)))
                raws.append(np.zeros(DIM, dtype=np.float32))
            else:
                raws.append(base.raw[index])
            sep = "\n\n" if texts and rng.random() < 0.15 else " " if texts else ""
            cursor += len(sep)
            pieces.append((cursor, cursor + len(sentence)))
            cursor += len(sentence)
            texts.append(sep + sentence)
            size += len(sentence) + 1
            if size >= target:
                last = len(pieces)
                chunk_spans.append((first, last))
                # one sentence of overlap, as chunkers.sentences does, unless the chunk is a single sentence
                first = last - 1 if last - first > 3 else last
                size = sum(e - s + 1 for s, e in pieces[first:last])
                target = int(rng.integers(850, 1150))
        if mutated:
            fresh = base.embed_many([w for _, w in mutated])
            for (at, _), row in zip(mutated, fresh, strict=True):
                raws[at] = row
        raw = np.vstack(raws)
        sentence_unit = _normalize(raw)
        text = "".join(texts)
        out = []
        for lo, hi in chunk_spans:
            vector = _normalize(raw[lo:hi].sum(axis=0, keepdims=True))[0]
            out.append(
                SyntheticChunk(
                    pieces[lo][0], pieces[hi - 1][1], pieces[lo:hi], vector, sentence_unit[lo:hi].astype(np.float16)
                )
            )
        made += len(out)
        yield SyntheticDocument(f"synthetic://gutenberg/{seed}/{doc_no:08d}", f"Synthetic {doc_no}", text, out)
        doc_no += 1


def perturbed_queries(
    base: Base, documents: list[SyntheticDocument], count: int, *, seed: int = 1
) -> npt.NDArray[np.float32]:
    """``count`` queries: chunk texts with a third of their words dropped or replaced, embedded alike."""
    rng = np.random.default_rng(seed)
    chunks = [(d, c) for d in documents for c in d.chunks]
    picks = rng.choice(len(chunks), size=min(count, len(chunks)), replace=False)
    texts = []
    for p in picks:
        document, chunk = chunks[int(p)]
        words = document.text[chunk.start : chunk.end].split()
        kept = []
        for word in words:
            roll = rng.random()
            if roll < 0.2:
                continue
            kept.append(base.vocabulary[int(rng.integers(len(base.vocabulary)))] if roll < 0.33 else word)
        texts.append(" ".join(kept))
    return base.embed(texts)


# -- ingest through the store's write path ------------------------------------------------------------------


def _records(document: SyntheticDocument) -> tuple[Any, list[Any]]:
    from memflow.types import Chunk, Document, Sentence

    record = Document(
        uri=document.uri,
        text=document.text,
        title=document.title,
        content_hash=hashlib.sha256(document.text.encode()).hexdigest(),
    )
    chunks = []
    for ordinal, chunk in enumerate(document.chunks):
        text = document.text[chunk.start : chunk.end]
        chunks.append(
            Chunk(
                document=record,
                ordinal=ordinal,
                start=chunk.start,
                end=chunk.end,
                text=text,
                token_count=len(text) // 4 + 2,  # ~4 characters a MiniLM token, plus [CLS] and [SEP]
                sentences=[Sentence(s, e, document.text[s:e]) for s, e in chunk.sentences],
                vector=chunk.vector,
                sentence_vectors=chunk.sentence_vectors,
            )
        )
    return record, chunks


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _ingest_child(
    backend: str, chunks: int, directory: Path, url: str | None, batch_docs: int, save_every: float
) -> dict[str, Any]:
    """In a subprocess: write ``chunks`` synthetic chunks into a fresh store, as Memory.ingest does (one
    transaction per batch of documents, the FAISS file saved every ``save_every`` seconds and at the end)."""
    from memflow.storage.store import Store

    base = Base.load()
    baseline = _rss_mb()
    store = Store(directory, url=url)
    store.check_encoder("synthetic-hashing-bow-384", DIM, record=True)
    store.check_index("auto")
    written = documents = saves = 0
    write_s = save_s = 0.0
    checkpoints: list[dict[str, Any]] = []
    marks = [int(chunks * f) for f in (0.1, 0.25, 0.5, 0.75)]
    started = last_save = time.perf_counter()
    generated = synthetic_documents(base, chunks)
    with store.writer():
        while True:
            batch = [_records(d) for _, d in zip(range(batch_docs), generated, strict=False)]
            if not batch:
                break
            t0 = time.perf_counter()
            store.write_documents([(record, chunk_list, None) for record, chunk_list in batch])
            write_s += time.perf_counter() - t0
            written += sum(len(c) for _, c in batch)
            documents += len(batch)
            if time.perf_counter() - last_save >= save_every:
                t0 = time.perf_counter()
                store.save_vectors()
                save_s += time.perf_counter() - t0
                saves += 1
                last_save = time.perf_counter()
            while marks and written >= marks[0]:
                marks.pop(0)
                checkpoints.append(
                    {
                        "chunks": written,
                        "rss_mb": round(_rss_mb(), 1),
                        "index_mb": round(store.vectors.ntotal * DIM * 4 / 2**20, 1),
                    }
                )
        before_final = _rss_mb()
        t0 = time.perf_counter()
        store.save_vectors()
        final_save_s = time.perf_counter() - t0
    checkpoints.append(
        {
            "chunks": written,
            "rss_mb": round(before_final, 1),
            "index_mb": round(store.vectors.ntotal * DIM * 4 / 2**20, 1),
        }
    )
    elapsed = time.perf_counter() - started
    postings = int(store.lexical.stats()["chunks"])
    kind = store.vectors.kind
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()
    first, last = checkpoints[1] if len(checkpoints) > 2 else checkpoints[0], checkpoints[-1]
    span = max(1, last["chunks"] - first["chunks"])
    return {
        "backend": backend,
        "documents": documents,
        "chunks": written,
        "lexical_chunks": postings,
        "wall_s": round(elapsed, 1),
        "write_s": round(write_s, 1),
        "rows_per_s": round(written / write_s, 1),
        "index_saves": saves + 1,
        "save_s": round(save_s + final_save_s, 1),
        "final_save_s": round(final_save_s, 1),
        "index": kind,
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_growth_bytes_per_chunk": round((last["rss_mb"] - first["rss_mb"]) * 2**20 / span),
        "index_bytes_per_chunk": DIM * 4,
        "checkpoints": checkpoints,
    }


def _run_child(args: list[str]) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, "_child", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench child failed ({' '.join(args[:2])}):\n{result.stderr[-4000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _sqlite_size(directory: Path) -> int:
    import sqlite3

    database = directory / "memflow.db"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in directory.glob("memflow.db*"))


def _postgres_size(engine: Any, schema: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.exec_driver_sql(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s AND c.relkind = 'r'",
                {"s": schema},
            ).scalar()
        )


def bench_ingest(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows = []
    sqlite_dir = work / "sqlite-store"
    row = _run_child(["sqlite", str(args.chunks), str(sqlite_dir), "", str(args.batch_docs), str(args.save_every)])
    row["store_mb"] = round(_sqlite_size(sqlite_dir) / 2**20, 1)
    row["faiss_file_mb"] = round((sqlite_dir / "vectors.faiss").stat().st_size / 2**20, 1)
    rows.append(row)
    if args.pg_chunks > 0:
        import sqlalchemy

        schema = f"memflow_scale_{uuid.uuid4().hex[:12]}"
        admin = sqlalchemy.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        except sqlalchemy.exc.OperationalError as exc:
            rows.append({"backend": "postgresql", "skipped": f"no server at 127.0.0.1:5432 ({exc.orig})"})
            return rows
        try:
            url = f"{POSTGRES_SERVER}?options=-csearch_path%3D{schema}"
            row = _run_child(
                [
                    "postgresql",
                    str(args.pg_chunks),
                    str(work / "pg-store"),
                    url,
                    str(args.batch_docs),
                    str(args.save_every),
                ]
            )
            with admin.connect() as connection:
                connection.exec_driver_sql(f"VACUUM ANALYZE {schema}.chunks")
            row["store_mb"] = round(_postgres_size(admin, schema) / 2**20, 1)
            row["faiss_file_mb"] = round((work / "pg-store" / "vectors.faiss").stat().st_size / 2**20, 1)
            rows.append(row)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()
    return rows


# -- index types over the same vectors ----------------------------------------------------------------------


def _load_vectors(directory: Path) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from memflow.storage.sql import ChunkRow
    from memflow.storage.store import Store

    with Store(directory) as store, Session(store.engine) as session:
        count = int(session.scalar(select(func.count()).select_from(ChunkRow)) or 0)
        ids = np.empty(count, dtype=np.int64)
        vectors = np.empty((count, DIM), dtype=np.float32)
        at = 0
        for part in (
            session.execute(select(ChunkRow.id, ChunkRow.vector).order_by(ChunkRow.id)).yield_per(8192).partitions(8192)
        ):
            ids[at : at + len(part)] = [r[0] for r in part]
            vectors[at : at + len(part)] = np.frombuffer(b"".join(r[1] for r in part), dtype="<f4").reshape(-1, DIM)
            at += len(part)
    return ids, vectors


def _queries(directory: Path, base: Base, count: int, seed: int = 1) -> npt.NDArray[np.float32]:
    """Perturbed chunk texts: a fifth of the words dropped, an eighth replaced by random words."""
    from memflow.storage.store import Store

    rng = np.random.default_rng(seed)
    with Store(directory) as store:
        ids = store.chunk_ids_all()
        picked = rng.choice(len(ids), size=min(count, len(ids)), replace=False)
        texts = [c.text for c in store.chunks([ids[int(i)] for i in picked])]
    perturbed = []
    for text in texts:
        kept = []
        for word in text.split():
            roll = rng.random()
            if roll < 0.2:
                continue
            kept.append(base.vocabulary[int(rng.integers(len(base.vocabulary)))] if roll < 0.33 else word)
        perturbed.append(" ".join(kept))
    return base.embed(perturbed)


def _latency(search: Any, queries: npt.NDArray[np.float32]) -> tuple[float, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query.reshape(1, -1))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return round(statistics.median(times), 3), round(times[int(0.95 * (len(times) - 1))], 3)


def _recall(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    return round(
        float(
            np.mean(
                [len(set(f.tolist()) & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth, strict=True)]
            )
        ),
        4,
    )


def _evaluate(
    name: str,
    memory: Any,
    queries: npt.NDArray[np.float32],
    truth: npt.NDArray[np.int64],
    build_s: float,
    *,
    threads: int,
    vectors: int,
    **extra: Any,
) -> dict[str, Any]:
    import faiss

    _, found = memory.search(queries, 10)
    faiss.omp_set_num_threads(threads)
    timed = queries[:FLAT_LATENCY_QUERIES] if name == "Flat" else queries
    p50, p95 = _latency(lambda q: memory.search(q, 10), timed)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    params = ",".join(f"{k}={v}" for k, v in memory.search_params.items()) or "-"
    return {
        "index": name,
        "vectors": vectors,
        "build_s": round(build_s, 1),
        "search": params,
        "p50_ms": p50,
        "p95_ms": p95,
        "recall@10": _recall(found, truth),
        **extra,
    }


TUNED = "tuned as a rebuild tunes: recall@10 >= 0.95 on 200 stored vectors"


def _self_truth(ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> Any:
    """Exact top 10 of 200 random stored vectors (their own id left out): what index_build.tune uses."""
    from memflow.storage import index_build, index_policy

    rng = np.random.default_rng(7)
    picked = rng.choice(len(ids), size=min(index_policy.TUNE_QUERIES, len(ids)), replace=False)
    truth = index_build.ExactTop(vectors[picked], ids[picked], 10)
    for at in range(0, len(ids), 65536):
        truth.update(ids[at : at + 65536], vectors[at : at + 65536])
    return truth


def bench_indexes(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    import faiss

    from memflow.storage import index_build, index_policy
    from memflow.storage.index_policy import IndexPolicy
    from memflow.storage.store import Store
    from memflow.storage.vectors import VectorMemory

    directory = work / "sqlite-store"
    base = Base.load()
    queries = _queries(directory, base, args.queries)
    ids, vectors = _load_vectors(directory)
    n = len(ids)
    rows = []
    policy = IndexPolicy.from_env()

    # Flat: exact, and the truth every other row is measured against.
    started = time.perf_counter()
    flat = VectorMemory(dimension=DIM, factory="Flat")
    flat.add(ids, vectors)
    build = time.perf_counter() - started
    _, truth = flat.search(queries, 10)
    self_truth = _self_truth(ids, vectors)
    rows.append(
        _evaluate(
            "Flat",
            flat,
            queries,
            truth,
            build,
            threads=args.threads,
            vectors=n,
            note=f"exact; latency over {min(len(queries), FLAT_LATENCY_QUERIES)} queries",
        )
    )
    del flat

    # auto: what the store rebuilds from SQL at this size (read from SQL, trained on a random sample).
    with Store(directory) as store:
        started = time.perf_counter()
        auto = index_build.build_from_sql(store.engine, dimension=DIM, factory="auto")
        build = time.perf_counter() - started
        auto.exact = store._exact_vectors
        rows.append(
            _evaluate(
                f"auto -> {auto.kind}",
                auto,
                queries,
                truth,
                build,
                threads=args.threads,
                vectors=n,
                note=f"rebuilt from SQL: random training sample, every vector streamed; {TUNED}",
            )
        )
    del auto

    # The store's own file, as a reader loads it: memory-mapped (IVF lists read from the page cache).
    with Store(directory) as store:
        started = time.perf_counter()
        mapped = VectorMemory.load(directory, dimension=DIM, factory="auto", mmap=True)
        load = time.perf_counter() - started
        mapped.exact = store._exact_vectors
        rows.append(
            _evaluate(
                f"store file: {mapped.kind}",
                mapped,
                queries,
                truth,
                load,
                threads=args.threads,
                vectors=mapped.ntotal,
                note=f"what the ingest left, loaded memory-mapped "
                f"({'mapped' if mapped.mapped else 'NOT mapped'}) as readers do; build_s = load",
            )
        )
        del mapped

    # IVF at 4*sqrt(n) lists, across nprobe.
    nlist = index_policy.nlist_of(policy.choose(max(n, policy.flat_max), DIM)) or 1024
    kind = f"IVF{nlist},Flat"
    started = time.perf_counter()
    ivf = VectorMemory(dimension=DIM, factory=kind)
    rng = np.random.default_rng(0)
    ivf.train(vectors[np.sort(rng.choice(n, size=min(n, index_policy.training_size(kind)), replace=False))])
    train = time.perf_counter() - started
    ivf.add(ids, vectors)
    build = time.perf_counter() - started
    inner = faiss.extract_index_ivf(ivf.index)
    for nprobe in sorted({min(p, nlist) for p in args.nprobe}):
        inner.nprobe = nprobe
        ivf.search_params = {"nprobe": nprobe}
        rows.append(
            _evaluate(kind, ivf, queries, truth, build, threads=args.threads, vectors=n, train_s=round(train, 1))
        )
    del ivf, inner

    # HNSW32 on a prefix (--hnsw-chunks; all of them by default); truth recomputed on that prefix.
    m = min(n, args.hnsw_chunks)
    if m > 0:
        prefix_truth, prefix_self = truth, self_truth
        if m < n:
            exact = faiss.IndexFlatIP(DIM)
            exact.add(vectors[:m])
            _, positions = exact.search(queries, 10)
            prefix_truth = ids[positions]
            del exact
            prefix_self = _self_truth(ids[:m], vectors[:m])
        started = time.perf_counter()
        hnsw = VectorMemory(dimension=DIM, factory="HNSW32")
        for at in range(0, m, 65536):
            hnsw.add(ids[at : min(m, at + 65536)], vectors[at : min(m, at + 65536)])
        build = time.perf_counter() - started
        note = "" if m == n else f"first {m} chunks (--hnsw-chunks)"
        graph = faiss.downcast_index(hnsw.index.index).hnsw
        for ef in args.ef_search:
            graph.efSearch = ef
            hnsw.search_params = {"efSearch": ef}
            rows.append(
                _evaluate("HNSW32", hnsw, queries, prefix_truth, build, threads=args.threads, vectors=m, note=note)
            )
        index_build.tune(hnsw, prefix_self)
        rows.append(
            _evaluate(
                "HNSW32",
                hnsw,
                queries,
                prefix_truth,
                build,
                threads=args.threads,
                vectors=m,
                note=f"{note + '; ' if note else ''}{TUNED}",
            )
        )
        del hnsw

    # IVF-PQ: what auto picks from ivfpq_min vectors, here at this size, tuned as a rebuild would be; scored by
    # its codes alone, and re-ranked with the exact vectors from SQL as the store searches it.
    kind = f"IVF{nlist},PQ{DIM // 8}"
    started = time.perf_counter()
    pq = VectorMemory(dimension=DIM, factory=kind)
    pq.train(vectors[np.sort(rng.choice(n, size=min(n, index_policy.training_size(kind)), replace=False))])
    pq.add(ids, vectors)
    build = time.perf_counter() - started
    with Store(directory) as store:
        pq.exact = store._exact_vectors
        index_build.tune(pq, self_truth)
        rows.append(
            _evaluate(
                kind,
                pq,
                queries,
                truth,
                build,
                threads=args.threads,
                vectors=n,
                note=f"{TUNED}; re-ranked: {index_policy.REFINE}x10 candidates, exact vectors from SQL",
            )
        )
        pq.exact = None
        rows.append(
            _evaluate(
                kind,
                pq,
                queries,
                truth,
                build,
                threads=args.threads,
                vectors=n,
                note="the same, scored by its PQ codes alone",
            )
        )
    del pq, vectors
    for row in rows:
        row.setdefault("note", "")
    return rows


# -- the command line ---------------------------------------------------------------------------------------


def table(title: str, rows: list[dict[str, Any]], skip: tuple[str, ...] = ()) -> None:
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in skip]
    widths = {k: max(len(k), *(len(_fmt(r.get(k, ""))) for r in rows)) for k in keys}
    print(title)
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(_fmt(row.get(k, "")).ljust(widths[k]) for k in keys))
    print()


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--print":
        render(json.loads(Path(sys.argv[2]).read_text()))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        backend, chunks, directory, url, batch_docs, save_every = sys.argv[2:8]
        print(
            json.dumps(
                _ingest_child(backend, int(chunks), Path(directory), url or None, int(batch_docs), float(save_every))
            )
        )
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000, help="chunks ingested into SQLite (default 1M)")
    parser.add_argument(
        "--pg-chunks",
        type=int,
        default=PG_CHUNKS,
        help=f"chunks ingested into PostgreSQL (default {PG_CHUNKS:,}; 0 skips it)",
    )
    parser.add_argument(
        "--hnsw-chunks",
        type=int,
        default=HNSW_CHUNKS,
        help=f"HNSW32 is built over the first N chunks only (default {HNSW_CHUNKS:,})",
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--batch-docs", type=int, default=16, help="documents per transaction (Memory.ingest: 16)")
    parser.add_argument(
        "--save-every",
        type=float,
        default=300.0,
        help="seconds between FAISS saves while ingesting (Memory.ingest: 300)",
    )
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads for the single-query latencies")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 32, 128, 512, 1024])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--work", type=Path, help="keep the stores in this folder (default: a temporary one)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --work: reuse the ingest of an earlier run there (its stores and figures)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.reuse and args.work is None:
        parser.error("--reuse needs --work")
    import faiss

    work = args.work or Path(tempfile.mkdtemp(prefix="memflow-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        saved = work / "ingest.json"
        if args.reuse and saved.exists():
            ingest = json.loads(saved.read_text())
        else:
            ingest = bench_ingest(args, work)
            saved.write_text(json.dumps(ingest))
        indexes = bench_indexes(args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    config = {
        "chunks": args.chunks,
        "pg_chunks": args.pg_chunks,
        "hnsw_chunks": args.hnsw_chunks,
        "queries": args.queries,
        "threads_for_latency": args.threads,
        "cpus": os.cpu_count(),
        "faiss": faiss.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "total_s": round(time.perf_counter() - started, 1),
    }
    result = {"config": config, "ingest": ingest, "indexes": indexes}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    render(result)
    return 0


def render(result: dict[str, Any]) -> None:
    """Print the tables of a run (``result`` as ``--json`` prints it)."""
    config, ingest, indexes = result["config"], result["ingest"], result["indexes"]
    print(f"memflow scale benchmark: {config}\n")
    table(
        "ingest (Store.write_documents: documents, chunks + vectors + sentence vectors, BM25 postings)",
        ingest,
        skip=("checkpoints",),
    )
    table(
        "resident memory while ingesting (the vector index in RAM grows 1,536 bytes a chunk; the rest should not)",
        [
            {"backend": row["backend"], **point, "rss_minus_index_mb": round(point["rss_mb"] - point["index_mb"], 1)}
            for row in ingest
            if "checkpoints" in row
            for point in row["checkpoints"]
        ],
    )
    table(
        f"index types over the {ingest[0]['chunks']:,} SQLite chunk vectors ({config['queries']} perturbed-text "
        f"queries, recall@10 against exact Flat search, single-query latency on {config['threads_for_latency']} "
        "thread)",
        indexes,
    )


if __name__ == "__main__":
    sys.exit(main())
