"""Score fusion against hand-computed values."""

from __future__ import annotations

import pytest

from memflow.components.retrievers.hybrid import fuse

DENSE = [(1, 0.9), (2, 0.5), (3, 0.1)]
LEXICAL = [(3, 12.0), (4, 6.0), (1, 2.0)]


def test_reciprocal_rank_fusion() -> None:
    fused = dict(fuse(DENSE, LEXICAL, fusion="rrf", rrf_k=60))
    # equal weights: each list contributes 1 / (60 + rank)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 63)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[4] == pytest.approx(1 / 62)
    weighted = dict(fuse(DENSE, LEXICAL, fusion="rrf", rrf_k=0, dense_weight=0.75))
    assert weighted[2] == pytest.approx(2 * 0.75 / 2)
    assert weighted[4] == pytest.approx(2 * 0.25 / 2)


def test_minmax_fusion_scales_each_list_and_counts_a_missing_chunk_as_zero() -> None:
    fused = fuse(DENSE, LEXICAL, fusion="minmax", dense_weight=0.5)
    scores = dict(fused)
    # dense scaled: 1 -> 1, 2 -> 0.5, 3 -> 0; lexical scaled: 3 -> 1, 4 -> 0.4, 1 -> 0
    assert scores[1] == pytest.approx(0.5 * 1 + 0.5 * 0)
    assert scores[2] == pytest.approx(0.5 * 0.5)
    assert scores[3] == pytest.approx(0.5 * 0 + 0.5 * 1)
    assert scores[4] == pytest.approx(0.5 * 0.4)
    assert [i for i, _ in fused][:2] in ([1, 3], [3, 1]) and [i for i, _ in fused][2:] == [2, 4]
    lexical_heavy = dict(fuse(DENSE, LEXICAL, fusion="minmax", dense_weight=0.2))
    assert lexical_heavy[3] > lexical_heavy[1]


def test_zscore_fusion_and_empty_lists() -> None:
    fused = dict(fuse(DENSE, [], fusion="zscore"))
    assert fused[1] > fused[2] > fused[3]
    assert fuse([], [], fusion="rrf") == []
