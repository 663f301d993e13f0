"""The SQL side of a store: SQLAlchemy 2.0 typed models and the engine.

The SQL database is the source of truth: it holds every chunk's vector too, so the FAISS file can always be
rebuilt from it. Vectors are stored as raw little-endian bytes (float32 for chunks, float16 for sentences)
rather than one row per sentence: the decoder reads a chunk's sentences together, so one blob per chunk is
both smaller and a single read.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import QueuePool

from memflow.types import DEFAULT_COLLECTION

__all__ = [
    "Base",
    "DocumentRow",
    "ChunkRow",
    "SummaryStateRow",
    "WrittenSummaryRow",
    "SettingRow",
    "make_engine",
    "SCHEMA_VERSION",
    "DEFAULT_COLLECTION",
]

#: Bump with a step in memflow.storage.migrations whenever an existing table changes.
SCHEMA_VERSION = 3


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class DocumentRow(Base):
    """A document, identified by its ``uri`` within its ``collection`` (the same id may be in several)."""

    __tablename__ = "documents"
    __table_args__ = (Index("uq_documents_collection_uri", "collection", "uri", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), index=True)
    collection: Mapped[str] = mapped_column(
        String(128), default=DEFAULT_COLLECTION, server_default=DEFAULT_COLLECTION, index=True
    )
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    sections: Mapped[list[Any]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("document_id", "ordinal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    section: Mapped[str | None] = mapped_column(Text, nullable=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    sentence_spans: Mapped[bytes] = mapped_column(LargeBinary)
    sentence_vectors: Mapped[bytes] = mapped_column(LargeBinary)


class SummaryStateRow(Base):
    __tablename__ = "summary_states"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer)
    chunks_seen: Mapped[int] = mapped_column(Integer)
    sentences_seen: Mapped[int] = mapped_column(Integer)
    read_until: Mapped[int] = mapped_column(Integer, default=0)
    slots: Mapped[list[Any]] = mapped_column(JSON)
    slot_vectors: Mapped[bytes] = mapped_column(LargeBinary)
    centroid_sum: Mapped[bytes] = mapped_column(LargeBinary)


class WrittenSummaryRow(Base):
    """A document's written (abstractive) running summary; replaced in one transaction per update, so an
    interrupted update leaves the previous one in place. Deleted with its document (ON DELETE CASCADE)."""

    __tablename__ = "written_summaries"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)
    budget: Mapped[int] = mapped_column(Integer)
    chunks_seen: Mapped[int] = mapped_column(Integer)
    read_until: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class SettingRow(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


def read_only_sqlite_uri(path: Path) -> str:
    """A SQLite URI that opens ``path`` read-only. On a directory this process cannot write (a read-only
    mount), ``immutable`` too when no write-ahead log lies beside the file: SQLite then needs no -shm file,
    which such a directory cannot hold. A log that is there may hold committed pages, so it is read."""
    immutable = not os.access(path.parent, os.W_OK) and not Path(f"{path}-wal").exists()
    return f"{path.as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")


def connect_read_only(path: Path, *, autocommit: bool = True) -> sqlite3.Connection:
    """A raw read-only sqlite3 connection to ``path``, usable from any thread (``autocommit``: every read its
    own transaction; else the driver's, which SQLAlchemy manages)."""
    isolation: Literal["DEFERRED"] | None = None if autocommit else "DEFERRED"  # DEFERRED: sqlite3's default
    return sqlite3.connect(
        read_only_sqlite_uri(path), uri=True, timeout=30, isolation_level=isolation, check_same_thread=False
    )


def make_engine(url: str, *, read_only_file: Path | None = None) -> Engine:
    """An engine for ``url``. SQLite gets WAL (readers never block the writer), enforced foreign keys and a
    busy timeout, so concurrent readers wait briefly instead of failing with "database is locked".
    ``read_only_file``: the SQLite file ``url`` names, opened read-only (its store cannot be written)."""
    if read_only_file is not None:
        return create_engine(
            "sqlite://", creator=lambda: connect_read_only(read_only_file, autocommit=False), poolclass=QueuePool
        )
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # Each process's connections carry its pid, so an operator (or a test) can tell memflow's backends apart
    # in pg_stat_activity; an application_name in the URL wins.
    connect_args = {} if "application_name" in make_url(url).query else {"application_name": f"memflow/{os.getpid()}"}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
