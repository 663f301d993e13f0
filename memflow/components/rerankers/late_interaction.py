"""A second-stage scorer built from what the store holds, plus the encoder's token outputs for the very top.

For each of the first ``depth`` hits it computes, from stored vectors and the lexical index (but ``tokens``,
``rare_tokens`` and ``title``, which run the encoder at query time: over the first ``token_depth`` chunks'
tokens, each once per token-vector cache, and over the candidates' titles):

- ``dense``: the question's inner product with the chunk vector;
- ``maxsim``: late interaction, the best inner product of the question with any of the chunk's stored
  (late-chunked) sentence vectors -- a chunk that holds one sentence answering the question scores high
  even when the rest of it is about something else (ColBERT's MaxSim, at sentence granularity);
- ``lexical``: the chunk's BM25 score for the question (fields included: title and section);
- ``sentence_lexical``: lexical late interaction, the best share of the question's idf mass that any one
  sentence of the chunk covers (the question's index terms found in that sentence, idf-weighted);
- ``prf``: pseudo-relevance feedback (Rocchio in embedding space): the inner product with the question
  moved towards the mean vector of the first-stage top ``prf_depth`` chunks, ``normalize(q + prf_beta * m)``;
- ``first``: the first-stage score (e.g. the hybrid retriever's fused score);
- ``bigram``: phrase evidence, the idf-weighted share of the question's adjacent index-term pairs that occur
  adjacent in the chunk (title included): "super bowl" matched as a phrase, not as two stray words;
- ``sentence_joint``: the best sentence by meaning and words at once, max over the chunk's sentences of
  (its vector's inner product with the question) x (its share of the question's idf mass);
- ``window_joint``: the same over two adjacent sentences too (their terms together, the better one's
  inner product), for answers that span a sentence boundary;
- ``coverage``: the share of the question's idf mass the whole chunk (and its title) holds;
- ``tokens``: token-level late interaction, the idf-weighted mean over the question's tokens of each one's
  best match among the chunk's contextual token vectors (ColBERT's MaxSim, :mod:`.token_maxsim`), for the
  first ``token_depth`` candidates (the rest get the lowest value); it runs the encoder over chunks not yet
  in its cache;
- ``title``: the question's inner product with the document's title encoded alone (:mod:`.title_similarity`),
  the title as a dense field of its own; a document whose title is only a loader's fallback (file name,
  record id) gets the titled candidates' mean, so a store without titles leaves the feature flat;
- ``rare_tokens``: the same token matches as ``tokens``, each question token weighted by its word's idf
  *squared*: a chunk that matches the question's one rare term (a gene, a drug) outranks one that matches
  several moderately common ones, which the plain idf weighting cannot express;
- ``document_coverage``: ``coverage`` over the chunk's whole document (every chunk, title and sections), from
  the lexical index: a chunk of an abstract whose other half holds the rest of the question's terms.

Each feature is standardized over the candidates (``normalization``) and the new score is their weighted
sum. Then a second hop of feedback (``feedback``, ``feedback_depth``): the question moved towards the vectors
of the ``feedback_depth`` best chunks *by that score*, and the final score is ``(1 - feedback)`` x the
standardized score + ``feedback`` x the standardized inner product with the moved question: feedback from
the reranked first hop, which is more often relevant than the first stage's top. The default weights and
feedback were fitted on the SciFact *train* queries (``bench/quality.py --fit listwise``), never on a test
split. Hits past ``depth`` keep their order below the reranked ones, and the best ``k`` are returned (the
``k`` input overrides it for one run): a first stage that fetches ``depth`` candidates gives the reranker
the same pool whatever ``k`` a caller asks for. With ``tokens``, ``rare_tokens`` and
``title`` at 0 no model runs.

The token and title features' encoder is ``model`` / ``backend`` (default: the packaged MiniLM, the same
loaded instance as the default query encoder's); a store encoded with another model should name it here too.
``token_cache_mb`` bounds the in-process cache of chunk token vectors (0: no cache).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from memflow.components.base import Component, Socket
from memflow.components.encoders.sentence_transformers import Backend, load_encoder
from memflow.components.rerankers.title_similarity import TitleScorer
from memflow.components.rerankers.token_maxsim import TokenScorer, weighted_mean
from memflow.components.retrievers._hits import minmax, rehit, zscore
from memflow.models import DEFAULT_MODEL, resolve_model_path
from memflow.storage.analyzer import tokenize
from memflow.types import Hit, Vector, informative_title

if TYPE_CHECKING:
    from memflow.storage.store import Store

__all__ = ["LateInteractionReranker", "FEATURES", "candidate_features"]

FEATURES = (
    "dense",
    "maxsim",
    "lexical",
    "sentence_lexical",
    "prf",
    "first",
    "bigram",
    "sentence_joint",
    "window_joint",
    "coverage",
    "tokens",
    "title",
    "rare_tokens",
    "document_coverage",
)
Normalization = Literal["zscore", "minmax"]


def feedback_scores(vectors: np.ndarray, q: np.ndarray, rows: Any, *, beta: float = 1.0) -> np.ndarray:
    """Inner products of ``vectors`` with the unit question ``q`` moved towards the mean of ``vectors[rows]``
    (Rocchio in embedding space): ``vectors @ normalize(q + beta * mean)``."""
    moved = q + beta * vectors[rows].mean(axis=0)
    return np.asarray(vectors @ (moved / max(float(np.linalg.norm(moved)), 1e-12)))


def candidate_features(
    store: Store,
    query: str,
    query_vector: Vector,
    hits: list[Hit],
    *,
    prf_depth: int = 3,
    prf_beta: float = 1.0,
    k1: float = 0.9,
    b: float = 0.4,
    tokens: TokenScorer | None = None,
    token_depth: int = 50,
    titles: TitleScorer | None = None,
) -> np.ndarray:
    """The raw feature matrix, one row per hit, columns in :data:`FEATURES` order (``tokens`` is 0 without
    a token scorer, ``title`` 0 without a title scorer)."""
    return _features_and_vectors(
        store,
        query,
        query_vector,
        hits,
        prf_depth=prf_depth,
        prf_beta=prf_beta,
        k1=k1,
        b=b,
        tokens=tokens,
        token_depth=token_depth,
        titles=titles,
    )[0]


@functools.lru_cache(maxsize=1 << 16)
def chunk_terms(
    title: str, text: str, sentences: tuple[str, ...]
) -> tuple[tuple[frozenset[str], ...], frozenset[str], frozenset[tuple[str, str]]]:
    """A chunk's index terms: each sentence's set, the whole chunk's (its title first) and the chunk's adjacent
    term pairs. They depend on the text alone, so a memory asked many questions tokenizes each candidate once."""
    words = tokenize(f"{title}\n{text}" if title else text)
    sentence_terms = tuple(frozenset(tokenize(sentence)) for sentence in sentences)
    return sentence_terms, frozenset(words), frozenset(zip(words, words[1:], strict=False))


def _features_and_vectors(
    store: Store,
    query: str,
    query_vector: Vector,
    hits: list[Hit],
    *,
    prf_depth: int,
    prf_beta: float,
    k1: float,
    b: float,
    tokens: TokenScorer | None = None,
    token_depth: int = 50,
    titles: TitleScorer | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The feature matrix and the hits' chunk vectors it was computed from."""
    ids = [h.chunk_id for h in hits]
    q = np.asarray(query_vector, dtype=np.float32)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    vectors = store.chunk_vectors(ids)
    chunks = {c.id: c for c in store.chunks(ids)}
    dense = vectors @ q
    lexical_scores = store.lexical.score(query, ids, k1=k1, b=b)
    lexical = np.asarray([lexical_scores[i] for i in ids])
    query_terms = tokenize(query)
    idf = store.lexical.idf(query_terms)
    mass = sum(idf.values()) or 1.0
    pairs = {(a, b_) for a, b_ in zip(query_terms, query_terms[1:], strict=False) if a != b_}
    pair_mass = sum(idf.get(a, 0.0) + idf.get(b_, 0.0) for a, b_ in pairs) or 1.0
    known = frozenset(idf)
    rows = len(ids)
    maxsim, sentence_lexical, sentence_joint, window_joint, coverage_all, bigram = (np.zeros(rows) for _ in range(6))
    for n, i in enumerate(ids):
        chunk = chunks.get(i)
        if chunk is None or not chunk.sentences or len(chunk.sentence_vectors) != len(chunk.sentences):
            maxsim[n] = dense[n]
            continue
        sentence_terms, chunk_words, chunk_pairs = chunk_terms(
            chunk.title, chunk.text, tuple(s.text for s in chunk.sentences)
        )
        term_sets = [terms & known for terms in sentence_terms]  # only the question's terms carry idf
        coverage = np.asarray([sum(idf[t] for t in terms) / mass for terms in term_sets])
        similarity = chunk.sentence_vectors.astype(np.float32) @ q
        joint = np.clip(similarity, 0.0, None) * coverage
        maxsim[n] = float(similarity.max())
        sentence_lexical[n] = float(coverage.max())
        sentence_joint[n] = float(joint.max())
        # an answer that spans two sentences: their terms together, the better sentence's meaning
        window = [
            float(
                max(similarity[j], similarity[j + 1], 0.0) * sum(idf[t] for t in term_sets[j] | term_sets[j + 1]) / mass
            )
            for j in range(len(term_sets) - 1)
        ]
        window_joint[n] = max([sentence_joint[n], *window])
        coverage_all[n] = sum(idf[t] for t in chunk_words & known) / mass
        present = chunk_pairs & pairs
        bigram[n] = sum(idf.get(a, 0.0) + idf.get(b_, 0.0) for a, b_ in present) / pair_mass
    prf = feedback_scores(vectors, q, slice(0, max(1, prf_depth)), beta=prf_beta)
    first = np.asarray([h.score for h in hits])
    token_scores, rare_token_scores = np.zeros(rows), np.zeros(rows)
    if tokens is not None:
        head = [chunks[h.chunk_id].text if h.chunk_id in chunks else h.text for h in hits[:token_depth]]
        weights, matches = tokens.matches(store, query, head, idf=idf)  # the question's idf, looked up above
        for column, token_weights in ((token_scores, weights), (rare_token_scores, weights**2)):
            scored = np.asarray([weighted_mean(best, token_weights) for best in matches])
            column[: len(scored)] = scored
            column[len(scored) :] = scored.min() if len(scored) else 0.0
    title_scores = np.zeros(rows)
    if titles is not None:
        names = [informative_title(c.document, c.title) if (c := chunks.get(h.chunk_id)) else "" for h in hits]
        scored = titles.scores(q, names)  # the question's vector, not encoded again
        # an untitled document is neither raised nor lowered: it gets the titled candidates' mean
        title_scores = np.where(np.isnan(scored), np.nanmean(scored) if (~np.isnan(scored)).any() else 0.0, scored)
    held = store.lexical.document_terms(idf, {c.document_id for c in chunks.values()})
    document_coverage = np.asarray(
        [sum(idf[t] for t in held.get(c.document_id, ())) / mass if (c := chunks.get(i)) else 0.0 for i in ids]
    )
    columns = {
        "dense": dense,
        "maxsim": maxsim,
        "lexical": lexical,
        "sentence_lexical": sentence_lexical,
        "prf": prf,
        "first": first,
        "bigram": bigram,
        "sentence_joint": sentence_joint,
        "window_joint": window_joint,
        "coverage": coverage_all,
        "tokens": token_scores,
        "title": title_scores,
        "rare_tokens": rare_token_scores,
        "document_coverage": document_coverage,
    }
    features = np.column_stack([columns[name] for name in FEATURES]).astype(np.float64)
    return features, vectors


