"""The lexical index: BM25 over the same chunks as the vector memory, kept inside the SQL store.

Two tables beside the chunks: ``lexical_postings`` (term, chunk id, term frequency; primary key term then
chunk, so a term's postings are one index range) and ``lexical_chunks`` (each chunk's length in indexed
terms). The store writes them in the same transaction as the chunks (:func:`index_chunks`) and deletes them
with the chunks (:func:`remove_chunks`, with ``ON DELETE CASCADE`` as a safety net), so the lexical and the
dense memory always describe the same chunks, on SQLite and PostgreSQL alike. Collection statistics (chunk
count, mean length, document frequencies) are read from those tables at query time, so they are never stale.

What is indexed for a chunk is its text plus its fields: the document's title (unless the chunk already
begins with it) and its section heading. Tokens are lower-cased word characters, possessive "'s" removed,
Lucene's English stop words dropped, stemmed with the Snowball English stemmer (PyStemmer) — the analysis
Lucene's EnglishAnalyzer does, which BEIR's BM25 baselines use.

Scoring is Lucene's BM25 (idf = ln(1 + (N - df + 0.5) / (df + 0.5))) computed by the database itself: one
grouped query returns only the top k chunks, however long the postings lists are.

A store ingested before the index existed gets it built on first use (:meth:`LexicalIndex.ensure`), and a
store indexed with another tokenizer version is re-indexed; both are logged.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    case,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from memflow.storage.analyzer import MAX_TERM, TOKENIZER, tokenize
from memflow.storage.sql import Base, ChunkRow, DocumentRow, SettingRow

if TYPE_CHECKING:
    from memflow.types import Chunk

__all__ = [
    "LexicalPostingRow",
    "LexicalChunkRow",
    "tokenize",
    "index_chunks",
    "remove_chunks",
    "LexicalIndex",
    "TOKENIZER",
]

log = logging.getLogger("memflow")

#: Names the analysis; a store records it, and one indexed with another is re-indexed on first use.
SETTING = "lexical_tokenizer"
_BATCH = 5000


class LexicalPostingRow(Base):
    __tablename__ = "lexical_postings"
    __table_args__ = (Index("ix_lexical_postings_chunk", "chunk_id"), {"sqlite_with_rowid": False})

    term: Mapped[str] = mapped_column(String(MAX_TERM), primary_key=True)
    chunk_id: Mapped[int] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True)
    tf: Mapped[int] = mapped_column(Integer)


class LexicalChunkRow(Base):
    __tablename__ = "lexical_chunks"

    chunk_id: Mapped[int] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True)
    length: Mapped[int] = mapped_column(Integer)


def field_text(text: str, *, title: str = "", section: str | None = None, document_id: str | None = None) -> str:
    """A chunk's text with its fields: the title (unless the chunk starts with it, or it is only the
    document's id) and the section heading (unless it is the title)."""
    parts: list[str] = []
    title = title.strip()
    if title and title != document_id and text.lstrip()[: len(title)].casefold() != title.casefold():
        parts.append(title)
    if section and section.strip() and section.strip() != title:
        parts.append(section.strip())
    parts.append(text)
    return "\n".join(parts)


