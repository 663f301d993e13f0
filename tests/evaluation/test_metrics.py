"""The metrics against hand-computed values, and SQuAD EM/F1 against the official scores of real systems."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from memflow.evaluation.metrics import (
    exact_match,
    f1_score,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    recall_at_k,
    squad_scores,
)
from memflow.evaluation.squad import load_predictions, load_squad

QRELS = {"a": 2, "b": 1, "c": 0, "d": 1}
RANKING = ["c", "a", "x", "b", "d"]


def test_ndcg_uses_linear_graded_gains_and_the_ideal_ordering_of_all_judged_documents() -> None:
    # top 3 gains: c=0, a=2, x=0  ->  DCG = 2 / log2(3); ideal: 2, 1, 1 -> 2/1 + 1/log2(3) + 1/2
    dcg = 2 / math.log2(3)
    idcg = 2 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(RANKING, QRELS, 3) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(RANKING, QRELS, 3) == pytest.approx(0.403030, abs=1e-6)
    # all five: + b at rank 4 (1/log2(5)) + d at rank 5 (1/log2(6)); ideal over 3 relevant documents
    full = (2 / math.log2(3) + 1 / math.log2(5) + 1 / math.log2(6)) / idcg
    assert ndcg_at_k(RANKING, QRELS, 10) == pytest.approx(full)
    assert ndcg_at_k(["a", "b", "d"], QRELS, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], QRELS, 10) == 0.0
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0  # no relevant document: 0, as trec_eval


def test_ndcg_counts_a_document_once_at_its_best_position() -> None:
    assert ndcg_at_k(["a", "a", "b"], QRELS, 3) == ndcg_at_k(["a", "b"], QRELS, 3)


def test_recall_and_mrr() -> None:
    assert recall_at_k(RANKING, QRELS, 1) == 0.0
    assert recall_at_k(RANKING, QRELS, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, QRELS, 4) == pytest.approx(2 / 3)
    assert recall_at_k(RANKING, QRELS, 100) == 1.0
    assert mrr_at_k(RANKING, QRELS, 1) == 0.0
    assert mrr_at_k(RANKING, QRELS, 10) == 0.5
    assert mrr_at_k(["x", "y", "d"], QRELS, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "d"], QRELS, 2) == 0.0


def test_squad_normalization_and_token_f1() -> None:
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert exact_match("the Denver Broncos.", "Denver Broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    # prediction "denver broncos won" vs gold "denver broncos": precision 2/3, recall 1 -> F1 0.8
    assert f1_score("Denver Broncos won", "the Denver Broncos") == pytest.approx(0.8)
    assert f1_score("Carolina", "Denver Broncos") == 0.0
    scores = squad_scores(
        {"q1": "Denver Broncos", "q2": "x"}, {"q1": ["Broncos", "Denver Broncos"], "q2": ["y"], "q3": ["z"]}
    )
    assert scores == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 / 3)}


# The official EM/F1 of leaderboard systems on SQuAD v1.1 dev (../shared/data/squad/SOURCE.md).
OFFICIAL = {
    "bert_ensemble_google.json": (86.21, 92.20),
    "rnet_plus_ensemble_msra.json": (82.47, 88.48),
    "slqa_plus_ensemble_alibaba.json": (81.95, 88.38),
    "match_lstm_ensemble_smu.json": (67.63, 76.76),
    "logistic_regression_baseline_stanford.json": (40.14, 50.98),
}


@pytest.fixture(scope="module")
def squad_golds(shared_data: Path) -> dict[str, list[str]]:
    data = load_squad(shared_data / "squad" / "dev-v1.1.json")
    assert len(data.paragraphs) == 2067 and len(data.questions) == 10570
    return {q.id: q.answers for q in data.questions}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_squad_scores_reproduce_the_official_figures(
    name: str, squad_golds: dict[str, list[str]], shared_data: Path
) -> None:
    predictions = load_predictions(shared_data / "squad" / "reference_predictions" / name)
    scores = squad_scores(predictions, squad_golds)
    assert (round(scores["exact_match"], 2), round(scores["f1"], 2)) == OFFICIAL[name]
