"""Retrieval and answer quality on public data: BEIR, SQuAD, needle in a haystack (``memflow eval``).

from memflow.evaluation import load_beir, open_beir_memory, evaluate_beir
data = load_beir("../shared/data/scifact")
with open_beir_memory(data, ask_pipeline="pipelines/ask-hybrid.yaml") as memory:
    print(evaluate_beir(memory, data).metrics)        # {"nDCG@10": ..., "R@10": ..., ...}
"""

from memflow.evaluation.beir import BeirData, evaluate_beir, load_beir, open_beir_memory
from memflow.evaluation.metrics import (
    exact_match,
    f1_score,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    recall_at_k,
    squad_scores,
)
from memflow.evaluation.niah import NiahReport, format_grid, run_niah, save_heatmap
from memflow.evaluation.retrieval import RetrievalReport, evaluate_rankings, rank_documents
from memflow.evaluation.squad import (
    SquadData,
    evaluate_squad_ask,
    evaluate_squad_retrieval,
    load_squad,
    open_squad_memory,
)

__all__ = [
    "BeirData",
    "load_beir",
    "open_beir_memory",
    "evaluate_beir",
    "SquadData",
    "load_squad",
    "open_squad_memory",
    "evaluate_squad_retrieval",
    "evaluate_squad_ask",
    "NiahReport",
    "run_niah",
    "format_grid",
    "save_heatmap",
    "RetrievalReport",
    "rank_documents",
    "evaluate_rankings",
    "ndcg_at_k",
    "recall_at_k",
    "mrr_at_k",
    "normalize_answer",
    "exact_match",
    "f1_score",
    "squad_scores",
]
