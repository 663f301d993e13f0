"""The vector memory: a FAISS index whose ids are the SQL chunk ids, kept in one file in the store.

The index is an ``IndexIDMap2`` over whatever a FAISS factory string builds (``Flat`` — exact inner
product — by default; ``HNSW32``, ``IVF256,PQ32`` and so on when asked), so ids survive deletes and
rebuilds. The file is a cache of the SQL store: it is written to a temporary file, fsynced and renamed into
place (readers never see half a file), and a small JSON sidecar records the store generation it reflects,
so a store whose process died before saving is brought back in step on the next open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from memflow.errors import StoreError

__all__ = ["VectorMemory"]

INDEX_FILE = "vectors.faiss"
META_FILE = "vectors.json"


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class VectorMemory:
    """Chunk vectors in FAISS, keyed by chunk id. Not thread-safe; one per process and store."""

    def __init__(self, *, dimension: int, factory: str = "Flat") -> None:
        self.dimension = dimension
        self.factory = factory
        self.index = self._new_index()
        self.generation = -1
        self._pending_ids: list[npt.NDArray[np.int64]] = []
        self._pending_vectors: list[npt.NDArray[np.float32]] = []

    def _new_index(self) -> faiss.IndexIDMap2:
        try:
            inner = faiss.index_factory(self.dimension, self.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise StoreError(f"invalid FAISS index factory string {self.factory!r}: {exc}") from exc
        return faiss.IndexIDMap2(inner)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) + sum(len(ids) for ids in self._pending_ids)

    def ids(self) -> npt.NDArray[np.int64]:
        indexed = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        return np.concatenate([indexed, *self._pending_ids]) if self._pending_ids else indexed

    def add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dimension):
            raise StoreError(f"vector shape {vectors.shape} does not match dimension {self.dimension}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.index.is_trained:
            self.index.add_with_ids(vectors, ids)
        else:
            # Trained indexes (IVF, PQ) learn from the data: hold vectors until there are enough to train on.
            self._pending_ids.append(ids)
            self._pending_vectors.append(vectors)
            self._train_if_ready()

    def _train_if_ready(self, *, force: bool = False) -> None:
        count = sum(len(ids) for ids in self._pending_ids)
        need = self._training_size()
        if count == 0 or (count < need and not force):
            return
        vectors = np.concatenate(self._pending_vectors)
        ids = np.concatenate(self._pending_ids)
        try:
            self.index.train(vectors)
        except RuntimeError as exc:
            raise StoreError(
                f"FAISS index {self.factory!r} cannot be trained on {count} vectors: {exc}; "
                "use 'Flat' for small memories"
            ) from exc
        self.index.add_with_ids(vectors, ids)
        self._pending_ids.clear()
        self._pending_vectors.clear()

    def _training_size(self) -> int:
        inner = faiss.downcast_index(self.index.index)
        nlist = int(getattr(inner, "nlist", 1))
        # FAISS's k-means wants about 39 points per centroid; PQ codebooks want 256 points per sub-quantizer.
        return max(39 * nlist, 256 if "PQ" in self.factory else 0)

    def remove(self, ids: npt.NDArray[np.int64]) -> int:
        if len(ids) == 0:
            return 0
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        removed = 0
        if self._pending_ids:
            keep = [~np.isin(p, ids) for p in self._pending_ids]
            removed += sum(int((~k).sum()) for k in keep)
            self._pending_ids = [p[k] for p, k in zip(self._pending_ids, keep, strict=True)]
            self._pending_vectors = [v[k] for v, k in zip(self._pending_vectors, keep, strict=True)]
        try:
            removed += int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        except RuntimeError:
            # Some index types (HNSW) cannot delete: rebuild from the vectors the id map still reconstructs.
            removed += self._rebuild_without(ids)
        return removed

    def _rebuild_without(self, ids: npt.NDArray[np.int64]) -> int:
        current = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        keep = ~np.isin(current, ids)
        vectors = np.vstack([self.index.reconstruct(int(i)) for i in current[keep]]) if keep.any() else None
        self.index = self._new_index()
        if vectors is not None:
            self.add(current[keep], vectors)
        return int((~keep).sum())

    def search(self, query: npt.NDArray[np.float32], k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top-k inner products for each query row: (scores, ids), padded with id -1 where fewer exist."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1, self.dimension)
        if self._pending_ids:
            self._train_if_ready(force=True)
        if self.index.ntotal == 0 or k <= 0:
            empty = np.full((len(query), max(k, 0)), -1, dtype=np.int64)
            return np.zeros(empty.shape, dtype=np.float32), empty
        scores, ids = self.index.search(query, min(k, int(self.index.ntotal)))
        return scores, ids

    def reset(self) -> None:
        self.index = self._new_index()
        self._pending_ids.clear()
        self._pending_vectors.clear()

    # -- persistence ---------------------------------------------------------------------------------------

    def save(self, directory: Path, *, generation: int) -> None:
        if self._pending_ids:
            self._train_if_ready(force=True)
        _atomic_write(directory / INDEX_FILE, lambda tmp: faiss.write_index(self.index, str(tmp)))
        meta = {"generation": generation, "ntotal": int(self.index.ntotal), "factory": self.factory,
                "dimension": self.dimension}
        _atomic_write(directory / META_FILE, lambda tmp: tmp.write_text(json.dumps(meta)))
        self.generation = generation

    @classmethod
    def load(cls, directory: Path, *, dimension: int, factory: str) -> VectorMemory:
        """The saved memory, or an empty one (generation -1) when there is no file yet."""
        memory = cls(dimension=dimension, factory=factory)
        index_path, meta_path = directory / INDEX_FILE, directory / META_FILE
        if not index_path.exists():
            return memory
        try:
            index = faiss.read_index(str(index_path))
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        except (RuntimeError, ValueError, OSError) as exc:
            # The file is a cache: a damaged one is rebuilt from SQL by the caller (generation -1).
            del exc
            return memory
        if index.d != dimension or not isinstance(index, faiss.IndexIDMap2):
            return memory
        memory.index = index
        memory.generation = int(meta.get("generation", -1))
        return memory

    @staticmethod
    def file_signature(directory: Path) -> tuple[int, int] | None:
        """(mtime_ns, size) of the sidecar, which changes whenever a writer saves; None if never saved."""
        try:
            stat = (directory / META_FILE).stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size
