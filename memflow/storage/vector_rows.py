"""Reading the chunk vectors back from SQL, the source of truth the vector memory is built and checked from.

The store, its index builder and its doctor read vectors only through these functions: a whole column is
streamed in batches (a million 384-dim vectors are 1.5 GB), never loaded at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from memflow.storage import codec
from memflow.storage.sql import ChunkRow, SettingRow

__all__ = ["stored_generation", "chunk_ids", "vectors_of", "iter_vectors"]

#: Ids per ``IN (...)`` query: well under SQLite's and PostgreSQL's parameter limits.
ID_BATCH = 4096


def stored_generation(engine: Engine) -> int:
    """The store's write counter as SQL holds it (read before the rows it describes)."""
    with Session(engine) as session:
        row = session.get(SettingRow, "generation")
        return int(row.value) if row is not None else 0


def chunk_ids(engine: Engine) -> npt.NDArray[np.int64]:
    """Every stored chunk id (the vector ids)."""
    with Session(engine) as session:
        return np.fromiter(session.scalars(select(ChunkRow.id)), dtype=np.int64)


def vectors_of(
    engine: Engine, ids: npt.ArrayLike, *, batch: int = ID_BATCH
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The stored vectors of ``ids`` (those that exist), in ascending id order: (ids found, vectors)."""
    wanted = np.sort(np.asarray(ids, dtype=np.int64))
    found: list[npt.NDArray[np.int64]] = []
    vectors: list[npt.NDArray[np.float32]] = []
    with Session(engine) as session:
        for start in range(0, len(wanted), batch):
            part = [int(i) for i in wanted[start : start + batch]]
            rows = session.execute(
                select(ChunkRow.id, ChunkRow.vector).where(ChunkRow.id.in_(part)).order_by(ChunkRow.id)
            ).all()
            if rows:
                found.append(np.asarray([r[0] for r in rows], dtype=np.int64))
                vectors.append(codec.f32_rows(r[1] for r in rows))
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(found), np.vstack(vectors)


def iter_vectors(
    engine: Engine, *, batch: int = 8192
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    """Every stored (ids, vectors), ``batch`` rows at a time, in ascending id order."""
    with Session(engine) as session:
        rows = session.execute(select(ChunkRow.id, ChunkRow.vector).order_by(ChunkRow.id)).yield_per(batch)
        for part in rows.partitions(batch):
            yield np.asarray([r[0] for r in part], dtype=np.int64), codec.f32_rows(r[1] for r in part)
