"""The blob codec: what goes into a SQL column comes back bit for bit, in the layout the store documents."""

from __future__ import annotations

import numpy as np

from memflow.storage import codec


def test_vectors_round_trip_exactly_as_little_endian_float32() -> None:
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    blob = codec.f32_bytes(vector)
    assert len(blob) == 384 * 4
    assert blob == vector.astype("<f4").tobytes()
    assert np.array_equal(codec.f32_array(blob), vector)
    stacked = codec.f32_rows([blob, codec.f32_bytes(-vector)])
    assert stacked.shape == (2, 384) and np.array_equal(stacked[1], -vector)


def test_half_precision_matrices_keep_their_shape_even_with_no_rows() -> None:
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(codec.f16_matrix(codec.f16_bytes(matrix), 3), matrix.astype(np.float16))
    empty = codec.f16_matrix(codec.f16_bytes(np.zeros((0, 4))), 0, 4)
    assert empty.shape == (0, 4)


def test_sentence_spans_are_int32_pairs() -> None:
    spans = [(0, 12), (13, 40), (41, 41)]
    blob = codec.spans_bytes(spans)
    assert len(blob) == 3 * 2 * 4
    assert codec.spans_array(blob).tolist() == [list(s) for s in spans]
    assert codec.spans_array(codec.spans_bytes([])).shape == (0, 2)
