"""Token-level late interaction (rerankers.token_maxsim) on the real MiniLM and the real essay store."""

from __future__ import annotations

import numpy as np
import pytest

from memflow import Memory, Pipeline
from memflow.components.base import RunContext
from memflow.components.encoders.sentence_transformers import load_encoder
from memflow.components.rerankers.late_interaction import FEATURES, LateInteractionReranker, candidate_features
from memflow.components.rerankers.token_maxsim import (
    TokenScorer,
    TokenVectorCache,
    best_matches,
    maxsim,
    question_weights,
    weighted_mean,
)
from memflow.pipeline import builtin_pipeline
from memflow.storage.lexical import tokenize

QUESTION = "Why do startup founders need a founder visa?"


def test_token_vectors_are_the_models_own_token_outputs() -> None:
    encoder = load_encoder("default", backend="torch")
    text = "The Eiffel Tower was built in 1889."
    (vectors, spans), (empty, no_spans) = encoder.token_vectors([text, ""])
    reference = encoder.model.encode([text], output_value="token_embeddings")[0].numpy()[1:-1]  # no [CLS], [SEP]
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    assert vectors.dtype == np.float16 and vectors.shape == reference.shape
    assert np.allclose(vectors.astype(np.float32), reference, atol=2e-3)
    # uncased word pieces, their spans in the text as written
    assert [text[s:e] for s, e in spans.tolist()][:4] == ["The", "E", "iff", "el"]
    assert empty.shape == (0, 384) and no_spans.shape == (0, 2)


def test_question_weights_are_the_words_bm25_idf(essay_memory: Memory) -> None:
    store = essay_memory.store
    ((_, spans),) = load_encoder("default").token_vectors([QUESTION])
    weights = question_weights(store, QUESTION, spans)
    idf = store.lexical.idf(tokenize(QUESTION))
    by_piece = dict(zip((QUESTION[s:e] for s, e in spans.tolist()), weights.tolist(), strict=True))
    assert by_piece["a"] == by_piece["?"] == 0.0  # a (Lucene's) stop word, punctuation
    assert by_piece["Why"] == pytest.approx(idf["whi"])  # stemmed as the index stems it
    assert by_piece["startup"] == pytest.approx(idf["startup"])
    assert by_piece["founders"] == by_piece["founder"] == pytest.approx(idf["founder"])  # stemmed to one term
    assert by_piece["visa"] == pytest.approx(idf["visa"]) and idf["visa"] > idf["startup"]
    # a word no chunk holds takes the question's highest known idf
    odd = "Which founders need a zyxwvut?"
    ((_, odd_spans),) = load_encoder("default").token_vectors([odd])
    odd_weights = question_weights(store, odd, odd_spans)
    pieces = [odd[s:e] for s, e in odd_spans.tolist()]
    assert odd_weights[pieces.index("z")] == pytest.approx(store.lexical.idf(["founder"])["founder"])


