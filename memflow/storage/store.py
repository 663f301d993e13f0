"""A store: one directory holding the SQL database (SQLite by default, any SQLAlchemy URL otherwise), the
FAISS vector memory and the writer lock.

Writes go through :meth:`Store.write_documents`, one SQL transaction per batch of documents: a document's
old chunks, vectors and summary state are replaced together with the new ones. The FAISS file follows the
SQL store (see :mod:`memflow.storage.vectors`); on open, a vector memory that lags behind the SQL store's
generation is brought back in step from the vectors stored in SQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, insert, inspect, make_url, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, defer

from memflow.defaults import DB_FILE, META_FILE
from memflow.errors import MemflowError, ModelMismatchError, ReadOnlyStoreError, StoreError
from memflow.filters import Where
from memflow.storage import codec, vector_rows
from memflow.storage import lexical as lexical_index
from memflow.storage.faults import open_fault, storage_faults
from memflow.storage.index_policy import AUTO
from memflow.storage.locks import WriterLock
from memflow.storage.migrations import migrate
from memflow.storage.sql import (
    DEFAULT_COLLECTION,
    SCHEMA_VERSION,
    Base,
    ChunkRow,
    DocumentRow,
    SettingRow,
    SummaryStateRow,
    WrittenSummaryRow,
    connect_read_only,
    make_engine,
)
from memflow.types import Chunk, Document, Section, Sentence, SummarySlot, SummaryState, WrittenSummary

RowT = TypeVar("RowT", WrittenSummaryRow, SummaryStateRow)

if TYPE_CHECKING:  # FAISS loads when vectors are first touched: a store opened to list or count needs none
    from memflow.storage.vectors import VectorMemory

__all__ = ["Store", "StoredChunk", "StoredDocument", "StoreStats", "ChunkPlace", "DocumentLayout"]

#: Below this many vectors a single query is searched on one thread (see Store.search).
SINGLE_THREAD_SEARCH_BELOW = 200_000
#: Settings a store records once and never changes afterwards (a different encoder is refused, not switched).
FIXED_SETTINGS = frozenset({"encoder", "dimension"})
LOCK_FILE = "LOCK"
#: The next chunk id to hand out. Chunk ids are the vector ids in the FAISS file, so one must never be
#: reused: SQLite gives a new row the largest id + 1, which after deleting the newest document is an id the
#: (possibly older) FAISS file still holds with the deleted chunk's vector.
NEXT_CHUNK_ID = "next_chunk_id"


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as read back from the store, with its sentences and their vectors."""

    id: int
    document_id: int
    document: str
    title: str
    ordinal: int
    start: int
    end: int
    text: str
    section: str | None
    sentences: list[Sentence]
    sentence_vectors: npt.NDArray[np.float16]
    metadata: dict[str, Any] = field(default_factory=dict)
    collection: str = DEFAULT_COLLECTION


@dataclass(frozen=True, slots=True)
class StoredDocument:
    id: int
    uri: str
    title: str
    content_hash: str
    chunk_count: int
    metadata: dict[str, Any]
    collection: str = DEFAULT_COLLECTION

    def fields(self) -> dict[str, Any]:
        """What a where-filter reads of the document: its metadata, ``uri`` and ``collection``."""
        return {**self.metadata, "uri": self.uri, "collection": self.collection}


@dataclass(frozen=True, slots=True)
class StoreStats:
    directory: str
    url: str
    documents: int
    chunks: int
    vectors: int
    tokens: int
    encoder: str | None
    dimension: int | None
    index: str


@dataclass(frozen=True, slots=True)
class ChunkPlace:
    """Where a chunk sits in its document: what the chunk graph is built from."""

    id: int
    document_id: int
    ordinal: int
    section: str | None
    token_count: int


@dataclass(frozen=True, slots=True)
class DocumentLayout:
    """A document with its chunks' spans and its summary slots, as stored: what ``memflow doctor`` checks.
    ``chunks`` holds (ordinal, start, end, text, sentence spans) in ordinal order."""

    id: int
    uri: str
    text: str
    chunk_count: int
    chunks: list[tuple[int, int, int, str, npt.NDArray[np.int32]]]
    slots: list[dict[str, Any]]


#: Files whose stored hashes one query looks up (each adds a LIKE for its records).
HASH_QUERY_FILES = 200
#: How many where-filters' matching chunk ids a store keeps (until its next write).
MATCHING_CACHE = 32


