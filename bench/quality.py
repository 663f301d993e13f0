"""Fit the late-interaction reranker's feature weights on a BEIR *train* split; check them on held-out data.

    .venv/bin/python bench/quality.py ../shared/data/scifact                     # fit on train, check on test
    .venv/bin/python bench/quality.py ../shared/data/scifact --squad ../shared/data/squad/dev-v1.1.json

For every judged query it runs the first stage of pipelines/ask-hybrid.yaml (min-max hybrid, 100 candidates
per side) against the cached eval store (`memflow eval beir` / `memflow eval squad` build the same ones),
computes the reranker's raw features (rerankers.late_interaction.candidate_features) for the top `depth`
chunks, and caches them. Then it fits the weights (non-negative, summing to 1) for mean nDCG@10 on the train
split only: the pseudo-relevance feedback depth by coordinate ascent, then the weights averaged over
coordinate ascents on bootstrap resamples of the train queries (see `fit`), and prints those weights with
train and test nDCG@10 -- and, with ``--squad``, SQuAD dev paragraph R@1/R@5
for the same weights (a data set the fit never sees). The weights in pipelines/ask-hybrid.yaml and the
component's defaults come from this, never from a test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRF_DEPTHS = (1, 3, 5, 10)
#: Bump when candidate_features changes, so cached feature files are recomputed.
FEATURE_VERSION = 8
FIRST_STAGE = """
name: first-stage
components:
  embed: {type: encoders.query}
  retrieve: {type: retrievers.hybrid, params: {k: 10, candidates: 100, fusion: minmax, dense_weight: 0.5}}
connections:
  - embed.query -> retrieve.query
  - embed.query_vector -> retrieve.query_vector
"""


def _query_features(memory: object, first: object, query: str,
                    depth: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Candidate document ids, the feature matrix (FEATURES, with prf expanded to one column per depth) and
    the candidates' Gram matrix (what the second hop of feedback needs)."""
    from memflow.components.base import RunContext
    from memflow.components.rerankers.late_interaction import FEATURES, candidate_features, feedback_scores
    from memflow.evaluation.retrieval import document_id

    store = memory.store  # type: ignore[attr-defined]
    run = first.run({"query": query, "k": depth}, context=RunContext(store=store))  # type: ignore[attr-defined]
    hits = run["retrieve"]["hits"]
    vector = first.components["embed"].run(query=query)["query_vector"]  # type: ignore[attr-defined]
    base = candidate_features(store, query, vector, hits, prf_depth=PRF_DEPTHS[0])
    vectors = store.chunk_vectors([h.chunk_id for h in hits])
    q = vector / np.linalg.norm(vector)
    # the component's feedback feature, for each depth
    prf = [feedback_scores(vectors, q, slice(0, depth_)) for depth_ in PRF_DEPTHS]
    at = FEATURES.index("prf")
    matrix = np.column_stack([base[:, :at], *prf, base[:, at + 1 :]])
    return [document_id(h.document) for h in hits], matrix, (vectors @ vectors.T).astype(np.float16)


def _save(out: Path, qids: list[str], docs: list[list[str]], feats: list[np.ndarray],
          qrels: list[dict[str, int]], grams: list[np.ndarray] | None = None) -> dict[str, object]:
    result = {"qids": np.asarray(qids, dtype=object),
              "docs": np.asarray([np.asarray(d, dtype=object) for d in docs] + [None], dtype=object)[:-1],
              "feats": np.asarray(feats + [None], dtype=object)[:-1],
              "qrels": np.asarray([json.dumps(r) for r in qrels], dtype=object)}
    if grams is not None:
        result["grams"] = np.asarray(grams + [None], dtype=object)[:-1]
    np.savez(out, **result)  # type: ignore[arg-type]
    return result


def _load(out: Path) -> dict[str, object] | None:
    if not out.exists():
        return None
    loaded = np.load(out, allow_pickle=True)
    return {k: loaded[k] for k in loaded.files}


def beir_features(data_dir: Path, split: str, depth: int, cache: Path | None) -> dict[str, object]:
    from memflow.evaluation.beir import load_beir, open_beir_memory
    from memflow.evaluation.cache import cache_root
    from memflow.pipeline import Pipeline

    data = load_beir(data_dir, split=split)
    out = cache_root(cache) / f"features-v{FEATURE_VERSION}-{data.name}-{split}-{depth}.npz"
    if (found := _load(out)) is not None:
        return found
    first = Pipeline.from_string(FIRST_STAGE)
    qids, docs, feats, qrels, grams = [], [], [], [], []
    with open_beir_memory(data, cache=cache) as memory:
        for n, qid in enumerate(sorted(data.queries)):
            names, matrix, gram = _query_features(memory, first, data.queries[qid], depth)
            grams.append(gram)
            qids.append(qid)
            docs.append(names)
            feats.append(matrix)
            qrels.append(data.qrels[qid])
            if n % 100 == 0:
                print(f"{data.name} {split}: {n}/{len(data.queries)} queries", file=sys.stderr)
    return _save(out, qids, docs, feats, qrels, grams)


