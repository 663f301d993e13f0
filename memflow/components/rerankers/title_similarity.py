"""The title as a field of its own for dense scoring: the question's similarity to the document's title.

A chunk vector reads the title at most as the first line of a document's first chunk, mixed into everything
else the chunk says; a later chunk does not read it at all. Encoded alone, a scientific abstract's or an
article's title is a one-line summary of what the whole document is about, which the question can be
compared with directly: on SciFact train it lifts the reranker's cross-validated nDCG@10 (``bench/quality.py``).

Titles are not stored as vectors; they are short, so they are encoded at query time (one batch for the
candidates' distinct titles not yet cached) and kept in a least-recently-used cache keyed by the title's
text. A document whose title is only a loader's fallback (its file name, a JSONL record's id) has none.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from memflow.components.encoders.sentence_transformers import EncoderModel
from memflow.components.rerankers.token_maxsim import clear_shared_caches, shared_cache

__all__ = ["TitleScorer"]


def _sentence_vectors(encoder: EncoderModel, texts: list[str]) -> list[npt.NDArray[np.float16]]:
    return list(encoder.encode_queries(texts).astype(np.float16))


class TitleScorer:
    """The inner product of a question with each of several titles, both encoded by one encoder."""

    def __init__(self, encoder: EncoderModel, *, cache_bytes: int = 32 << 20) -> None:
        self.encoder = encoder
        self.cache = shared_cache("titles", encoder, max_bytes=cache_bytes, encode=_sentence_vectors)

    def scores(self, question_vector: npt.NDArray[np.float32], titles: Sequence[str]) -> npt.NDArray[np.float64]:
        """Each title's inner product with the (unit) question vector, which the query encoder of the same model
        already computed; NaN for an empty title (no title to compare)."""
        out = np.full(len(titles), np.nan)
        present = [n for n, title in enumerate(titles) if title]
        if not present:
            return out
        q = np.asarray(question_vector, dtype=np.float32)
        vectors = self.cache.vectors(self.encoder, [titles[n] for n in present])
        out[present] = [float(v.astype(np.float32) @ q) for v in vectors]
        return out

    @staticmethod
    def clear_caches() -> None:
        """Empty every title-vector cache of the process (for measuring cold queries)."""
        clear_shared_caches("titles")
