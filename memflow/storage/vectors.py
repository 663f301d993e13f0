"""The vector memory: a FAISS index whose ids are the SQL chunk ids, kept in one file in the store.

What a factory string builds (``Flat`` — exact inner product; ``HNSW32``, ``IVF256,PQ32`` and so on when
asked; ``auto``: chosen by size, see :mod:`memflow.storage.index_policy`) holds the chunk ids itself: IVF
indexes store ids in their inverted lists, everything else is wrapped in an ``IndexIDMap2``. (An id map
over an IVF index maps ids wrongly after a delete, because IVF does not renumber what it keeps; a file in
that layout, from before, is rebuilt from SQL on open.) Ids survive deletes and rebuilds.

The file is a cache of the SQL store: it is written to a temporary file, fsynced and renamed into place
(readers never see half a file), and a small JSON sidecar records the store generation it reflects, so a
store whose process died before saving is brought back in step on the next open. Readers load it
memory-mapped where FAISS can (the inverted lists of IVF indexes; the codes of Flat, HNSW and PQ ones), so
processes share the page cache instead of each holding a copy; a mapped index is copied into memory the
first time it must change.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np
import numpy.typing as npt

from memflow.defaults import INDEX_FILE, META_FILE
from memflow.errors import StoreError
from memflow.storage import index_policy
from memflow.storage.index_policy import AUTO, REFINE, IndexPolicy

__all__ = ["VectorMemory", "INDEX_FILE", "META_FILE"]


#: Adds of fewer vectors than this run on one thread: an IVF add of one document's chunks is microseconds of
#: work, and FAISS's OpenMP team costs milliseconds more per call, far more when another process holds a core.
PARALLEL_ADD = 1024

#: A filtered search of an approximate index that allows at most this many chunks reads their exact vectors
#: from SQL and scores them all (exact, and cheaper than probing enough lists to find them).
EXACT_FILTER_BELOW = 8192
#: The widest HNSW beam a filtered search uses.
MAX_FILTER_EF = 4096

ExactVectors = Callable[[npt.NDArray[np.int64]], tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half-written or unplaced file would hold the space a retry needs
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Run FAISS on ``count`` OpenMP threads inside the block (None: leave it as it is)."""
    if count is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _ivf(index: faiss.Index) -> Any:
    """The IndexIVF inside ``index`` (through pre-transforms), or None."""
    try:
        return faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError):
        return None


