"""Fit the late-interaction reranker's feature weights on a BEIR *train* split; check them on held-out data.

    .venv/bin/python bench/quality.py ../shared/data/scifact                     # fit on train, check on test
    .venv/bin/python bench/quality.py ../shared/data/scifact --squad ../shared/data/squad/dev-v1.1.json

For every judged query it runs the first stage of pipelines/ask-hybrid.yaml (min-max hybrid, 100 candidates
per side) against the cached eval store (`memflow eval beir` / `memflow eval squad` build the same ones),
computes the reranker's raw features (rerankers.late_interaction.candidate_features, the token MaxSim
and title features included: they run the encoder over each query's top 50 chunks and the titles) for
the top `depth` chunks, and caches them. Then it fits the weights (non-negative, summing to 1) for mean
nDCG@10 on the train split only: the pseudo-relevance feedback depth by coordinate ascent, then the
weights averaged over coordinate ascents on bootstrap resamples of the train queries (see `fit`), and
prints those weights with train and test nDCG@10 -- and, with ``--squad``, SQuAD dev paragraph R@1/R@5
for the same weights (a data set the fit never sees). The weights in pipelines/ask-hybrid.yaml and the
component's defaults come from this, never from a test split.

Options for comparing fits and stores (each store and feature set is cached under its own key):

    --fit listwise        non-negative weights by listwise softmax cross-entropy instead of bagged ascent
    --cv 5                also the fit's 5-fold cross-validated nDCG@10 on the train split (809 queries
                          judge a change better than SciFact test's 300)
    --ingest-pipeline pipelines/ingest-sentences.yaml
                          features from a store whose sentence vectors were each encoded alone
    --ingest-pipeline bench/pipelines/ingest-fp32.yaml --backend torch
                          features from the PyTorch fp32 encoder instead of ONNX int8
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memflow.components.rerankers.late_interaction import LateInteractionReranker

REPO = Path(__file__).resolve().parents[1]
PRF_DEPTHS = (1, 3, 5, 10)
#: Bump when candidate_features changes, so cached feature files are recomputed.
FEATURE_VERSION = 11
FIRST_STAGE = """
name: first-stage
components:
  embed: {type: encoders.query, params: {backend: BACKEND}}
  retrieve: {type: retrievers.hybrid, params: {k: 10, candidates: 100, fusion: minmax, dense_weight: 0.5}}
connections:
  - embed.query -> retrieve.query
  - embed.query_vector -> retrieve.query_vector
"""


def _query_features(
    memory: object, first: object, query: str, depth: int, tokens: object = None, titles: object = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Candidate document ids, the feature matrix (FEATURES, with prf expanded to one column per depth) and
    the candidates' Gram matrix (what the second hop of feedback needs)."""
    from memflow.components.base import RunContext
    from memflow.components.rerankers.late_interaction import FEATURES, candidate_features, feedback_scores
    from memflow.evaluation.retrieval import document_id

    store = memory.store  # type: ignore[attr-defined]
    run = first.run({"query": query, "k": depth}, context=RunContext(store=store))  # type: ignore[attr-defined]
    hits = run["retrieve"]["hits"]
    vector = first.components["embed"].run(query=query)["query_vector"]  # type: ignore[attr-defined]
    base = candidate_features(
        store,
        query,
        vector,
        hits,
        prf_depth=PRF_DEPTHS[0],
        tokens=tokens,  # type: ignore[arg-type]
        token_depth=DEFAULTS["token_depth"],
        titles=titles,
    )  # type: ignore[arg-type]
    vectors = store.chunk_vectors([h.chunk_id for h in hits])
    q = vector / np.linalg.norm(vector)
    # the component's feedback feature, for each depth
    prf = [feedback_scores(vectors, q, slice(0, depth_)) for depth_ in PRF_DEPTHS]
    at = FEATURES.index("prf")
    matrix = np.column_stack([base[:, :at], *prf, base[:, at + 1 :]])
    return [document_id(h.document) for h in hits], matrix, (vectors @ vectors.T).astype(np.float16)