def test_maxsim_by_hand() -> None:
    question = np.asarray([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    chunk = np.asarray([[1.0, 0.0], [0.8, 0.6]], dtype=np.float16)
    # best matches: 1.0, 0.6, max(0.6, 0.96) = 0.96
    assert maxsim(question, np.asarray([1.0, 1.0, 2.0]), chunk) == pytest.approx((1.0 + 0.6 + 2 * 0.96) / 4, abs=1e-3)
    assert maxsim(question, np.zeros(3), chunk) == pytest.approx((1.0 + 0.6 + 0.96) / 3, abs=1e-3)  # all stop words
    assert maxsim(question, np.ones(3), chunk[:0]) == 0.0
    assert best_matches(question, chunk) == pytest.approx([1.0, 0.6, 0.96], abs=1e-3)
    assert weighted_mean(np.asarray([1.0, 0.6, 0.96]), np.asarray([1.0, 1.0, 2.0]) ** 2) == pytest.approx(
        (1.0 + 0.6 + 4 * 0.96) / 6
    )


def test_the_cache_keys_by_text_and_drops_the_least_recently_used() -> None:
    encoder = load_encoder("default")
    texts = ["Penguins live in Antarctica.", "Photosynthesis needs light.", "Stocks fell after the tariffs."]
    sizes = [vectors.nbytes for vectors, _ in encoder.token_vectors(texts)]
    cache = TokenVectorCache(max_bytes=sizes[0] + max(sizes[1:]) + 16)  # room for two of the three
    first = cache.vectors(encoder, texts[:2])
    assert (cache.hits, cache.misses) == (0, 2)
    assert np.array_equal(cache.vectors(encoder, texts[:1])[0], first[0]) and cache.hits == 1
    cache.vectors(encoder, texts[2:])  # over budget: the least recently used (texts[1]) goes
    assert cache.nbytes <= cache.max_bytes
    cache.vectors(encoder, texts[:1])
    assert cache.hits == 2
    cache.vectors(encoder, texts[1:2])
    assert cache.misses == 4


def test_the_tokens_feature_and_reranking_by_it(essay_memory: Memory) -> None:
    store = essay_memory.store
    run = Pipeline.from_yaml(builtin_pipeline("ask-hybrid-minmax")).run(
        {"query": QUESTION, "k": 20}, context=RunContext(store=store), outputs=["embed.query_vector", "decode.answer"]
    )
    vector, hits = np.asarray(run["embed"]["query_vector"]), list(run["decode"]["answer"].hits)
    assert len(hits) > 8
    scorer = TokenScorer(load_encoder("default"))
    features = candidate_features(store, QUESTION, vector, hits, tokens=scorer, token_depth=8)
    column, rare = features[:, FEATURES.index("tokens")], features[:, FEATURES.index("rare_tokens")]
    ((q, spans),) = load_encoder("default").token_vectors([QUESTION])
    weights = question_weights(store, QUESTION, spans)
    for row, hit in enumerate(hits[:8]):
        chunk_tokens = load_encoder("default").token_vectors([store.chunks([hit.chunk_id])[0].text])[0][0]
        assert column[row] == pytest.approx(maxsim(q.astype(np.float32), weights, chunk_tokens), abs=1e-4)
        # rare_tokens: the same matches, each question token weighted by its idf squared
        assert rare[row] == pytest.approx(maxsim(q.astype(np.float32), weights**2, chunk_tokens), abs=1e-4)
    assert (column[8:] == column[:8].min()).all()  # past token_depth: the lowest computed value
    assert (rare[8:] == rare[:8].min()).all()
    assert not np.allclose(rare[:8], column[:8])
    assert (candidate_features(store, QUESTION, vector, hits)[:, FEATURES.index("tokens")] == 0).all()
    only_tokens = {f: float(f == "tokens") for f in FEATURES}
    reranker = LateInteractionReranker(**only_tokens, feedback=0.0, token_depth=8)  # type: ignore[arg-type]
    reranker.bind(RunContext(store=store))
    reranked = reranker.run(query=QUESTION, query_vector=vector, hits=hits)["hits"]
    by_id = dict(zip([h.chunk_id for h in hits[:8]], column[:8], strict=True))
    assert [h.chunk_id for h in reranked[:8]] == sorted(by_id, key=lambda i: -by_id[i])
    assert reranked[0].document.endswith("foundervisa.txt")
    # one cache per model variant: the int8 encoder's vectors are never read for the fp32 one
    assert TokenScorer(load_encoder("default")).cache is scorer.cache
    assert TokenScorer(load_encoder("default", backend="torch")).cache is not scorer.cache
    with pytest.raises(ValueError, match="token_depth"):
        LateInteractionReranker(token_depth=0)
    assert LateInteractionReranker(tokens=0.0, rare_tokens=0.0).token_scorer() is None  # weight 0: no encoder
    assert LateInteractionReranker(tokens=0.0, rare_tokens=0.1).token_scorer() is not None