def squad_features(file: Path, depth: int, cache: Path | None, every: int = 1) -> dict[str, object]:
    from memflow.evaluation.cache import cache_root
    from memflow.evaluation.squad import load_squad, open_squad_memory
    from memflow.pipeline import Pipeline

    data = load_squad(file)
    out = cache_root(cache) / f"features-v{FEATURE_VERSION}-squad-{data.name}-{depth}-every{every}.npz"
    if (found := _load(out)) is not None:
        return found
    first = Pipeline.from_string(FIRST_STAGE)
    qids, docs, feats, qrels = [], [], [], []
    with open_squad_memory(data, cache=cache) as memory:
        for n, question in enumerate(data.questions[::every]):
            names, matrix, _ = _query_features(memory, first, question.question, depth)
            qids.append(question.id)
            docs.append(names)
            feats.append(matrix)
            qrels.append({question.paragraph: 1})
            if n % 1000 == 0:
                print(f"squad: {n}/{len(data.questions)} questions", file=sys.stderr)
    return _save(out, qids, docs, feats, qrels)


def _zscore(matrix: np.ndarray) -> np.ndarray:
    std = matrix.std(axis=0)
    std[std < 1e-12] = 1.0
    return (matrix - matrix.mean(axis=0)) / std


Prepared = list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]


def prepare(data: dict[str, object]) -> Prepared:
    """Per query: z-scored features, each candidate's document index, each document's gain, the ideal DCG."""
    prepared = []
    for matrix, names, rel in zip(data["feats"], data["docs"], data["qrels"], strict=True):  # type: ignore[call-overload]
        qrels = json.loads(rel)
        unique = list(dict.fromkeys(names))
        index = {d: i for i, d in enumerate(unique)}
        gains = np.asarray([qrels.get(d, 0) for d in unique], dtype=np.float64)
        ideal = sorted(qrels.values(), reverse=True)[:10]
        idcg = sum(r / np.log2(i + 2) for i, r in enumerate(ideal))
        prepared.append((_zscore(np.asarray(matrix, dtype=np.float64)), np.asarray([index[d] for d in names]),
                         gains, idcg))
    return prepared


DISCOUNT = 1 / np.log2(np.arange(2, 12))


def _top_documents(scores: np.ndarray, doc_index: np.ndarray) -> np.ndarray:
    """The 10 best documents (indexes into a query's gains), each ranked by its best-scored chunk."""
    order = doc_index[np.argsort(-scores, kind="stable")]
    _, first = np.unique(order, return_index=True)
    return order[np.sort(first)][:10]


def _ndcg(top: np.ndarray, gains: np.ndarray, idcg: float) -> float:
    return float(gains[top] @ DISCOUNT[: len(top)]) / idcg if idcg else 0.0


FEEDBACK_DEPTHS = (1, 3, 5)
FEEDBACK_WEIGHTS = (0.1, 0.2, 0.3, 0.5)


def second_hop(raw: dict[str, object], prepared: Prepared, names: list[str], weights: np.ndarray,
               prf_column: int, depth: int, feedback: float) -> float:
    """Mean nDCG@10 after the reranker's second hop (see LateInteractionReranker.second_hop): the
    first-pass score blended with the inner product with the question moved towards the top ``depth``
    chunks by that score. From the cached Gram matrices: V(q + mean V_top) = dense + mean of Gram columns."""
    columns = _named_columns(names, prf_column)
    total = 0.0
    for (matrix, doc_index, gains, idcg), raw_matrix, gram in zip(prepared, raw["feats"], raw["grams"],  # type: ignore[call-overload]
                                                                   strict=True):
        first = _zscore((matrix[:, columns] @ weights)[:, None])[:, 0]
        best = np.argsort(-first, kind="stable")[:depth]
        dense = np.asarray(raw_matrix, dtype=np.float64)[:, 0]
        moved = dense + np.asarray(gram, dtype=np.float64)[:, best].mean(axis=1)
        score = (1 - feedback) * first + feedback * _zscore(moved[:, None])[:, 0]
        total += _ndcg(_top_documents(score, doc_index), gains, idcg)
    return total / len(prepared)


