"""Fit the late-interaction reranker's feature weights on a BEIR *train* split, and check them on test.

    .venv/bin/python bench/quality.py ../shared/data/scifact            # features for train + test, then fit

For every judged query of each split it runs the first stage of pipelines/ask-hybrid.yaml (min-max hybrid,
100 candidates per side) against the cached eval store (`memflow eval beir` builds the same one), computes
the reranker's raw features (rerankers.late_interaction.candidate_features) for the top `depth` chunks, and
caches them. Then it searches the weight simplex (step 0.1) and the pseudo-relevance feedback depth for
the best mean nDCG@10 on train, and prints those weights with their train and test nDCG@10. The weights
in pipelines/ask-hybrid.yaml / the component's defaults come from this, never from the test split.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRF_DEPTHS = (1, 3, 5, 10)


def _features(data_dir: Path, split: str, depth: int, cache: Path | None) -> dict[str, object]:
    from memflow.components.base import RunContext
    from memflow.components.rerankers.late_interaction import candidate_features
    from memflow.evaluation.beir import load_beir, open_beir_memory
    from memflow.evaluation.cache import cache_root
    from memflow.evaluation.retrieval import document_id
    from memflow.pipeline import Pipeline

    data = load_beir(data_dir, split=split)
    out = cache_root(cache) / f"features-{data.name}-{split}-{depth}.npz"
    if out.exists():
        loaded = np.load(out, allow_pickle=True)
        return {k: loaded[k] for k in loaded.files}
    first = Pipeline.from_string("""
name: first-stage
components:
  embed: {type: encoders.query}
  retrieve: {type: retrievers.hybrid, params: {k: 10, candidates: 100, fusion: minmax, dense_weight: 0.5}}
connections:
  - embed.query -> retrieve.query
  - embed.query_vector -> retrieve.query_vector
""")
    qids, docs, feats = [], [], []
    with open_beir_memory(data, cache=cache) as memory:
        context = RunContext(store=memory.store)
        for n, qid in enumerate(sorted(data.queries)):
            run = first.run({"query": data.queries[qid], "k": depth}, context=context)
            hits = run["retrieve"]["hits"]
            vector = first.components["embed"].run(query=data.queries[qid])["query_vector"]
            base = candidate_features(memory.store, data.queries[qid], vector, hits, prf_depth=PRF_DEPTHS[0])
            vectors = memory.store.chunk_vectors([h.chunk_id for h in hits])
            q = vector / np.linalg.norm(vector)
            prf = []
            for depth_ in PRF_DEPTHS:  # the same feedback feature as the component's, for each depth
                feedback = q + vectors[:depth_].mean(axis=0)
                prf.append(vectors @ (feedback / np.linalg.norm(feedback)))
            matrix = np.column_stack([base[:, :4], *prf, base[:, 5]])
            qids.append(qid)
            docs.append(np.asarray([document_id(h.document) for h in hits], dtype=object))
            feats.append(matrix)
            if n % 50 == 0:
                print(f"{split}: {n}/{len(data.queries)} queries", file=sys.stderr)
    result = {"qids": np.asarray(qids, dtype=object), "docs": np.asarray(docs + [None], dtype=object)[:-1],
              "feats": np.asarray(feats + [None], dtype=object)[:-1],
              "qrels": np.asarray([json.dumps(data.qrels[q]) for q in qids], dtype=object)}
    np.savez(out, **result)  # type: ignore[arg-type]
    return result


def _zscore(matrix: np.ndarray) -> np.ndarray:
    std = matrix.std(axis=0)
    std[std < 1e-12] = 1.0
    return (matrix - matrix.mean(axis=0)) / std


def _prepare(data: dict[str, object]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """Per query: z-scored features, each candidate's document index, each document's gain, the ideal DCG."""
    prepared = []
    for matrix, names, rel in zip(data["feats"], data["docs"], data["qrels"], strict=True):  # type: ignore[call-overload]
        qrels = json.loads(rel)
        unique = list(dict.fromkeys(names))
        index = {d: i for i, d in enumerate(unique)}
        gains = np.asarray([qrels.get(d, 0) for d in unique], dtype=np.float64)
        ideal = sorted(qrels.values(), reverse=True)[:10]
        idcg = sum(r / np.log2(i + 2) for i, r in enumerate(ideal))
        prepared.append((_zscore(matrix), np.asarray([index[d] for d in names]), gains, idcg))
    return prepared


DISCOUNT = 1 / np.log2(np.arange(2, 12))


def _score(prepared: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]], weights: np.ndarray,
           prf_column: int) -> float:
    columns = [0, 1, 2, 3, 4 + prf_column, 4 + len(PRF_DEPTHS)]
    total = 0.0
    for matrix, doc_index, gains, idcg in prepared:
        order = doc_index[np.argsort(-(matrix[:, columns] @ weights), kind="stable")]
        _, first = np.unique(order, return_index=True)
        top = order[np.sort(first)][:10]
        total += float(gains[top] @ DISCOUNT[: len(top)]) / idcg if idcg else 0.0
    return total / len(prepared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("beir", type=Path)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    train = _prepare(_features(args.beir, "train", args.depth, args.cache))
    test = _prepare(_features(args.beir, "test", args.depth, args.cache))
    names = ("dense", "maxsim", "lexical", "sentence_lexical", "prf", "first")
    steps = [i / 10 for i in range(11)]
    best = (-1.0, np.zeros(len(names)), 0)
    for prf_column in range(len(PRF_DEPTHS)):
        for combo in itertools.product(steps, repeat=len(names) - 1):
            if sum(combo) > 1.0 + 1e-9:
                continue
            weights = np.asarray([*combo, 1.0 - sum(combo)])
            value = _score(train, weights, prf_column)
            if value > best[0]:
                best = (value, weights, prf_column)
    value, weights, prf_column = best
    print(json.dumps({"weights": dict(zip(names, np.round(weights, 2).tolist(), strict=True)),
                      "prf_depth": PRF_DEPTHS[prf_column], "train_ndcg@10": round(value, 4),
                      "test_ndcg@10": round(_score(test, weights, prf_column), 4)}, indent=2))


if __name__ == "__main__":
    main()