def _save(
    out: Path,
    qids: list[str],
    docs: list[list[str]],
    feats: list[np.ndarray],
    qrels: list[dict[str, int]],
    grams: list[np.ndarray] | None = None,
) -> dict[str, object]:
    result = {
        "qids": np.asarray(qids, dtype=object),
        "docs": np.asarray([np.asarray(d, dtype=object) for d in docs] + [None], dtype=object)[:-1],
        "feats": np.asarray(feats + [None], dtype=object)[:-1],
        "qrels": np.asarray([json.dumps(r) for r in qrels], dtype=object),
    }
    if grams is not None:
        result["grams"] = np.asarray(grams + [None], dtype=object)[:-1]
    np.savez(out, **result)  # type: ignore[arg-type]
    return result


def _load(out: Path) -> dict[str, object] | None:
    if not out.exists():
        return None
    loaded = np.load(out, allow_pickle=True)
    return {k: loaded[k] for k in loaded.files}


@dataclass(frozen=True)
class Setup:
    """The store and query encoder the features come from: an ingest pipeline (None: the default one) and the
    query encoder's backend; anything but the defaults gets its own feature files."""

    ingest_pipeline: Path | None = None
    backend: str = "auto"

    @property
    def key(self) -> str:
        if self.ingest_pipeline is None and self.backend == "auto":
            return ""
        from memflow.evaluation.cache import pipeline_digest
        from memflow.pipeline import Pipeline

        ingest = pipeline_digest(Pipeline.from_yaml(self.ingest_pipeline))[:8] if self.ingest_pipeline else "default"
        return f"-{ingest}-{self.backend}"

    def first_stage(self) -> object:
        from memflow.pipeline import Pipeline

        return Pipeline.from_string(FIRST_STAGE.replace("BACKEND", self.backend))

    def token_scorer(self) -> object:
        """The reranker's own token MaxSim scorer (its default encoder) on this backend."""
        # A cache that holds a whole corpus's token vectors (SciFact's: about 1.5 GB), so that each chunk is
        # encoded once; the cache changes how fast the features come, not what they are.
        return LateInteractionReranker(backend=self.backend, token_cache_mb=4096).token_scorer()

    def title_scorer(self) -> object:
        """The reranker's own title similarity scorer on this backend."""
        return LateInteractionReranker(backend=self.backend, title=1.0).title_scorer()


def beir_features(
    data_dir: Path, split: str, depth: int, cache: Path | None, setup: Setup = Setup()
) -> dict[str, object]:
    from memflow.evaluation.beir import load_beir, open_beir_memory
    from memflow.evaluation.cache import cache_root

    data = load_beir(data_dir, split=split)
    out = cache_root(cache) / f"features-v{FEATURE_VERSION}{setup.key}-{data.name}-{split}-{depth}.npz"
    if (found := _load(out)) is not None:
        return found
    first, tokens, titles = setup.first_stage(), setup.token_scorer(), setup.title_scorer()
    qids, docs, feats, qrels, grams = [], [], [], [], []
    with open_beir_memory(data, cache=cache, ingest_pipeline=setup.ingest_pipeline) as memory:
        for n, qid in enumerate(sorted(data.queries)):
            names, matrix, gram = _query_features(memory, first, data.queries[qid], depth, tokens, titles)
            grams.append(gram)
            qids.append(qid)
            docs.append(names)
            feats.append(matrix)
            qrels.append(data.qrels[qid])
            if n % 100 == 0:
                print(f"{data.name} {split}: {n}/{len(data.queries)} queries", file=sys.stderr)
    return _save(out, qids, docs, feats, qrels, grams)


