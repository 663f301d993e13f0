"""Retrieval and reading-comprehension metrics, computed the standard way.

Retrieval (as trec_eval / pytrec_eval compute them, which is what BEIR reports): ``ranking`` is a list of
document ids, best first; ``qrels`` maps a document id to its graded relevance (unjudged = 0).

- nDCG@k: DCG = sum over the top k of rel_i / log2(i + 1) (linear gain, rank i from 1), divided by the DCG
  of the ideal ordering of all judged documents (trec_eval's ``ndcg_cut``).
- recall@k: relevant (rel > 0) documents in the top k / all relevant documents.
- MRR@k: 1 / rank of the first relevant document within the top k, else 0.

SQuAD (the official v1.1 evaluation script): answers are normalized by lower-casing, removing punctuation,
removing the articles a/an/the and collapsing whitespace; EM and token F1 take the maximum over the gold
answers; the totals are percentages over all questions in the data set (unanswered ones count as 0).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

__all__ = [
    "ndcg_at_k",
    "recall_at_k",
    "mrr_at_k",
    "mean",
    "normalize_answer",
    "exact_match",
    "f1_score",
    "best_over_golds",
    "squad_scores",
]


def ndcg_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    ideal = sorted((r for r in qrels.values() if r > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    if idcg == 0:
        return 0.0
    gains = [qrels.get(doc, 0) for doc in _dedup(ranking)[:k]]
    dcg = sum(gain / math.log2(i + 2) for i, gain in enumerate(gains) if gain > 0)
    return dcg / idcg


def recall_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, rel in qrels.items() if rel > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_dedup(ranking)[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    for i, doc in enumerate(_dedup(ranking)[:k]):
        if qrels.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def _dedup(ranking: Sequence[str]) -> list[str]:
    """A ranking lists each document once (its first, best, position)."""
    return list(dict.fromkeys(ranking))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric: str, prediction: str, golds: Sequence[str]) -> float:
    score = exact_match if metric == "em" else f1_score
    return max(score(prediction, gold) for gold in golds)


def squad_scores(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` in percent over every question in ``golds`` (as the official script)."""
    em = f1 = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        em += best_over_golds("em", predictions[qid], answers)
        f1 += best_over_golds("f1", predictions[qid], answers)
    total = len(golds)
    return {"exact_match": 100.0 * em / total if total else 0.0, "f1": 100.0 * f1 / total if total else 0.0}