class LateInteractionReranker(Component):
    """Reranks hits by a weighted sum of standardized features (see the module docs)."""

    inputs = {
        "query": Socket(str),
        "query_vector": Socket(Vector),
        "hits": Socket(list[Hit]),
        "k": Socket(int, optional=True, default=None, doc="overrides the component's k for one run"),
    }
    outputs = {"hits": Socket(list[Hit])}

    def __init__(
        self,
        *,
        k: int = 10,
        depth: int = 100,
        dense: float = 0.002,
        maxsim: float = 0.075,
        lexical: float = 0.023,
        sentence_lexical: float = 0.029,
        prf: float = 0.125,
        first: float = 0.047,
        bigram: float = 0.017,
        sentence_joint: float = 0.043,
        window_joint: float = 0.041,
        coverage: float = 0.018,
        tokens: float = 0.113,
        title: float = 0.167,
        rare_tokens: float = 0.193,
        document_coverage: float = 0.107,
        prf_depth: int = 3,
        prf_beta: float = 1.0,
        feedback: float = 0.2,
        feedback_depth: int = 1,
        token_depth: int = 50,
        model: str = DEFAULT_MODEL,
        backend: Backend = "auto",
        token_cache_mb: int = 256,
        normalization: Normalization = "zscore",
        k1: float = 0.9,
        b: float = 0.4,
    ) -> None:
        if k < 1 or depth < 1 or prf_depth < 1 or feedback_depth < 1 or token_depth < 1:
            raise ValueError("k, depth, prf_depth, feedback_depth and token_depth must be at least 1")
        self.k = k
        if token_cache_mb < 0:
            raise ValueError("token_cache_mb must be at least 0")
        if not 0.0 <= feedback < 1.0:
            raise ValueError("feedback must be in [0, 1)")
        self.dense, self.maxsim, self.lexical, self.sentence_lexical = dense, maxsim, lexical, sentence_lexical
        self.prf, self.first, self.bigram, self.sentence_joint = prf, first, bigram, sentence_joint
        self.window_joint, self.coverage, self.tokens, self.title = window_joint, coverage, tokens, title
        self.rare_tokens, self.document_coverage = rare_tokens, document_coverage
        self.feedback, self.feedback_depth = feedback, feedback_depth
        self.weights = np.asarray([getattr(self, name) for name in FEATURES], dtype=np.float64)  # FEATURES order
        if (self.weights < 0).any() or not self.weights.any():
            raise ValueError("feature weights must be non-negative and not all 0")
        self.depth, self.prf_depth, self.prf_beta = depth, prf_depth, prf_beta
        self.normalization, self.k1, self.b = normalization, k1, b
        self.token_depth, self.model, self.backend, self.token_cache_mb = token_depth, model, backend, token_cache_mb
        if tokens > 0 or title > 0 or rare_tokens > 0:
            resolve_model_path(model)  # fail at build time, naming the path
        self._tokens: TokenScorer | None = None
        self._titles: TitleScorer | None = None

    def run(self, *, query: str, query_vector: Vector, hits: list[Hit], k: int | None = None) -> dict[str, Any]:
        k = self.k if k is None else k
        if len(hits) < 2:
            return {"hits": hits[:k]}
        store = self.context.require_store("rerankers.late_interaction")
        head, tail = hits[: self.depth], hits[self.depth :]
        features, vectors = _features_and_vectors(
            store,
            query,
            query_vector,
            head,
            prf_depth=self.prf_depth,
            prf_beta=self.prf_beta,
            k1=self.k1,
            b=self.b,
            tokens=self.token_scorer(),
            token_depth=self.token_depth,
            titles=self.title_scorer(),
        )
        scores = self.combine(features)
        if self.feedback > 0:
            scores = self.second_hop(vectors, query_vector, scores)
        by_id = {h.chunk_id: float(s) for h, s in zip(head, scores, strict=True)}
        floor = min(by_id.values())
        for n, h in enumerate(tail, start=1):  # below every reranked hit, in their first-stage order
            by_id.setdefault(h.chunk_id, floor - n)
        return {"hits": rehit(head + tail, by_id)[:k]}

    def token_scorer(self) -> TokenScorer | None:
        """The token MaxSim scorer (its encoder loaded on first use), or None while ``tokens`` and
        ``rare_tokens`` weigh 0."""
        if max(self.weights[FEATURES.index("tokens")], self.weights[FEATURES.index("rare_tokens")]) <= 0:
            return None
        if self._tokens is None:
            encoder = load_encoder(self.model, backend=self.backend)
            self._tokens = TokenScorer(encoder, cache_bytes=self.token_cache_mb << 20)
        return self._tokens

    def title_scorer(self) -> TitleScorer | None:
        """The title similarity scorer (its encoder loaded on first use), or None while ``title`` weighs 0."""
        if self.weights[FEATURES.index("title")] <= 0:
            return None
        if self._titles is None:
            self._titles = TitleScorer(load_encoder(self.model, backend=self.backend))
        return self._titles

    def _scale(self, values: np.ndarray) -> np.ndarray:
        return zscore(values) if self.normalization == "zscore" else minmax(values)

    def combine(self, features: np.ndarray) -> np.ndarray:
        columns = [self._scale(features[:, j]) for j in range(features.shape[1])]
        return np.column_stack(columns) @ self.weights

    def second_hop(self, vectors: np.ndarray, query_vector: Vector, scores: np.ndarray) -> np.ndarray:
        """Blend ``scores`` with the candidates' inner products with the question moved towards the vectors
        of the ``feedback_depth`` best-scored candidates."""
        q = np.asarray(query_vector, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        best = np.argsort(-scores, kind="stable")[: self.feedback_depth]
        feedback = feedback_scores(vectors, q, best).astype(np.float64)
        return (1.0 - self.feedback) * self._scale(scores) + self.feedback * self._scale(feedback)
