"""Token-level late interaction: ColBERT's MaxSim over the encoder's own contextual token outputs.

Each of the question's tokens is matched with its most similar token of a candidate chunk (inner product of
the encoder's normalized token outputs), and the matches are averaged with the question words' BM25 idf as
weights: a rare word of the question found in the chunk, as itself or as a near-synonym in context, counts
for more than a common one; stop words and punctuation count for nothing. The sentence-level features of
:mod:`.late_interaction` see whole sentences; this sees which *words* of the question the chunk answers.

MiniLM was not trained for MaxSim (ColBERT models are), but its token outputs still carry the signal: on
SciFact train it is the reranker's strongest feature once idf-weighted (``bench/quality.py``).

Chunk token vectors are not stored (about 770 bytes a token at float16, several times the store); they are
encoded at query time for the first ``depth`` candidates and kept in a least-recently-used cache keyed by
the chunk's text, so a memory asked many questions encodes each chunk once.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memflow.components.encoders.sentence_transformers import EncoderModel
from memflow.storage.analyzer import tokenize

if TYPE_CHECKING:
    from memflow.storage.store import Store

__all__ = [
    "TokenVectorCache",
    "TokenScorer",
    "question_weights",
    "best_matches",
    "weighted_mean",
    "maxsim",
    "shared_cache",
]

_WORD = re.compile(r"\w+")


Encode = Callable[[EncoderModel, list[str]], list[npt.NDArray[np.float16]]]


def _token_outputs(encoder: EncoderModel, texts: list[str]) -> list[npt.NDArray[np.float16]]:
    return [vectors for vectors, _ in encoder.token_vectors(texts)]


class TokenVectorCache:
    """Arrays encoded from texts (by default each text's token vectors), by the text's digest, the least
    recently used dropped past ``max_bytes``. ``encode`` maps an encoder and texts to one array per text."""

    def __init__(self, *, max_bytes: int, encode: Encode = _token_outputs) -> None:
        self.max_bytes = max_bytes
        self.encode = encode
        self._entries: OrderedDict[bytes, npt.NDArray[np.float16]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def vectors(self, encoder: EncoderModel, texts: Sequence[str]) -> list[npt.NDArray[np.float16]]:
        keys = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts]
        found: dict[bytes, npt.NDArray[np.float16]] = {}
        with self._lock:
            for key in keys:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    found[key] = self._entries[key]
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        if missing:
            encoded = self.encode(encoder, list(missing.values()))
            with self._lock:
                for key, vectors in zip(missing, encoded, strict=True):
                    found[key] = vectors
                    self._put(key, vectors)
        with self._lock:
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        return [found[key] for key in keys]

    def _put(self, key: bytes, vectors: npt.NDArray[np.float16]) -> None:
        if key in self._entries or vectors.nbytes > self.max_bytes:
            return
        self._entries[key] = vectors
        self._bytes += vectors.nbytes
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes


def question_weights(
    store: Store, question: str, spans: npt.NDArray[np.int32], *, idf: Mapping[str, float] | None = None
) -> npt.NDArray[np.float64]:
    """Each question token's weight: the BM25 idf of the index term of the word it is part of (a word the
    index has never seen gets the highest idf of the question's known words; stop words and punctuation 0).
    ``idf``: the index's idf of terms the caller already looked up; only the others are read from the store."""
    words = [(m.start(), m.end(), tokenize(m.group())) for m in _WORD.finditer(question)]
    wanted = {term for _, _, terms in words for term in terms}
    known = {term: idf[term] for term in wanted if term in idf} if idf else {}
    if wanted - known.keys():
        known.update(store.lexical.idf(wanted - known.keys()))
    unseen = max(known.values(), default=1.0)
    weights = np.zeros(len(spans))
    for n, (start, _) in enumerate(spans.tolist()):
        for begin, end, terms in words:
            if begin <= start < end:
                weights[n] = known.get(terms[0], unseen) if terms else 0.0
                break
    return weights


def best_matches(question: npt.NDArray[np.float32], chunk: npt.NDArray[np.float16]) -> npt.NDArray[np.float64]:
    """Each question token's best inner product with any of the chunk's tokens (empty for an empty chunk)."""
    if len(chunk) == 0 or len(question) == 0:
        return np.zeros(0)
    return np.asarray((question @ chunk.astype(np.float32).T).max(axis=1), dtype=np.float64)


def weighted_mean(best: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]) -> float:
    """``best`` averaged with ``weights`` (a plain mean where they sum to 0; 0 for no matches)."""
    if len(best) == 0:
        return 0.0
    total = float(weights.sum())
    return float(best @ weights / total) if total > 0 else float(best.mean())