def squad_features(
    file: Path, depth: int, cache: Path | None, every: int = 1, setup: Setup = Setup()
) -> dict[str, object]:
    from memflow.evaluation.cache import cache_root
    from memflow.evaluation.squad import load_squad, open_squad_memory

    data = load_squad(file)
    out = cache_root(cache) / f"features-v{FEATURE_VERSION}{setup.key}-squad-{data.name}-{depth}-every{every}.npz"
    if (found := _load(out)) is not None:
        return found
    first, tokens, titles = setup.first_stage(), setup.token_scorer(), setup.title_scorer()
    qids, docs, feats, qrels = [], [], [], []
    with open_squad_memory(data, cache=cache, ingest_pipeline=setup.ingest_pipeline) as memory:
        for n, question in enumerate(data.questions[::every]):
            names, matrix, _ = _query_features(memory, first, question.question, depth, tokens, titles)
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
        prepared.append(
            (_zscore(np.asarray(matrix, dtype=np.float64)), np.asarray([index[d] for d in names]), gains, idcg)
        )
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


def second_hop(
    raw: dict[str, object],
    prepared: Prepared,
    names: list[str],
    weights: np.ndarray,
    prf_column: int,
    depth: int,
    feedback: float,
) -> float:
    """Mean nDCG@10 after the reranker's second hop (see LateInteractionReranker.second_hop): the
    first-pass score blended with the inner product with the question moved towards the top ``depth``
    chunks by that score. From the cached Gram matrices: V(q + mean V_top) = dense + mean of Gram columns."""
    columns = _named_columns(names, prf_column)
    total = 0.0
    for (matrix, doc_index, gains, idcg), raw_matrix, gram in zip(
        prepared,
        raw["feats"],
        raw["grams"],  # type: ignore[call-overload]
        strict=True,
    ):
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
    parser.add_argument(
        "--fit",
        choices=("ascent", "listwise", "defaults"),
        default="ascent",
        help="bagged coordinate ascent of nDCG@10 (how the defaults were fitted), listwise "
        "softmax cross-entropy, or no fit: the component's default weights",
    )
    parser.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="K",
        help="also report the fit's K-fold cross-validated nDCG@10 on the train split",
    )
    parser.add_argument(
        "--ingest-pipeline",
        type=Path,
        help="features from a store ingested with this pipeline (e.g. bench/pipelines/*.yaml)",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="the query encoder's backend (torch with bench/pipelines/ingest-fp32.yaml)",
    )
    args = parser.parse_args()
    setup = Setup(
        ingest_pipeline=args.ingest_pipeline.resolve() if args.ingest_pipeline else None, backend=args.backend
    )
    raw_train = beir_features(args.beir, "train", args.depth, args.cache, setup)
    raw_test = beir_features(args.beir, "test", args.depth, args.cache, setup)
    train, test = prepare(raw_train), prepare(raw_test)
    squad = prepare(squad_features(args.squad, args.depth, args.cache, args.squad_every, setup)) if args.squad else None
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
    value, weights, prf_column = fit_by(args.fit, train, names, bags=args.bags)
    report: dict[str, object] = {
        "fit": args.fit,
        "weights": dict(zip(names, np.round(weights, 3).tolist(), strict=True)),
        "prf_depth": PRF_DEPTHS[prf_column],
        "train_ndcg@10": round(value, 4),
        "test_ndcg@10": round(metric(test, names, weights, prf_column, None), 4),
    }
    if args.fit == "defaults":  # the component's own second hop
        depth, feedback = DEFAULTS["feedback_depth"], DEFAULTS["feedback"]
        value = second_hop(raw_train, train, names, weights, prf_column, depth, feedback)
    else:  # the second hop of feedback: its depth and weight, by train nDCG@10 over a small grid
        grid = {
            (d, w): second_hop(raw_train, train, names, weights, prf_column, d, w)
            for d in FEEDBACK_DEPTHS
            for w in FEEDBACK_WEIGHTS
        }
        (depth, feedback), value = max(grid.items(), key=lambda item: item[1])
    report.update(
        {
            "feedback_depth": depth,
            "feedback": feedback,
            "train_ndcg@10_second_hop": round(value, 4),
            "test_ndcg@10_second_hop": round(
                second_hop(raw_test, test, names, weights, prf_column, depth, feedback), 4
            ),
        }
    )
    if squad is not None:  # first pass only: the SQuAD cache holds no Gram matrices
        report["squad_r@1_first_pass"] = round(metric(squad, names, weights, prf_column, 1), 4)
        report["squad_r@5_first_pass"] = round(metric(squad, names, weights, prf_column, 5), 4)
    if args.cv:
        report[f"train_cv{args.cv}_ndcg@10"] = round(cross_validate(train, names, args.fit, args.cv, bags=args.bags), 4)
    print(json.dumps(report, indent=2))