def main() -> None:
    from memflow.components.rerankers.late_interaction import FEATURES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("beir", type=Path)
    parser.add_argument("--squad", type=Path, help="also report SQuAD dev R@1/R@5 for the fitted weights")
    parser.add_argument("--squad-every", type=int, default=1, help="every n-th SQuAD question only (quicker)")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--bags", type=int, default=8, help="bootstrap fits averaged into the weights")
    parser.add_argument("--without", default="", help="comma-separated features to leave out (weight 0)")
    args = parser.parse_args()
    raw_train = beir_features(args.beir, "train", args.depth, args.cache)
    raw_test = beir_features(args.beir, "test", args.depth, args.cache)
    train, test = prepare(raw_train), prepare(raw_test)
    squad = prepare(squad_features(args.squad, args.depth, args.cache, args.squad_every)) if args.squad else None
    left_out = {f for f in args.without.split(",") if f}
    if "prf" in left_out:
        raise SystemExit("prf cannot be left out (give it weight 0 in YAML instead)")
    at = FEATURES.index("prf")
    stored = [*FEATURES[:at], *(f"prf@{d}" for d in PRF_DEPTHS), *FEATURES[at + 1 :]]  # the cached columns
    mask = [c for c, name in enumerate(stored) if name not in left_out]
    names = [f for f in FEATURES if f not in left_out]

    def reduce(prepared: Prepared) -> Prepared:
        return [(m[:, mask], d, g, i) for m, d, g, i in prepared]

    train, test = reduce(train), reduce(test)
    squad = reduce(squad) if squad is not None else None
    value, weights, prf_column = fit(train, names, bags=args.bags)
    report: dict[str, object] = {
        "weights": dict(zip(names, np.round(weights, 3).tolist(), strict=True)),
        "prf_depth": PRF_DEPTHS[prf_column], "train_ndcg@10": round(value, 4),
        "test_ndcg@10": round(metric(test, names, weights, prf_column, None), 4),
    }
    # the second hop of feedback: its depth and weight, by train nDCG@10 over a small grid
    grid = {(d, w): second_hop(raw_train, train, names, weights, prf_column, d, w)
            for d in FEEDBACK_DEPTHS for w in FEEDBACK_WEIGHTS}
    (depth, feedback), value = max(grid.items(), key=lambda item: item[1])
    report.update({"feedback_depth": depth, "feedback": feedback, "train_ndcg@10_second_hop": round(value, 4),
                   "test_ndcg@10_second_hop": round(second_hop(raw_test, test, names, weights, prf_column, depth,
                                                               feedback), 4)})
    if squad is not None:  # first pass only: the SQuAD cache holds no Gram matrices
        report["squad_r@1_first_pass"] = round(metric(squad, names, weights, prf_column, 1), 4)
        report["squad_r@5_first_pass"] = round(metric(squad, names, weights, prf_column, 5), 4)
    print(json.dumps(report, indent=2))


def _named_columns(names: list[str], prf_column: int) -> list[int]:
    at = names.index("prf")
    after = at + len(PRF_DEPTHS)
    return [*range(at), at + prf_column, *range(after, after + len(names) - at - 1)]


def metric(prepared: Prepared, names: list[str], weights: np.ndarray, prf_column: int, at: int | None) -> float:
    """Mean nDCG@10 (``at`` None) or recall@``at`` of the documents ranked by the weighted features."""
    columns = _named_columns(names, prf_column)
    total = 0.0
    for matrix, doc_index, gains, idcg in prepared:
        top = _top_documents(matrix[:, columns] @ weights, doc_index)
        if at is None:
            total += _ndcg(top, gains, idcg)
        else:
            total += float(gains[top[:at]].max(initial=0.0) > 0)
    return total / len(prepared)


def ascend(train: Prepared, names: list[str], weights: np.ndarray, prf_column: int) -> tuple[float, np.ndarray]:
    """Coordinate ascent of mean nDCG@10 on the weight simplex, steps 0.2 down to 0.025."""
    value = metric(train, names, weights, prf_column, None)
    for step in (0.2, 0.1, 0.05, 0.025):
        improved = True
        while improved:
            improved = False
            for j in range(len(names)):
                for delta in (step, -step):
                    trial = weights.copy()
                    trial[j] = max(trial[j] + delta, 0.0)
                    if trial.sum() <= 0:
                        continue
                    trial /= trial.sum()
                    score = metric(train, names, trial, prf_column, None)
                    if score > value + 1e-6:
                        weights, value, improved = trial, score, True
    return value, weights


def fit(train: Prepared, names: list[str], *, bags: int = 8, seed: int = 0) -> tuple[float, np.ndarray, int]:
    """The prf depth whose ascent from equal weights scores best on train, then the weights averaged over
    ``bags`` ascents on bootstrap resamples of the train queries (bagging): single ascents land in different
    local optima of near-equal train score whose held-out scores differ by a few tenths of a point."""
    uniform = np.full(len(names), 1.0 / len(names))
    by_depth = [ascend(train, names, uniform, column)[0] for column in range(len(PRF_DEPTHS))]
    for depth, value in zip(PRF_DEPTHS, by_depth, strict=True):
        print(f"prf depth {depth}: train nDCG@10 {value:.4f}", file=sys.stderr)
    prf_column = int(np.argmax(by_depth))
    rng = np.random.default_rng(seed)
    fitted = []
    for bag in range(bags):
        sample = [train[i] for i in rng.integers(0, len(train), len(train))]
        value, weights = ascend(sample, names, uniform, prf_column)
        fitted.append(weights)
        print(f"bag {bag}: bootstrap train nDCG@10 {value:.4f}", file=sys.stderr)
    weights = np.mean(fitted, axis=0)
    return metric(train, names, weights, prf_column, None), weights, prf_column


if __name__ == "__main__":
    main()