def _rows(chunk_id: int, text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    terms = tokenize(text)
    postings = [{"term": t, "chunk_id": chunk_id, "tf": n} for t, n in Counter(terms).items()]
    return postings, {"chunk_id": chunk_id, "length": len(terms)}


def _write(session: Session, items: Iterable[tuple[int, str]]) -> int:
    postings: list[dict[str, Any]] = []
    lengths: list[dict[str, Any]] = []
    count = 0
    for chunk_id, text in items:
        rows, length = _rows(chunk_id, text)
        postings.extend(rows)
        lengths.append(length)
        count += 1
        if len(postings) >= _BATCH:
            session.execute(insert(LexicalPostingRow), postings)
            postings.clear()
    if postings:
        session.execute(insert(LexicalPostingRow), postings)
    if lengths:
        session.execute(insert(LexicalChunkRow), lengths)
    return count


def index_chunks(session: Session, chunks: Sequence[Chunk]) -> None:
    """Index stored chunks (their ``id`` set) in the caller's transaction: the store's write hook."""
    if not chunks:
        return
    if session.get(SettingRow, SETTING) is None:
        session.add(SettingRow(key=SETTING, value=TOKENIZER))
    items = []
    for chunk in chunks:
        if chunk.id is None:
            raise ValueError("index_chunks needs stored chunks (with ids)")
        doc = chunk.document
        items.append(
            (
                chunk.id,
                field_text(
                    chunk.text,
                    title=doc.title,
                    section=chunk.section,
                    document_id=str(doc.metadata.get("id", "")) or None,
                ),
            )
        )
    _write(session, items)


def remove_chunks(session: Session, chunk_ids: Sequence[int]) -> None:
    """Delete the index rows of these chunks in the caller's transaction: the store's delete hook."""
    ids = list(chunk_ids)
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        session.execute(delete(LexicalPostingRow).where(LexicalPostingRow.chunk_id.in_(part)))
        session.execute(delete(LexicalChunkRow).where(LexicalChunkRow.chunk_id.in_(part)))


#: An allowed set of at most this many chunks is scored directly (SQL ``IN``); a larger one filters the
#: ranking, read deeper until it holds k allowed chunks.
SCORE_WITHIN_BELOW = 4096


def _member(sorted_ids: npt.NDArray[np.int64], chunk_id: int) -> bool:
    at = int(np.searchsorted(sorted_ids, chunk_id))
    return at < len(sorted_ids) and int(sorted_ids[at]) == chunk_id


class LexicalIndex:
    """BM25 search over a store's lexical tables (one per open store; see ``Store.lexical``).

    The store hands it its ``engine``, its ``name`` (for the log), how to read its ``generation`` and how to
    take its ``writer`` lock (an index built on first use is a write)."""

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        generation: Callable[[], int],
        writer: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.engine, self.name = engine, name
        self._generation, self._writer = generation, writer
        self._checked: int | None = None
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Build or complete the index when the store has chunks it lacks (a store ingested before it
        existed) or was indexed with another tokenizer. Checked once per store generation."""
        generation = self._generation()
        if self._checked == generation:
            return
        with self._lock:
            with Session(self.engine) as session:
                chunks = int(session.scalar(select(func.count()).select_from(ChunkRow)) or 0)
                indexed = int(session.scalar(select(func.count()).select_from(LexicalChunkRow)) or 0)
                tokenizer = session.get(SettingRow, SETTING)
            stale = tokenizer is not None and tokenizer.value != TOKENIZER
            if chunks != indexed or stale:
                self._build(rebuild=stale, missing=chunks - (0 if stale else indexed))
            self._checked = generation

    def _build(self, *, rebuild: bool, missing: int) -> None:
        what = "re-indexing every chunk for the new tokenizer" if rebuild else f"indexing {missing} chunks"
        log.warning("lexical index of store %s: %s (once)", self.name, what)
        with self._writer(), Session(self.engine) as session, session.begin():
            if rebuild:
                session.execute(delete(LexicalPostingRow))
                session.execute(delete(LexicalChunkRow))
            done = select(LexicalChunkRow.chunk_id)
            query = (
                select(ChunkRow.id, ChunkRow.text, ChunkRow.section, DocumentRow.title, DocumentRow.meta)
                .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                .where(ChunkRow.id.not_in(done))
                .order_by(ChunkRow.id)
            )
            rows = session.execute(query).all()
            _write(
                session,
                (
                    (
                        cid,
                        field_text(
                            text, title=title, section=section, document_id=str((meta or {}).get("id", "")) or None
                        ),
                    )
                    for cid, text, section, title, meta in rows
                ),
            )
            setting = session.get(SettingRow, SETTING)
            if setting is None:
                session.add(SettingRow(key=SETTING, value=TOKENIZER))
            else:
                setting.value = TOKENIZER

    def search(
        self, query: str, k: int, *, k1: float = 0.9, b: float = 0.4, allowed: npt.NDArray[np.int64] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the ``k`` best chunks for ``query``, best first; with ``allowed`` (sorted
        chunk ids), the best among those only. A small allowed set is scored alone (an IN list in SQL); a
        large one is read from the ranking as deep as it takes to find ``k`` allowed chunks."""
        if allowed is None:
            return self._score(query, k=k, k1=k1, b=b, within=None)
        if len(allowed) <= SCORE_WITHIN_BELOW:
            return self._score(query, k=k, k1=k1, b=b, within=[int(i) for i in allowed])
        share = len(allowed) / max(self._chunk_count(), 1)
        depth = max(k, math.ceil(2 * k / share))
        while True:
            ranked = self._score(query, k=depth, k1=k1, b=b, within=None)
            kept = [(i, s) for i, s in ranked if _member(allowed, i)]
            if len(kept) >= k or len(ranked) < depth:
                return kept[:k]
            depth *= 4

    def _chunk_count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(LexicalChunkRow)) or 0)

    def score(self, query: str, chunk_ids: Sequence[int], *, k1: float = 0.9, b: float = 0.4) -> dict[int, float]:
        """BM25 scores of the given chunks only (0 for those that match no query term)."""
        found = dict(self._score(query, k=len(chunk_ids), k1=k1, b=b, within=list(chunk_ids)))
        return {int(i): found.get(int(i), 0.0) for i in chunk_ids}

    def idf(self, terms: Iterable[str]) -> dict[str, float]:
        """Lucene's BM25 idf of each index term (terms no chunk holds are left out)."""
        wanted = list(set(terms))
        if not wanted:
            return {}
        self.ensure()
        with Session(self.engine) as session:
            n = int(session.scalar(select(func.count()).select_from(LexicalChunkRow)) or 0)
            df = dict(
                session.execute(
                    select(LexicalPostingRow.term, func.count())
                    .where(LexicalPostingRow.term.in_(wanted))
                    .group_by(LexicalPostingRow.term)
                ).all()
            )
        return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items() if d}

    def document_terms(self, terms: Iterable[str], document_ids: Iterable[int]) -> dict[int, set[str]]:
        """Which of ``terms`` (index terms) each document holds in any of its chunks (their title and section
        fields included); documents holding none are left out."""
        wanted, documents = list(set(terms)), list(set(document_ids))
        if not wanted or not documents:
            return {}
        self.ensure()
        found: dict[int, set[str]] = {}
        with Session(self.engine) as session:
            rows = session.execute(
                select(ChunkRow.document_id, LexicalPostingRow.term)
                .distinct()
                .join(ChunkRow, ChunkRow.id == LexicalPostingRow.chunk_id)
                .where(LexicalPostingRow.term.in_(wanted), ChunkRow.document_id.in_(documents))
            ).all()
        for document_id, term in rows:
            found.setdefault(int(document_id), set()).add(term)
        return found

    def _score(self, query: str, *, k: int, k1: float, b: float, within: list[int] | None) -> list[tuple[int, float]]:
        self.ensure()
        terms = Counter(tokenize(query))
        if not terms or k < 1 or (within is not None and not within):
            return []
        with Session(self.engine) as session:
            n, avgdl = session.execute(
                select(func.count(), func.avg(LexicalChunkRow.length)).select_from(LexicalChunkRow)
            ).one()
            if not n:
                return []
            df = dict(
                session.execute(
                    select(LexicalPostingRow.term, func.count())
                    .where(LexicalPostingRow.term.in_(list(terms)))
                    .group_by(LexicalPostingRow.term)
                ).all()
            )
            weights = {t: terms[t] * math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items() if d}
            if not weights:
                return []
            p, c = LexicalPostingRow, LexicalChunkRow
            weight = case({t: literal(w, Float) for t, w in weights.items()}, value=p.term, else_=literal(0.0, Float))
            norm = literal(k1, Float) * (literal(1.0 - b, Float) + literal(b / float(avgdl or 1.0), Float) * c.length)
            score = func.sum(weight * p.tf * literal(k1 + 1.0, Float) / (p.tf + norm)).label("score")
            query_ = (
                select(p.chunk_id, score)
                .join(c, c.chunk_id == p.chunk_id)
                .where(p.term.in_(list(weights)))
                .group_by(p.chunk_id)
                .order_by(score.desc(), p.chunk_id)
                .limit(k)
            )
            if within is not None:
                query_ = query_.where(p.chunk_id.in_(within))
            rows = session.execute(query_).all()
        return [(int(chunk_id), float(s)) for chunk_id, s in rows]

    def stats(self) -> dict[str, Any]:
        with Session(self.engine) as session:
            n, total = session.execute(
                select(func.count(), func.coalesce(func.sum(LexicalChunkRow.length), 0)).select_from(LexicalChunkRow)
            ).one()
            terms = session.scalar(select(func.count(func.distinct(LexicalPostingRow.term))))
        return {"chunks": int(n), "tokens": int(total), "terms": int(terms or 0), "tokenizer": TOKENIZER}