DEFAULTS = {p.name: p.default for p in inspect.signature(LateInteractionReranker.__init__).parameters.values()}


def default_weights(names: list[str]) -> tuple[np.ndarray, int]:
    """The component's default weights (for ``names``, normalized) and its prf depth's column."""
    weights = np.asarray([DEFAULTS[name] for name in names], dtype=np.float64)
    return weights / weights.sum(), PRF_DEPTHS.index(DEFAULTS["prf_depth"])


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


def listwise(
    train: Prepared,
    names: list[str],
    prf_column: int,
    *,
    epochs: int = 10,
    seeds: int = 2,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
) -> np.ndarray:
    """Non-negative weights that minimize the listwise softmax cross-entropy of each train query's relevant
    chunks among its candidates (ListNet-style: -log of the softmax mass on chunks of relevant documents),
    by Adam with the weights clamped at 0 after each step, averaged over ``seeds`` shuffles. Smooth where
    nDCG is a step function, so a slightly different store does not send it to another local optimum."""
    import torch

    torch.set_num_threads(1)
    columns = _named_columns(names, prf_column)
    data = [
        (torch.tensor(m[:, columns], dtype=torch.float32), torch.tensor(g[d] > 0))
        for m, d, g, _ in train
        if (g[d] > 0).any()
    ]
    fitted = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        w = torch.full((len(columns),), 5.0 / len(columns), requires_grad=True)
        optimizer = torch.optim.Adam([w], lr=lr, weight_decay=weight_decay)
        for _ in range(epochs):
            for i in rng.permutation(len(data)):
                features, relevant = data[i]
                scores = features @ w
                loss = torch.logsumexp(scores, 0) - torch.logsumexp(scores[relevant], 0)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    w.clamp_(min=0.0)
        fitted.append(w.detach().numpy().astype(np.float64))
    weights = np.mean(fitted, axis=0)
    return weights / weights.sum()


def fit_listwise(train: Prepared, names: list[str]) -> tuple[float, np.ndarray, int]:
    """:func:`listwise` for each prf depth; the depth whose weights score best on train."""
    best: tuple[float, np.ndarray, int] | None = None
    for column, depth in enumerate(PRF_DEPTHS):
        weights = listwise(train, names, column)
        value = metric(train, names, weights, column, None)
        print(f"listwise, prf depth {depth}: train nDCG@10 {value:.4f}", file=sys.stderr)
        if best is None or value > best[0]:
            best = (value, weights, column)
    assert best is not None
    return best


def fit_by(how: str, train: Prepared, names: list[str], *, bags: int) -> tuple[float, np.ndarray, int]:
    """Train nDCG@10, weights and prf column by the ``--fit`` procedure ``how``."""
    if how == "defaults":
        weights, prf_column = default_weights(names)
        return metric(train, names, weights, prf_column, None), weights, prf_column
    if how == "listwise":
        return fit_listwise(train, names)
    return fit(train, names, bags=bags)


def cross_validate(train: Prepared, names: list[str], how: str, folds: int, *, bags: int) -> float:
    """Mean held-out nDCG@10 of the fitting procedure over ``folds`` folds of the train queries."""
    fold = np.random.default_rng(1).permutation(len(train)) % folds
    held_out = []
    for k in range(folds):
        inside = [p for p, f in zip(train, fold, strict=True) if f != k]
        outside = [p for p, f in zip(train, fold, strict=True) if f == k]
        _, weights, column = fit_by(how, inside, names, bags=bags)
        held_out.append(metric(outside, names, weights, column, None) * len(outside))
        print(f"fold {k}: held-out nDCG@10 {held_out[-1] / len(outside):.4f}", file=sys.stderr)
    return sum(held_out) / len(train)


if __name__ == "__main__":
    main()
