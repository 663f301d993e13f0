"""How arrays are kept in the store's SQL blobs: raw little-endian values, row-major, no header.

A chunk's vector is float32 (exact search and re-ranking read it back bit for bit); sentence vectors and
summary slot vectors are float16 (they only weigh evidence, and half the bytes is half the store); sentence
spans are int32 (start, end) pairs. Every module that reads or writes those columns goes through here, so
the format is written down once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["f32_bytes", "f32_array", "f32_rows", "f16_bytes", "f16_matrix", "spans_bytes", "spans_array"]

F32 = "<f4"
F16 = "<f2"
I32 = "<i4"


def f32_bytes(values: npt.ArrayLike) -> bytes:
    return np.asarray(values, dtype=F32).tobytes()


def f32_array(blob: bytes) -> npt.NDArray[np.float32]:
    """A read-only view of the blob's float32 values (copy it before changing it)."""
    return np.frombuffer(blob, dtype=F32)


def f32_rows(blobs: Iterable[bytes]) -> npt.NDArray[np.float32]:
    """One vector per blob, stacked into a matrix."""
    return np.vstack([np.frombuffer(blob, dtype=F32) for blob in blobs])


def f16_bytes(values: npt.ArrayLike) -> bytes:
    return np.asarray(values, dtype=F16).tobytes()


def f16_matrix(blob: bytes, rows: int, columns: int = -1) -> npt.NDArray[np.float16]:
    """The blob's float16 values as ``rows`` rows (a read-only view); give ``columns`` when rows may be 0."""
    return np.frombuffer(blob, dtype=F16).reshape(rows, columns)


def spans_bytes(spans: Sequence[tuple[int, int]]) -> bytes:
    return np.asarray(spans, dtype=I32).reshape(-1, 2).tobytes()


def spans_array(blob: bytes) -> npt.NDArray[np.int32]:
    """The blob's (start, end) pairs as an n x 2 array."""
    return np.frombuffer(blob, dtype=I32).reshape(-1, 2)