class Store:
    """An open store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, directory: str | Path, *, url: str | None = None, index: str = "Flat") -> None:
        self.directory = Path(directory).expanduser().resolve()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {self.directory}: {exc.strerror}") from exc
        self.url = url or f"sqlite:///{self.directory / DB_FILE}"
        # Settings that never change once recorded, read once per open: the query path reads them per query.
        self._fixed: dict[str, Any] = {}
        parsed = make_url(self.url)
        database = parsed.database
        self._sqlite_file = (
            Path(database).resolve()
            if parsed.get_backend_name() == "sqlite" and database and database != ":memory:"
            else None
        )
        #: Whether this process cannot write the store (a read-only mount, files of another user): its directory
        #: (the lock and vector files; on SQLite the database too) is then only read, the store searched and
        #: read as usual, and every write refused in one line.
        self.read_only = not os.access(self.directory, os.W_OK) or (
            self._sqlite_file is not None and _unwritable(self._sqlite_file)
        )
        self.engine = make_engine(self.url, read_only_file=self._sqlite_file if self.read_only else None)
        # The generation is read on every query: on SQLite through one raw connection of its own (3 us a read
        # against ~100 us through a pooled SQLAlchemy session), re-opened in a forked child.
        self._generation_connection: tuple[int, sqlite3.Connection] | None = None
        self._generation_mutex = threading.Lock()
        try:
            if self.read_only:
                self._check_read_only_schema()
            else:
                Base.metadata.create_all(self.engine)
                self._init_settings()
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise open_fault(exc, directory=self.directory, url=self.url) from exc
        self._default_index = index
        self._vectors: VectorMemory | None = None
        self._vector_signature: tuple[int, int] | None = None
        # One thread at a time loads, catches up, changes or searches the vector memory (a served store is
        # shared by request threads; FAISS indexes are not safe to change while another thread reads them).
        self._vectors_mutex = threading.RLock()
        self._matching: dict[str, tuple[int, npt.NDArray[np.int64]]] = {}
        self._collections: tuple[int, dict[str, int]] | None = None
        self._lock = WriterLock(self.directory, self.engine, file_name=LOCK_FILE)

    # -- settings -----------------------------------------------------------------------------------------

    def _init_settings(self) -> None:
        with Session(self.engine) as session, session.begin():
            version = session.get(SettingRow, "schema_version")
            if version is None:
                session.add(SettingRow(key="schema_version", value=SCHEMA_VERSION))
                session.add(SettingRow(key="generation", value=0))
            elif int(version.value) > SCHEMA_VERSION:
                raise self._newer_schema(int(version.value))
            stored_version = int(version.value) if version is not None else SCHEMA_VERSION
        database = self.directory / DB_FILE if self.url.startswith("sqlite") else None
        self.migrations = migrate(self.engine, current=stored_version, target=SCHEMA_VERSION, database_file=database)

    def _check_read_only_schema(self) -> None:
        """A read-only store is read as it is: it must hold a store of this memflow's schema (creating or
        migrating one would write)."""
        self.migrations = []
        if not inspect(self.engine).has_table(SettingRow.__tablename__):
            raise StoreError(f"store {self.directory} is read-only and holds no memflow store to read")
        with Session(self.engine) as session:
            version = session.get(SettingRow, "schema_version")
        stored = int(version.value) if version is not None else 0
        if stored > SCHEMA_VERSION:
            raise self._newer_schema(stored)
        if stored < SCHEMA_VERSION:
            raise StoreError(
                f"store {self.directory} is read-only and has schema version {stored}, older than this memflow "
                f"({SCHEMA_VERSION}) reads; open it once where it can be written, and it is upgraded"
            )

    def _newer_schema(self, version: int) -> StoreError:
        return StoreError(
            f"store {self.directory} has schema version {version}, newer than this memflow ({SCHEMA_VERSION}); "
            "upgrade memflow"
        )

    def setting(self, key: str, default: Any = None) -> Any:
        if key in self._fixed:
            return self._fixed[key]
        with Session(self.engine) as session:
            row = session.get(SettingRow, key)
            if row is None:
                return default
            if key in FIXED_SETTINGS:
                self._fixed[key] = row.value
            return row.value

    def _set_setting(self, session: Session, key: str, value: Any) -> None:
        row = session.get(SettingRow, key)
        if row is None:
            session.add(SettingRow(key=key, value=value))
        else:
            row.value = value

    def _bump_generation(self, session: Session) -> int:
        """Increment the generation in this transaction; returns the value it will have once committed.
        Every write transaction ends here, so it is where a writer confirms it still holds the lock."""
        self._lock.confirm()
        row = session.get(SettingRow, "generation")
        if row is None:
            session.add(SettingRow(key="generation", value=1))
            return 1
        row.value = int(row.value) + 1
        return int(row.value)

    def _allocate_chunk_ids(self, session: Session, count: int) -> int:
        """Reserve ``count`` new chunk ids in this transaction; returns the first. Never an id used before."""
        row = session.get(SettingRow, NEXT_CHUNK_ID)
        if row is None:
            # A store from before the counter: past every id SQL or the FAISS file (which may hold rows
            # deleted since it was saved) has seen.
            largest = int(session.scalar(select(func.max(ChunkRow.id))) or 0)
            dimension = self.setting("dimension")
            if dimension is not None:
                from memflow.storage.vectors import VectorMemory

                on_disk = VectorMemory.load(
                    self.directory, dimension=int(dimension), factory=self.index_factory, mmap=True
                ).ids()
                largest = max(largest, int(on_disk.max()) if on_disk.size else 0)
            first = largest + 1
            session.add(SettingRow(key=NEXT_CHUNK_ID, value=first + count))
            return first
        first = int(row.value)
        row.value = first + count
        return first

    def check_encoder(self, model: str, dimension: int, *, record: bool) -> None:
        """Refuse an encoder other than the store's; record it when the store has none yet and ``record``."""
        stored_model, stored_dim = self.setting("encoder"), self.setting("dimension")
        if stored_model is None:
            if record:
                with Session(self.engine) as session, session.begin():
                    self._set_setting(session, "encoder", model)
                    self._set_setting(session, "dimension", dimension)
            return
        if stored_model != model or stored_dim != dimension:
            raise ModelMismatchError(
                f"store {self.directory} was built with encoder {stored_model} ({stored_dim} dims); "
                f"the pipeline uses {model} ({dimension} dims). Use the same encoder or another store"
            )

    def check_index(self, factory: str) -> None:
        """Record the FAISS index factory on first write; refuse a different one later (the stored vectors
        were indexed with it, and silently switching would change what search returns)."""
        stored = self.setting("index_factory")
        if stored is None:
            with Session(self.engine) as session, session.begin():
                self._set_setting(session, "index_factory", factory)
            self._vectors = None
        elif stored != factory and factory != AUTO:
            # ``auto`` leaves a store created with an explicit index (say "Flat", the old default) on it.
            raise StoreError(f"store {self.directory} uses FAISS index {stored!r}; the pipeline asks for {factory!r}")

    @property
    def index_factory(self) -> str:
        return str(self.setting("index_factory", self._default_index))

    # -- the writer lock ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, *, timeout: float = 60.0) -> Iterator[None]:
        """Hold the single-writer lock (waits up to ``timeout`` seconds for another writer): the store
        directory's lock file, and on PostgreSQL an advisory lock too (see :mod:`memflow.storage.locks`)."""
        if self.read_only:
            raise ReadOnlyStoreError(
                f"store {self.directory} is read-only for this user (a read-only mount or another user's files): "
                "it can be searched and read, not written; make it writable to change it"
            )
        self._lock.acquire(timeout=timeout)
        try:
            yield
        finally:
            self._lock.release()

    # -- vectors ------------------------------------------------------------------------------------------

    @property
    def vectors(self) -> VectorMemory:
        """The vector memory, loaded on first use and reloaded when another process saved a newer one."""
        with self._vectors_mutex:
            return self._current_vectors()

    def _current_vectors(self) -> VectorMemory:
        from memflow.storage.vectors import VectorMemory

        dimension = self.setting("dimension")
        if dimension is None:
            raise StoreError(f"store {self.directory} is empty: ingest something first")
        signature = VectorMemory.file_signature(self.directory)
        writing = self._lock.is_locked  # our own memory is then the newest there is
        if self._vectors is None or (signature != self._vector_signature and not writing):
            # Readers map the file (shared page cache); the writer reads a copy it can change.
            memory = VectorMemory.load(
                self.directory, dimension=int(dimension), factory=self.index_factory, mmap=not writing
            )
            memory.exact = self._exact_vectors
            self._vector_signature = signature
            self._vectors = memory
            if memory.generation != self.generation:
                self._resync(memory)
        elif self._vectors.generation != self.generation:
            # A writer committed batches it has not saved to the FAISS file yet: catch up from SQL, so a
            # reader always answers from the last committed state. (Holding the writer lock, our memory
            # lags only when another writer committed since we last synced; SQL is then settled.)
            self._resync(self._vectors)
        return self._vectors

    def _exact_vectors(self, ids: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(ids found, their vectors) from SQL: what quantized indexes re-rank their candidates with."""
        return vector_rows.vectors_of(self.engine, ids)

    @property
    def generation(self) -> int:
        """The store's write counter, read from SQL every time (every query asks: is the vector memory
        current?). Each committed write batch increments it."""
        if self._sqlite_file is not None:
            with self._generation_mutex:
                row = (
                    self._generation_reader().execute("SELECT value FROM settings WHERE key = 'generation'").fetchone()
                )
            # SQLite hands a JSON number back as an int, JSON text as a str
            return int(json.loads(row[0]) if isinstance(row[0], str) else row[0]) if row else 0
        with self.engine.connect() as pooled:
            value = pooled.execute(select(SettingRow.value).where(SettingRow.key == "generation")).scalar()
        return int(value) if value is not None else 0

    def _generation_reader(self) -> sqlite3.Connection:
        assert self._sqlite_file is not None
        pid = os.getpid()
        if self._generation_connection is None or self._generation_connection[0] != pid:
            # autocommit: every read is its own short read transaction, never a snapshot held open
            connection = (
                connect_read_only(self._sqlite_file)
                if self.read_only
                else sqlite3.connect(self._sqlite_file, timeout=30, isolation_level=None, check_same_thread=False)
            )
            self._generation_connection = (pid, connection)
        return self._generation_connection[1]

    def _resync(self, memory: VectorMemory) -> None:
        """Make the vector memory hold exactly the SQL store's chunk vectors (after a crash or a damaged file)."""
        # Generation first: rows committed while we sync are then caught by the next check, never missed.
        generation = vector_rows.stored_generation(self.engine)
        sql_ids = vector_rows.chunk_ids(self.engine)
        have = memory.ids()
        memory.remove(np.setdiff1d(have, sql_ids))
        missing = np.setdiff1d(sql_ids, have)
        if missing.size:
            ids, vectors = vector_rows.vectors_of(self.engine, missing)
            if ids.size:
                memory.add(ids, vectors)
        memory.generation = generation

    def save_vectors(self, *, catch_up: bool = False) -> None:
        """Write the vector memory to its file (atomically). With ``index: auto``, first rebuild it from SQL
        when the memory has grown (or shrunk) across what its index was chosen for. ``catch_up``: also when
        nothing loaded the memory, if the file is behind SQL (an earlier save failed), so it is current again."""
        with self._vectors_mutex, storage_faults(self.directory, "saving the vector file"):
            behind = catch_up and self._vectors is None and self._vector_file_generation() != self.generation
            if behind and self.setting("dimension") is not None:
                self._current_vectors()
            self._save_vectors()

    def _save_vectors(self) -> None:
        from memflow.storage import index_build
        from memflow.storage.vectors import VectorMemory

        if self._vectors is None:
            return
        if self._vectors.needs_rebuild():
            dimension, factory = self._vectors.dimension, self._vectors.factory
            self._vectors = None  # free the old index before building the new one
            memory = index_build.build_from_sql(self.engine, dimension=dimension, factory=factory)
            memory.exact = self._exact_vectors
            self._vectors = memory
            if memory.generation != self.generation:
                self._resync(memory)
        elif self._vectors.generation != self.generation:
            self._resync(self._vectors)
        # The generation the memory reflects, which is what the file must claim (never a later one read now).
        self._vectors.save(self.directory, generation=self._vectors.generation)
        self._vector_signature = VectorMemory.file_signature(self.directory)

    def vector_count(self) -> int:
        """How many vectors the vector memory holds: from its file's record when that is current (no index
        loaded), else from the memory itself."""
        if self._vectors is None:
            try:
                meta = json.loads((self.directory / META_FILE).read_text())
                if int(meta["generation"]) == self.generation:
                    return int(meta["ntotal"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
        with self._vectors_mutex:
            return self._current_vectors().ntotal

    def _vector_file_generation(self) -> int | None:
        """The generation the saved vector file claims, None when there is no readable one."""
        try:
            return int(json.loads((self.directory / META_FILE).read_text())["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def rebuild_vectors(self) -> int:
        """Replace the FAISS file with one built from every chunk vector in SQL (for ``auto``, of the type the
        stored count calls for; trained on a random sample); returns the vector count."""
        dimension = self.setting("dimension")
        if dimension is None:
            return 0
        from memflow.storage import index_build

        with self._vectors_mutex, storage_faults(self.directory, "rebuilding the vector file"):
            self._vectors = None
            memory = index_build.build_from_sql(self.engine, dimension=int(dimension), factory=self.index_factory)
            memory.save(self.directory, generation=memory.generation)
            self._vector_signature = None  # the next use loads the rebuilt file
            return memory.ntotal

    def search(
        self, query: npt.NDArray[np.float32], k: int, *, allowed: npt.NDArray[np.int64] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, inner product) of the ``k`` chunks nearest to ``query``, best first; with ``allowed``
        (sorted chunk ids, e.g. :meth:`matching_chunk_ids`), only among those."""
        import faiss

        with self._vectors_mutex:
            memory = self._current_vectors()
            # One query over a small memory is microseconds of work: FAISS's OpenMP team costs more than it
            # saves there, and far more when another process holds a core (its threads wait for each other).
            small = memory.ntotal < SINGLE_THREAD_SEARCH_BELOW
            threads = faiss.omp_get_max_threads()
            if small:
                faiss.omp_set_num_threads(1)
            try:
                scores, ids = memory.search(query, k, allowed=allowed)
            finally:
                if small:
                    faiss.omp_set_num_threads(threads)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    # -- writes -------------------------------------------------------------------------------------------

    def document_hashes(self, uris: Iterable[str], *, collection: str = DEFAULT_COLLECTION) -> dict[str, str]:
        """The stored content hash of each of these URIs that ``collection`` holds."""
        uris = list(uris)
        found: dict[str, str] = {}
        with Session(self.engine) as session:
            for start in range(0, len(uris), 500):
                part = uris[start : start + 500]
                query = select(DocumentRow.uri, DocumentRow.content_hash).where(
                    DocumentRow.collection == collection, DocumentRow.uri.in_(part)
                )
                rows = session.execute(query)
                found.update({uri: h for uri, h in rows})
        return found

    def stored_hashes_by_file(
        self, files: Sequence[str], *, collection: str = DEFAULT_COLLECTION
    ) -> list[dict[str, str]]:
        """For each file, the (URI -> content hash) of the documents ``collection`` holds from it: the file's
        resolved path, or ``path#record`` for files of many documents (JSONL)."""
        keys = [str(Path(f).expanduser().resolve()) for f in files]
        found: dict[str, str] = {}
        with Session(self.engine) as session:
            for start in range(0, len(keys), HASH_QUERY_FILES):
                part = keys[start : start + HASH_QUERY_FILES]
                prefixes = [DocumentRow.uri.like(_like_escape(k) + "#%", escape="\\") for k in part]
                query = select(DocumentRow.uri, DocumentRow.content_hash).where(
                    DocumentRow.collection == collection, or_(DocumentRow.uri.in_(part), *prefixes)
                )
                found.update({uri: digest for uri, digest in session.execute(query)})
        by_key: dict[str, dict[str, str]] = {k: {} for k in keys}
        for uri, digest in found.items():
            owner = uri if uri in by_key else uri.split("#", 1)[0]
            # LIKE may match case-insensitively (SQLite): keep exact prefixes only.
            if owner in by_key and (uri == owner or uri.startswith(owner + "#")):
                by_key[owner][uri] = digest
        return [by_key[k] for k in keys]

    def write_documents(
        self,
        documents: Sequence[tuple[Document, Sequence[Chunk], SummaryState | None]],
        *,
        collection: str = DEFAULT_COLLECTION,
    ) -> None:
        """Store documents in ``collection`` with their encoded chunks and summary states in one transaction,
        replacing any stored version of the same URI there; then update the in-memory vector index to match.
        A batch is written with a handful of statements whatever its size (each one row-set for the batch).
        A storage fault raises StoreError (StorageFullError when the disk is full), the batch not kept."""
        with storage_faults(self.directory, f"writing a batch of {len(documents)} documents"):
            self._write_documents(documents, collection=collection)

    def _write_documents(
        self,
        documents: Sequence[tuple[Document, Sequence[Chunk], SummaryState | None]],
        *,
        collection: str,
    ) -> None:
        vectors = self.vectors if self.setting("dimension") is not None else None
        # a URI given twice in one batch: the later version replaces the earlier, as two batches would
        last = {document.uri: n for n, (document, _, _) in enumerate(documents)}
        batch = [item for n, item in enumerate(documents) if last[item[0].uri] == n]
        added_ids = np.zeros(0, dtype=np.int64)
        added_vectors: npt.NDArray[np.float32] | None = None
        with Session(self.engine) as session, session.begin():
            _, removed = self._delete_documents(session, [document.uri for document, _, _ in batch], collection)
            doc_ids = (
                list(
                    session.scalars(
                        insert(DocumentRow).returning(DocumentRow.id, sort_by_parameter_order=True),
                        [
                            {
                                "uri": document.uri,
                                "collection": collection,
                                "content_hash": document.content_hash,
                                "title": document.title,
                                "meta": document.metadata,
                                "text": document.text,
                                "chunk_count": len(chunks),
                                "sections": [[s.start, s.title, s.level] for s in document.sections],
                            }
                            for document, chunks, _ in batch
                        ],
                    )
                )
                if batch
                else []
            )
            all_chunks = [chunk for _, chunks, _ in batch for chunk in chunks]
            if all_chunks:
                next_id = self._allocate_chunk_ids(session, len(all_chunks))
                rows = []
                for doc_id, (_, chunks, _) in zip(doc_ids, batch, strict=True):
                    for chunk in chunks:
                        chunk.id = next_id
                        next_id += 1
                        rows.append(self._chunk_row(doc_id, chunk))
                session.execute(insert(ChunkRow), rows)
                lexical_index.index_chunks(session, all_chunks)  # the BM25 index, in the same transaction
                added_ids = np.asarray([c.id for c in all_chunks], dtype=np.int64)
                added_vectors = np.vstack([c.vector for c in all_chunks if c.vector is not None])
            session.add_all(
                [
                    self._state_row(doc_id, state)
                    for doc_id, (_, _, state) in zip(doc_ids, batch, strict=True)
                    if state is not None
                ]
            )
            generation = self._bump_generation(session)
        with self._vectors_mutex:
            if vectors is None or vectors is not self._vectors:
                vectors = self._current_vectors()
            if vectors.generation != generation:  # else another thread caught it up from SQL already
                vectors.remove(np.asarray(removed, dtype=np.int64))
                if added_vectors is not None:
                    vectors.add(added_ids, added_vectors)
                vectors.generation = generation

    @staticmethod
    def _chunk_row(doc_id: int, chunk: Chunk) -> dict[str, Any]:
        if chunk.vector is None or chunk.sentence_vectors is None:
            raise StoreError(f"chunk {chunk.ordinal} of {chunk.document.uri} was not encoded")
        return {
            "id": chunk.id,
            "document_id": doc_id,
            "ordinal": chunk.ordinal,
            "start": chunk.start,
            "end": chunk.end,
            "text": chunk.text,
            "token_count": chunk.token_count,
            "section": chunk.section,
            "vector": codec.f32_bytes(chunk.vector),
            "sentence_spans": codec.spans_bytes([(s.start, s.end) for s in chunk.sentences]),
            "sentence_vectors": codec.f16_bytes(chunk.sentence_vectors),
        }

    @staticmethod
    def _state_row(doc_id: int, state: SummaryState) -> SummaryStateRow:
        dim = len(state.centroid_sum)
        slot_vectors = np.vstack([s.vector for s in state.slots]) if state.slots else np.zeros((0, dim))
        return SummaryStateRow(
            document_id=doc_id,
            capacity=state.capacity,
            chunks_seen=state.chunks_seen,
            sentences_seen=state.sentences_seen,
            read_until=state.read_until,
            slots=[
                {"text": s.text, "start": s.start, "end": s.end, "chunk": s.chunk_ordinal, "score": s.score}
                for s in state.slots
            ],
            slot_vectors=codec.f16_bytes(slot_vectors),
            centroid_sum=codec.f32_bytes(state.centroid_sum),
        )

    def _delete_documents(self, session: Session, uris: Sequence[str], collection: str) -> tuple[int, list[int]]:
        """Delete these documents of ``collection`` (those stored) with their chunks, index rows and summary
        states; returns how many documents were stored and the deleted chunk ids."""
        documents = 0
        chunk_ids: list[int] = []
        for start in range(0, len(uris), 500):
            part = uris[start : start + 500]
            doc_ids = list(
                session.scalars(
                    select(DocumentRow.id).where(DocumentRow.collection == collection, DocumentRow.uri.in_(part))
                )
            )
            if not doc_ids:
                continue
            found = list(session.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(doc_ids))))
            lexical_index.remove_chunks(session, found)
            session.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(doc_ids)))
            session.execute(delete(SummaryStateRow).where(SummaryStateRow.document_id.in_(doc_ids)))
            session.execute(delete(DocumentRow).where(DocumentRow.id.in_(doc_ids)))
            documents += len(doc_ids)
            chunk_ids.extend(found)
        return documents, chunk_ids

    def forget(self, uris: Iterable[str], *, collection: str = DEFAULT_COLLECTION) -> int:
        """Remove documents of ``collection`` completely (rows, vectors, summary states). Returns how many
        were stored."""
        with storage_faults(self.directory, "removing documents"):
            count = self._forget(uris, collection=collection)
        try:
            self.save_vectors()  # nothing to save when the store holds no vectors yet
        except StoreError as exc:
            raise type(exc)(
                f"{exc} (the {count} documents were removed from SQL, and readers drop their vectors when "
                "they catch the file up from it)"
            ) from exc.__cause__
        return count

    def _forget(self, uris: Iterable[str], *, collection: str) -> int:
        with Session(self.engine) as session, session.begin():
            count, removed = self._delete_documents(session, list(dict.fromkeys(uris)), collection)
            generation = self._bump_generation(session)
        if self.setting("dimension") is not None:
            with self._vectors_mutex:
                memory = self._current_vectors()
                if memory.generation != generation:  # else it was just loaded or caught up from SQL
                    memory.remove(np.asarray(removed, dtype=np.int64))
                    memory.generation = generation
        return count

    # -- reads --------------------------------------------------------------------------------------------

    def chunks(self, ids: Sequence[int]) -> list[StoredChunk]:
        """The chunks with these ids, in the order given (missing ids are left out)."""
        if not ids:
            return []
        # Core rows, not ORM objects: this is on every query's path, and identity-mapped entities cost
        # several times more to build for rows that are only read.
        query = (
            select(
                ChunkRow.id,
                ChunkRow.document_id,
                ChunkRow.ordinal,
                ChunkRow.start,
                ChunkRow.end,
                ChunkRow.text,
                ChunkRow.section,
                ChunkRow.sentence_spans,
                ChunkRow.sentence_vectors,
                DocumentRow.uri,
                DocumentRow.title,
                DocumentRow.meta,
                DocumentRow.collection,
            )
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.id.in_(list(ids)))
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        by_id = {row.id: self._stored_chunk(row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    @staticmethod
    def _stored_chunk(row: Any) -> StoredChunk:
        spans = codec.spans_array(row.sentence_spans)
        base = row.start
        sentences = [Sentence(int(s), int(e), row.text[int(s) - base : int(e) - base]) for s, e in spans]
        vectors = codec.f16_matrix(row.sentence_vectors, len(sentences))
        return StoredChunk(
            id=row.id,
            document_id=row.document_id,
            document=row.uri,
            title=row.title,
            ordinal=row.ordinal,
            start=row.start,
            end=row.end,
            text=row.text,
            section=row.section,
            sentences=sentences,
            sentence_vectors=vectors,
            metadata=dict(row.metadata or {}),
            collection=row.collection,
        )

    def chunk_ids_all(self) -> list[int]:
        """Every stored chunk id, ascending."""
        with Session(self.engine) as session:
            return list(session.scalars(select(ChunkRow.id).order_by(ChunkRow.id)))

    def chunk_ids(self, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """Chunk ids by (document id, chunk ordinal)."""
        wanted = set(pairs)
        if not wanted:
            return {}
        documents = {doc for doc, _ in wanted}
        with Session(self.engine) as session:
            rows = session.execute(
                select(ChunkRow.document_id, ChunkRow.ordinal, ChunkRow.id).where(ChunkRow.document_id.in_(documents))
            ).all()
        return {(d, o): i for d, o, i in rows if (d, o) in wanted}

    def matching_chunk_ids(self, where: Where | None, *, collection: str | None = None) -> npt.NDArray[np.int64]:
        """The ids (sorted) of the chunks of ``collection`` (None: of any) whose document ``where`` matches
        (its metadata, ``uri`` and ``collection``; None: every document). Kept per filter until the store
        next changes, so repeated queries pay once."""

        def chunks_of(documents: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            ids: list[int] = []
            with Session(self.engine) as session:
                for start in range(0, len(documents), 500):
                    part = [int(d) for d in documents[start : start + 500]]
                    ids.extend(session.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(part))))
            return np.unique(np.asarray(ids, dtype=np.int64))

        return self._cached_matching(
            "chunks", where, collection, lambda: chunks_of(self.matching_document_ids(where, collection=collection))
        )

    def matching_document_ids(self, where: Where | None, *, collection: str | None = None) -> npt.NDArray[np.int64]:
        """The row ids (sorted: oldest first) of the documents of ``collection`` (None: of any) that ``where``
        matches (None: every one); kept per filter until the store next changes."""

        def select_documents() -> npt.NDArray[np.int64]:
            with Session(self.engine) as session:
                query = select(DocumentRow.id, DocumentRow.uri, DocumentRow.meta, DocumentRow.collection)
                if collection is not None:
                    query = query.where(DocumentRow.collection == collection)
                rows = session.execute(query.order_by(DocumentRow.id)).all()
            records = ((doc_id, {**(meta or {}), "uri": uri, "collection": name}) for doc_id, uri, meta, name in rows)
            documents = where.select(records) if where is not None else [doc_id for doc_id, *_ in rows]
            return np.asarray(documents, dtype=np.int64)

        return self._cached_matching("documents", where, collection, select_documents)

    def _cached_matching(
        self, kind: str, where: Where | None, collection: str | None, compute: Callable[[], npt.NDArray[np.int64]]
    ) -> npt.NDArray[np.int64]:
        generation = self.generation
        spec = where.spec if where is not None else None
        key = json.dumps([kind, collection, spec], sort_keys=True, default=str)
        cached = self._matching.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        found = compute()
        with self._generation_mutex:  # request threads of a served store share this cache
            if len(self._matching) >= MATCHING_CACHE:
                self._matching.pop(next(iter(self._matching)))
            self._matching[key] = (generation, found)
        return found

    def chunk_vectors(self, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        with Session(self.engine) as session:
            rows = dict(session.execute(select(ChunkRow.id, ChunkRow.vector).where(ChunkRow.id.in_(list(ids)))).all())
        return codec.f32_rows(rows[i] for i in ids)

    def chunk_places(self, document_ids: Iterable[int]) -> list[ChunkPlace]:
        """Every chunk of these documents, by document then ordinal."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(ChunkRow.id, ChunkRow.document_id, ChunkRow.ordinal, ChunkRow.section, ChunkRow.token_count)
                .where(ChunkRow.document_id.in_(list(set(document_ids))))
                .order_by(ChunkRow.document_id, ChunkRow.ordinal)
            ).all()
        return [ChunkPlace(*row) for row in rows]

    def document_layouts(self) -> Iterator[DocumentLayout]:
        """Every document with its chunks' spans and its summary slots, one at a time."""
        with Session(self.engine) as session:
            for document in session.scalars(select(DocumentRow)).yield_per(64):
                chunks = session.execute(
                    select(ChunkRow.ordinal, ChunkRow.start, ChunkRow.end, ChunkRow.text, ChunkRow.sentence_spans)
                    .where(ChunkRow.document_id == document.id)
                    .order_by(ChunkRow.ordinal)
                ).all()
                state = session.get(SummaryStateRow, document.id)
                yield DocumentLayout(
                    id=document.id,
                    uri=document.uri,
                    text=document.text,
                    chunk_count=document.chunk_count,
                    chunks=[(c.ordinal, c.start, c.end, c.text, codec.spans_array(c.sentence_spans)) for c in chunks],
                    slots=list(state.slots) if state is not None else [],
                )

    def recount_chunks(self, document_ids: Iterable[int]) -> None:
        """Set these documents' recorded chunk counts to the chunks they hold, in one transaction."""
        with Session(self.engine) as session, session.begin():
            for doc_id in document_ids:
                count = session.scalar(select(func.count()).where(ChunkRow.document_id == doc_id))
                session.execute(update(DocumentRow).where(DocumentRow.id == doc_id).values(chunk_count=count))

    def documents(
        self, *, collection: str | None = None, where: Where | None = None, limit: int | None = None, offset: int = 0
    ) -> list[StoredDocument]:
        """The stored documents of ``collection`` (None: of every collection) that ``where`` matches (None:
        all), in the order they were written; with ``limit``, that many from ``offset``: a page read from SQL
        (their texts are not read)."""
        light = select(DocumentRow).options(defer(DocumentRow.text), defer(DocumentRow.sections))
        with Session(self.engine) as session:
            if where is None:
                if collection is not None:
                    light = light.where(DocumentRow.collection == collection)
                rows = list(session.scalars(light.order_by(DocumentRow.id).offset(offset).limit(limit)))
            else:
                matching = self.matching_document_ids(where, collection=collection)
                page = [int(d) for d in matching[offset : None if limit is None else offset + limit]]
                rows = []
                for start in range(0, len(page), 500):
                    part = page[start : start + 500]
                    rows += session.scalars(light.where(DocumentRow.id.in_(part)).order_by(DocumentRow.id))
        return [self._stored_document(r) for r in rows]

    def count_documents(self, *, collection: str | None = None, where: Where | None = None) -> int:
        """How many stored documents of ``collection`` (None: of every collection) ``where`` matches."""
        if where is not None:
            return len(self.matching_document_ids(where, collection=collection))
        counted = select(func.count()).select_from(DocumentRow)
        if collection is not None:
            counted = counted.where(DocumentRow.collection == collection)
        with Session(self.engine) as session:
            return int(session.scalar(counted) or 0)

    def document(self, uri: str, *, collection: str = DEFAULT_COLLECTION) -> StoredDocument | None:
        """The document ``collection`` holds under exactly ``uri`` (a record's id), or None."""
        with Session(self.engine) as session:
            query = (
                select(DocumentRow)
                .options(defer(DocumentRow.text))
                .where(DocumentRow.collection == collection, DocumentRow.uri == uri)
            )
            row = session.scalar(query)
            return None if row is None else self._stored_document(row)

    def collections(self) -> dict[str, int]:
        """Each collection that holds documents, with how many, by name."""
        generation = self.generation
        if self._collections is not None and self._collections[0] == generation:
            return dict(self._collections[1])
        with Session(self.engine) as session:
            rows = session.execute(select(DocumentRow.collection, func.count()).group_by(DocumentRow.collection)).all()
        found = {str(name): int(count) for name, count in sorted(rows)}
        self._collections = (generation, found)
        return dict(found)

    @staticmethod
    def _stored_document(row: DocumentRow) -> StoredDocument:
        return StoredDocument(
            row.id, row.uri, row.title, row.content_hash, row.chunk_count, dict(row.meta or {}), row.collection
        )

    def find_document(self, name: str, *, collection: str = DEFAULT_COLLECTION) -> StoredDocument | None:
        """A document of ``collection`` by exact URI, else by resolved path, else by file-name suffix, else
        by exact title. A suffix or title that several documents share is an error naming how many match."""
        within = DocumentRow.collection == collection
        with Session(self.engine) as session:
            row = session.scalar(select(DocumentRow).where(within, DocumentRow.uri == name))
            if row is None:
                resolved = str(Path(name).expanduser().resolve())
                row = session.scalar(select(DocumentRow).where(within, DocumentRow.uri == resolved))
            for condition in (DocumentRow.uri.endswith("/" + name), DocumentRow.title == name):
                if row is not None:
                    break
                matches = session.scalars(select(DocumentRow).where(within, condition).limit(3)).all()
                if len(matches) > 1:
                    raise MemflowError(
                        f"{name!r} is ambiguous: {len(matches)}{'+' if len(matches) == 3 else ''} documents "
                        f"match (e.g. {matches[0].uri}, {matches[1].uri}); give the full path"
                    )
                row = matches[0] if matches else None
            return None if row is None else self._stored_document(row)

    def document_text(self, document_id: int) -> str:
        with Session(self.engine) as session:
            return str(session.scalar(select(DocumentRow.text).where(DocumentRow.id == document_id)) or "")

    def document_sections(self, document_id: int) -> list[Section]:
        with Session(self.engine) as session:
            raw = session.scalar(select(DocumentRow.sections).where(DocumentRow.id == document_id)) or []
        return [Section(int(s), str(t), int(lv)) for s, t, lv in raw]

    def _rows_with_uri(self, table: type[RowT], document_ids: Iterable[int]) -> list[tuple[RowT, str]]:
        """Rows of a per-document table (keyed by ``document_id``) for these documents, each with its URI."""
        ids = list(set(document_ids))
        if not ids:
            return []
        column: Any = table.document_id
        with Session(self.engine) as session:
            rows = session.execute(
                select(table, DocumentRow.uri).join(DocumentRow, DocumentRow.id == column).where(column.in_(ids))
            ).all()
        return [(row, uri) for row, uri in rows]

    # -- written (abstractive) summaries ------------------------------------------------------------------

    def written_summaries(self, document_ids: Iterable[int]) -> dict[int, WrittenSummary]:
        """The written summaries of these documents, by document id (documents without one are left out)."""
        rows = self._rows_with_uri(WrittenSummaryRow, document_ids)
        return {
            row.document_id: WrittenSummary(
                uri, row.text, row.tokens, row.budget, row.chunks_seen, row.read_until, row.model
            )
            for row, uri in rows
        }

    def save_written_summary(self, document_id: int, summary: WrittenSummary) -> None:
        """Replace a document's written summary in one transaction: the old one stays until this commits."""
        with Session(self.engine) as session, session.begin():
            session.merge(
                WrittenSummaryRow(
                    document_id=document_id,
                    text=summary.text,
                    tokens=summary.tokens,
                    budget=summary.budget,
                    chunks_seen=summary.chunks_seen,
                    read_until=summary.read_until,
                    model=summary.model,
                )
            )

    def summary_states(self, document_ids: Iterable[int]) -> dict[int, SummaryState]:
        rows = self._rows_with_uri(SummaryStateRow, document_ids)
        states: dict[int, SummaryState] = {}
        for row, uri in rows:
            centroid = codec.f32_array(row.centroid_sum).copy()
            vectors = codec.f16_matrix(row.slot_vectors, len(row.slots), len(centroid))
            slots = [
                SummarySlot(s["text"], int(s["start"]), int(s["end"]), int(s["chunk"]), vectors[i], float(s["score"]))
                for i, s in enumerate(row.slots)
            ]
            states[row.document_id] = SummaryState(
                document=uri,
                capacity=row.capacity,
                slots=slots,
                chunks_seen=row.chunks_seen,
                sentences_seen=row.sentences_seen,
                centroid_sum=centroid,
                read_until=row.read_until,
            )
        return states

    def stats(self, *, collection: str | None = None) -> StoreStats:
        """Counts of the store, or of ``collection``'s documents and chunks (vectors stay the store's)."""
        in_collection = ChunkRow.document_id.in_(select(DocumentRow.id).where(DocumentRow.collection == collection))
        with Session(self.engine) as session:
            documents_query = select(func.count()).select_from(DocumentRow)
            chunks_query = select(func.count()).select_from(ChunkRow)
            tokens_query = select(func.coalesce(func.sum(ChunkRow.token_count), 0))
            if collection is not None:
                documents_query = documents_query.where(DocumentRow.collection == collection)
                chunks_query = chunks_query.where(in_collection)
                tokens_query = tokens_query.where(in_collection)
            documents = int(session.scalar(documents_query) or 0)
            chunks = int(session.scalar(chunks_query) or 0)
            tokens = int(session.scalar(tokens_query) or 0)
        dimension = self.setting("dimension")
        return StoreStats(
            directory=str(self.directory),
            url=self.engine.url.render_as_string(hide_password=True),
            documents=documents,
            chunks=chunks,
            vectors=self.vector_count() if dimension is not None else 0,
            tokens=tokens,
            encoder=self.setting("encoder"),
            dimension=dimension,
            index=self.index_factory,
        )

    @property
    def lexical(self) -> lexical_index.LexicalIndex:
        """The BM25 index over the stored chunks (see :mod:`memflow.storage.lexical`)."""
        index: lexical_index.LexicalIndex | None = self.__dict__.get("_lexical")
        if index is None:
            index = self.__dict__["_lexical"] = lexical_index.LexicalIndex(
                self.engine, name=str(self.directory), generation=lambda: self.generation, writer=self.writer
            )
        return index

    def tables(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def close(self) -> None:
        if self._generation_connection is not None and self._generation_connection[0] == os.getpid():
            self._generation_connection[1].close()
        self._generation_connection = None
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unwritable(database: Path) -> bool:
    """Whether this process can write neither the SQLite file's directory (its journal files live there) nor,
    where it exists, the file itself. ``access`` answers for root too on a read-only mount."""
    if not os.access(database.parent, os.W_OK):
        return True
    return database.exists() and not os.access(database, os.W_OK)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