def maxsim(
    question: npt.NDArray[np.float32], weights: npt.NDArray[np.float64], chunk: npt.NDArray[np.float16]
) -> float:
    """The weighted mean over the question's tokens of each one's best inner product with a chunk token."""
    return weighted_mean(best_matches(question, chunk), weights)


_SHARED: dict[tuple[str, str, str, str, str, int], TokenVectorCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(
    kind: str, encoder: EncoderModel, *, max_bytes: int, encode: Encode = _token_outputs
) -> TokenVectorCache:
    """The process's cache of ``kind`` vectors for this encoder and size, shared by every reranker. The key
    names what the vectors depend on, so another model (or int8 against fp32) never reads them."""
    key = (kind, encoder.model_id, encoder.backend, encoder.device, encoder.precision, max_bytes)
    with _SHARED_LOCK:
        return _SHARED.setdefault(key, TokenVectorCache(max_bytes=max_bytes, encode=encode))


def clear_shared_caches(kind: str) -> None:
    """Empty every shared cache of ``kind`` vectors (for measuring cold queries)."""
    with _SHARED_LOCK:
        for key, cache in _SHARED.items():
            if key[0] == kind:
                cache.clear()


class TokenScorer:
    """Token MaxSim of a question against chunk texts, with one encoder and its token-vector cache."""

    def __init__(self, encoder: EncoderModel, *, cache_bytes: int = 256 << 20) -> None:
        self.encoder = encoder
        self.cache = shared_cache("tokens", encoder, max_bytes=cache_bytes)

    def scores(
        self, store: Store, question: str, texts: Sequence[str], *, idf: Mapping[str, float] | None = None
    ) -> npt.NDArray[np.float64]:
        """MaxSim of ``question`` against each text (``idf``: as in :func:`question_weights`)."""
        weights, matches = self.matches(store, question, texts, idf=idf)
        return np.asarray([weighted_mean(best, weights) for best in matches])

    def matches(
        self, store: Store, question: str, texts: Sequence[str], *, idf: Mapping[str, float] | None = None
    ) -> tuple[npt.NDArray[np.float64], list[npt.NDArray[np.float64]]]:
        """The question tokens' weights (:func:`question_weights`) and, per text, each question token's best
        match among the text's tokens (:func:`best_matches`): what any weighting of MaxSim is computed from."""
        ((tokens, spans),) = self.encoder.token_vectors([question])
        weights = question_weights(store, question, spans, idf=idf)
        q = tokens.astype(np.float32)
        chunks = self.cache.vectors(self.encoder, texts)
        filled = [c for c in chunks if len(c)]
        if len(q) == 0 or not filled:
            return weights, [best_matches(q, chunk) for chunk in chunks]
        # One product over every chunk's tokens at once, then each chunk's best match per question token.
        similarity = q @ np.concatenate(filled).astype(np.float32).T
        starts = np.cumsum([0] + [len(c) for c in filled[:-1]])
        best = np.maximum.reduceat(similarity, starts, axis=1).astype(np.float64)
        columns = iter(best.T)
        return weights, [next(columns) if len(chunk) else np.zeros(0) for chunk in chunks]

    @staticmethod
    def clear_caches() -> None:
        """Empty every token-vector cache of the process (for measuring cold queries)."""
        clear_shared_caches("tokens")