def _describe(index: faiss.Index) -> str:
    """A factory string for what ``index`` is (used when the sidecar does not say)."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    ivf: Any = _ivf(inner)
    if ivf is not None:
        ivf = faiss.downcast_index(ivf)
        if isinstance(ivf, faiss.IndexIVFPQ):
            return f"IVF{ivf.nlist},PQ{ivf.pq.M}"
        return f"IVF{ivf.nlist},Flat"
    if isinstance(inner, faiss.IndexHNSW):
        graph: Any = inner.hnsw
        return f"HNSW{graph.nb_neighbors(1)}"
    return "Flat"


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


class VectorMemory:
    """Chunk vectors in FAISS, keyed by chunk id. Not thread-safe; one per process and store.

    ``factory`` is what the store records (a FAISS factory string, or ``auto``); ``kind`` the factory
    string of the index actually built (the same, unless ``auto``) and ``built_for`` how many vectors it
    was built for (what ``auto`` re-chooses against)."""

    def __init__(
        self,
        *,
        dimension: int,
        factory: str = "Flat",
        kind: str | None = None,
        built_for: int = 0,
        policy: IndexPolicy | None = None,
    ) -> None:
        self.dimension = dimension
        self.factory = factory
        self.policy = policy or IndexPolicy.from_env()
        self.kind = kind or ("Flat" if factory == AUTO else factory)
        self.built_for = built_for
        self.index = self._new_index()
        self.generation = -1
        #: Loaded memory-mapped (read-only): copied into memory before any change.
        self.mapped = False
        #: Where approximate scores are re-ranked from (the store's SQL vectors), when set.
        self.exact: ExactVectors | None = None
        #: Search parameters measured for this index when it was built from SQL (saved with it).
        self.tuned: dict[str, int] = {}
        self.search_params: dict[str, int] = index_policy.apply_search_parameters(self.index, self.kind)
        self._pending_ids: list[npt.NDArray[np.int64]] = []
        self._pending_vectors: list[npt.NDArray[np.float32]] = []

    def _new_index(self) -> faiss.Index:
        try:
            inner = faiss.index_factory(self.dimension, self.kind, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise StoreError(f"invalid FAISS index factory string {self.kind!r}: {exc}") from exc
        if _ivf(inner) is not None:
            return inner  # IVF keeps the ids in its inverted lists
        return faiss.IndexIDMap2(inner)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) + sum(len(ids) for ids in self._pending_ids)

    @property
    def approximate(self) -> bool:
        return index_policy.is_approximate(self.kind)

    def ids(self) -> npt.NDArray[np.int64]:
        if isinstance(self.index, faiss.IndexIDMap2):
            indexed = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        else:
            invlists = _ivf(self.index).invlists
            parts = [np.zeros(0, dtype=np.int64)]
            for number in range(invlists.nlist):
                size = invlists.list_size(number)
                if size:
                    pointer = invlists.get_ids(number)
                    parts.append(faiss.rev_swig_ptr(pointer, size).astype(np.int64))
                    invlists.release_ids(number, pointer)
            indexed = np.concatenate(parts)
        return np.concatenate([indexed, *self._pending_ids]) if self._pending_ids else indexed

    def add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dimension):
            raise StoreError(f"vector shape {vectors.shape} does not match dimension {self.dimension}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self._own()
        if self.index.is_trained:
            with _threads(1 if len(ids) < PARALLEL_ADD else None):
                self.index.add_with_ids(vectors, ids)
        else:
            # Trained indexes (IVF, PQ) learn from the data: hold vectors until there are enough to train on.
            self._pending_ids.append(ids)
            self._pending_vectors.append(vectors)
            self._train_if_ready()

    def train(self, vectors: npt.NDArray[np.float32]) -> None:
        """Train the index on ``vectors`` (a sample of what it will hold); a no-op when it needs none."""
        if self.index.is_trained:
            return
        self._own()
        try:
            self.index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        except RuntimeError as exc:
            raise StoreError(
                f"FAISS index {self.kind!r} cannot be trained on {len(vectors)} vectors: {exc}; "
                "use 'Flat' or 'auto' for small memories"
            ) from exc

    def _train_if_ready(self, *, force: bool = False) -> None:
        count = sum(len(ids) for ids in self._pending_ids)
        need = self.training_size()
        if count == 0 or (count < need and not force):
            return
        vectors = np.concatenate(self._pending_vectors)
        ids = np.concatenate(self._pending_ids)
        self.train(vectors)
        self.index.add_with_ids(vectors, ids)
        self._pending_ids.clear()
        self._pending_vectors.clear()

    def training_size(self) -> int:
        """How many vectors the index needs before it can be trained (0 when it needs no training)."""
        if self.index.is_trained:
            return 0
        nlist = index_policy.nlist_of(self.kind) or 1
        # FAISS's k-means wants about 39 points per centroid; PQ codebooks want 256 points per sub-quantizer.
        return max(39 * nlist, 256 if "PQ" in self.kind else 0)

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
        self._own()
        try:
            removed += int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        except RuntimeError:
            # Some index types (HNSW) cannot delete: rebuild from the vectors the id map still reconstructs.
            removed += self._rebuild_without(ids)
        return removed

    def _rebuild_without(self, ids: npt.NDArray[np.int64]) -> int:
        current = faiss.vector_to_array(cast(Any, self.index).id_map).astype(np.int64)  # only id maps get here
        keep = ~np.isin(current, ids)
        vectors = np.vstack([self.index.reconstruct(int(i)) for i in current[keep]]) if keep.any() else None
        self.index = self._new_index()
        self.search_params = index_policy.apply_search_parameters(self.index, self.kind, self.tuned)
        if vectors is not None:
            self.add(current[keep], vectors)
        return int((~keep).sum())

    def search(
        self, query: npt.NDArray[np.float32], k: int, *, allowed: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top-k inner products for each query row: (scores, ids), padded with id -1 where fewer exist.
        Quantized indexes (PQ, SQ) are re-ranked with the exact vectors when ``exact`` is set.

        ``allowed`` (sorted chunk ids) restricts the search to those ids inside FAISS (an id selector), so
        k hits come back whenever k of them are stored. An approximate index searches a small allowed set
        exactly from the stored vectors, and a larger one with more of its lists (IVF) or a wider beam
        (HNSW) in proportion to how little of the memory it allows."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1, self.dimension)
        if self._pending_ids:
            self._own()
            self._train_if_ready(force=True)
        if self.index.ntotal == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            empty = np.full((len(query), max(k, 0)), -1, dtype=np.int64)
            return np.zeros(empty.shape, dtype=np.float32), empty
        if allowed is not None and self.approximate and self.exact is not None and len(allowed) <= EXACT_FILTER_BELOW:
            return self._search_exactly(query, k, allowed, self.exact)
        refine = self.exact is not None and ("PQ" in self.kind or "SQ" in self.kind)
        limit = int(self.index.ntotal) if allowed is None else min(int(self.index.ntotal), len(allowed))
        fetch = min(REFINE * k if refine else k, limit)
        if allowed is None:
            scores, ids = self.index.search(query, fetch)
        else:
            scores, ids = self.index.search(query, fetch, params=self._filtered(allowed))
        if refine and self.exact is not None:
            scores, ids = self._rerank(query, scores, ids, min(k, fetch), self.exact)
        return scores, ids

    def _filtered(self, allowed: npt.NDArray[np.int64]) -> Any:
        """FAISS search parameters that admit only ``allowed``, widened for an approximate index."""
        library: Any = faiss  # its type stubs lack the keyword constructors of the search parameters
        selector = library.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        share = max(len(allowed) / max(int(self.index.ntotal), 1), 1e-9)
        ivf = _ivf(self.index)
        if ivf is not None:
            nprobe = int(self.search_params.get("nprobe", ivf.nprobe))
            return library.SearchParametersIVF(sel=selector, nprobe=min(int(ivf.nlist), math.ceil(nprobe / share)))
        inner = faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap2) else self.index
        if isinstance(inner, faiss.IndexHNSW):
            ef = int(self.search_params.get("efSearch", inner.hnsw.efSearch))
            return library.SearchParametersHNSW(sel=selector, efSearch=min(MAX_FILTER_EF, math.ceil(ef / share)))
        return library.SearchParameters(sel=selector)

    @staticmethod
    def _search_exactly(
        query: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.int64], exact: ExactVectors
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        found, vectors = exact(allowed)
        width = min(k, len(found))
        out_scores = np.zeros((len(query), k), dtype=np.float32)
        out_ids = np.full((len(query), k), -1, dtype=np.int64)
        if width == 0:
            return out_scores, out_ids
        products = query @ vectors.T
        for row in range(len(query)):
            order = np.argsort(-products[row], kind="stable")[:width]
            out_scores[row, :width] = products[row, order]
            out_ids[row, :width] = found[order]
        return out_scores, out_ids

    @staticmethod
    def _rerank(
        query: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        ids: npt.NDArray[np.int64],
        k: int,
        exact: ExactVectors,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        wanted = np.unique(ids[ids >= 0])
        found, vectors = exact(wanted)
        if len(found) == 0:
            return scores[:, :k], ids[:, :k]
        position = {int(i): n for n, i in enumerate(found)}
        out_scores = np.zeros((len(query), k), dtype=np.float32)
        out_ids = np.full((len(query), k), -1, dtype=np.int64)
        for row in range(len(query)):
            candidates = [int(i) for i in ids[row] if int(i) in position]
            if not candidates:
                continue
            exact_scores = vectors[[position[i] for i in candidates]] @ query[row]
            order = np.argsort(-exact_scores, kind="stable")[:k]
            out_scores[row, : len(order)] = exact_scores[order]
            out_ids[row, : len(order)] = np.asarray(candidates, dtype=np.int64)[order]
        return out_scores, out_ids

    def _own(self) -> None:
        """Copy a memory-mapped index into memory, so it can change (the mapping is read-only)."""
        if not self.mapped:
            return
        ivf = _ivf(self.index)
        lists = faiss.downcast_InvertedLists(ivf.invlists) if ivf is not None else None
        if isinstance(lists, faiss.OnDiskInvertedLists):
            copy: Any = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
            for number in range(ivf.nlist):
                size = lists.list_size(number)
                if size:
                    copy.add_entries(number, size, lists.get_ids(number), lists.get_codes(number))
            ivf.replace_invlists(copy, True)
            copy.this.disown()  # the index owns it now
        else:
            # Zero-copy (IO_FLAG_MMAP_IFC) codes and id maps cannot grow: a serialized copy owns its memory.
            self.index = faiss.deserialize_index(faiss.serialize_index(self.index))
        self.mapped = False

    # -- the size policy (index: auto) ---------------------------------------------------------------------

    def needs_rebuild(self) -> bool:
        """Whether ``auto`` would choose another index for the vectors this memory now holds."""
        return self.factory == AUTO and self.policy.needs_rebuild(
            self.kind, self.built_for, self.ntotal, self.dimension
        )

    # -- persistence ---------------------------------------------------------------------------------------

    def save(self, directory: Path, *, generation: int) -> None:
        if self._pending_ids:
            self._own()
            self._train_if_ready(force=True)
        _atomic_write(directory / INDEX_FILE, lambda tmp: faiss.write_index(self.index, str(tmp)))
        meta = {
            "generation": generation,
            "ntotal": int(self.index.ntotal),
            "factory": self.factory,
            "index": self.kind,
            "built_for": self.built_for,
            "search": self.tuned,
            "dimension": self.dimension,
        }
        _atomic_write(directory / META_FILE, lambda tmp: tmp.write_text(json.dumps(meta)))
        self.generation = generation

    @classmethod
    def load(
        cls, directory: Path, *, dimension: int, factory: str, mmap: bool = False, policy: IndexPolicy | None = None
    ) -> VectorMemory:
        """The saved memory, or an empty one (generation -1) when there is no usable file yet. ``mmap``
        maps the file instead of reading it (for readers; the writer needs an index it can change)."""
        memory = cls(dimension=dimension, factory=factory, policy=policy)
        index_path, meta_path = directory / INDEX_FILE, directory / META_FILE
        if not index_path.exists():
            return memory
        meta = _read_meta(meta_path)
        try:
            index, mapped = _read_index(index_path, mmap=mmap, ivf="IVF" in str(meta.get("index", factory)))
        except (RuntimeError, OSError) as exc:
            # The file is a cache: a damaged one is rebuilt from SQL by the caller (generation -1).
            del exc
            return memory
        if index.d != dimension:
            return memory
        wrapped = isinstance(index, faiss.IndexIDMap2)
        if wrapped == (_ivf(cast(Any, index).index if wrapped else index) is not None):
            return memory  # an id map over IVF (wrong ids after deletes), or a bare index without ids
        kind = str(meta.get("index") or _describe(index)) if factory == AUTO else factory
        memory.index, memory.mapped, memory.kind = index, mapped, kind
        memory.built_for = int(meta.get("built_for", index.ntotal))
        tuned = meta.get("search")
        if isinstance(tuned, dict) and str(meta.get("index", kind)) == kind:
            memory.tuned = {str(k): int(v) for k, v in tuned.items()}
        memory.search_params = index_policy.apply_search_parameters(index, kind, memory.tuned)
        # A writer may have replaced the file while we read it: then the sidecar we read first may not
        # describe the index we got, and only a catch-up from SQL (generation -1) is safe.
        same = _read_meta(meta_path) == meta and int(meta.get("ntotal", -1)) == int(index.ntotal)
        memory.generation = int(meta.get("generation", -1)) if same else -1
        return memory

    @staticmethod
    def file_signature(directory: Path) -> tuple[int, int] | None:
        """(mtime_ns, size) of the sidecar, which changes whenever a writer saves; None if never saved."""
        try:
            stat = (directory / META_FILE).stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size


def _read_index(path: Path, *, mmap: bool, ivf: bool) -> tuple[faiss.Index, bool]:
    """Read an index file, memory-mapped when asked and FAISS supports it for its type: IVF inverted lists
    with IO_FLAG_MMAP (read-only on-disk lists over the file itself), the codes and id map of Flat, HNSW and
    PQ indexes with IO_FLAG_MMAP_IFC. Falls back to an ordinary read. Returns (index, mapped)."""
    if mmap:
        flags = [faiss.IO_FLAG_MMAP, faiss.IO_FLAG_MMAP_IFC] if ivf else [faiss.IO_FLAG_MMAP_IFC]
        for flag in flags:
            try:
                index = faiss.read_index(str(path), flag)
            except RuntimeError:
                continue
            found = _ivf(index)
            lists = faiss.downcast_InvertedLists(found.invlists) if found is not None else None
            if isinstance(lists, faiss.OnDiskInvertedLists):
                # Its default prefetch starts 32 threads per search to touch pages the page cache already
                # holds, which roughly doubled single-query latency in bench/scale.py's on-disk IVF runs.
                lists.prefetch_nthread = 0
            return index, True
    return faiss.read_index(str(path)), False
