"""Why memflow ships no query adapter fitted on SciFact: its train and test queries judge the same abstracts.

    .venv/bin/python bench/adapter_leakage.py ../shared/data/scifact

A linear query adapter (question vector q -> normalize(q + q W), W 384 x 384, fitted by softmax
cross-entropy of each train query's judged chunks against every chunk of the corpus, L2 penalty on W) is the
usual cheap domain adaptation. This script prints how many judged abstracts the two splits share, then
dense nDCG@10 on SciFact test (a document scored by its best chunk, the stored int8 vectors of the cached
`memflow eval beir` store) for: no adapter; an adapter fitted on all train queries; an adapter fitted only
on the train queries that share no judged abstract with a test query. The gap between the last two is what
the adapter learned about *which abstracts* are relevant rather than about the questions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from memflow.evaluation.metrics import mean, ndcg_at_k


def ndcg_at_10(
    queries: np.ndarray,
    vectors: np.ndarray,
    chunk_doc: np.ndarray,
    names: list[str],
    qids: list[str],
    qrels: dict[str, dict[str, int]],
) -> float:
    order = np.argsort(chunk_doc, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(chunk_doc[order])) + 1]
    by_doc = np.maximum.reduceat((queries @ vectors.T)[:, order], starts, axis=1)  # best chunk per document
    top = np.argsort(-by_doc, axis=1)[:, :10]
    return mean([ndcg_at_k([names[d] for d in top[row]], qrels[qid], 10) for row, qid in enumerate(qids)])


def fit_adapter(
    queries: np.ndarray,
    vectors: np.ndarray,
    positives: list[np.ndarray],
    *,
    penalty: float,
    temperature: float = 0.05,
    steps: int = 150,
) -> np.ndarray:
    import torch

    torch.manual_seed(0)
    q, v = torch.tensor(queries), torch.tensor(vectors)
    target = torch.zeros(len(queries), len(vectors), dtype=torch.bool)
    for row, chunks in enumerate(positives):
        target[row, torch.as_tensor(chunks, dtype=torch.long)] = True
    w = torch.zeros(q.shape[1], q.shape[1], requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=1e-3)
    for _ in range(steps):
        moved = torch.nn.functional.normalize(q + q @ w, dim=1)
        logits = moved @ v.T / temperature
        loss = (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~target, -1e9), 1)).mean()
        loss = loss + penalty * (w**2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return np.eye(q.shape[1], dtype=np.float32) + w.detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("beir", type=Path)
    parser.add_argument("--penalty", type=float, default=0.01, help="L2 penalty on W (0.03 for the clean fit)")
    args = parser.parse_args()

    from memflow.components.base import RunContext
    from memflow.components.encoders.sentence_transformers import QueryEncoder
    from memflow.evaluation.beir import load_beir, open_beir_memory
    from memflow.evaluation.retrieval import document_id
    from memflow.pipeline import Pipeline, builtin_pipeline

    train, test = load_beir(args.beir, split="train"), load_beir(args.beir, split="test")
    with open_beir_memory(test) as memory:
        ids = memory.store.chunk_ids_all()
        vectors = memory.store.chunk_vectors(ids)
        docs = [document_id(c.document) for c in memory.store.chunks(ids)]
        ((_, encoder),) = Pipeline.from_yaml(builtin_pipeline("ask")).find(QueryEncoder)
        encoder.bind(RunContext(store=memory.store))
        train_ids, test_ids = sorted(train.qrels), sorted(test.qrels)
        train_q = encoder.encoder.encode_queries([train.queries[q] for q in train_ids])
        test_q = encoder.encoder.encode_queries([test.queries[q] for q in test_ids])
    names = sorted(set(docs))
    index = {d: i for i, d in enumerate(names)}
    chunk_doc = np.asarray([index[d] for d in docs])
    by_doc: dict[str, list[int]] = {}
    for row, d in enumerate(docs):
        by_doc.setdefault(d, []).append(row)

    judged_train = {d for r in train.qrels.values() for d in r}
    judged_test = {d for r in test.qrels.values() for d in r}
    print(
        f"abstracts judged for test queries: {len(judged_test)}, of them judged for train queries too: "
        f"{len(judged_test & judged_train)}; test queries with such an abstract: "
        f"{sum(bool(set(r) & judged_train) for r in test.qrels.values())} of {len(test.qrels)}"
    )

    def adapter_for(rows: list[int], penalty: float) -> np.ndarray:
        positives = [
            np.asarray([c for d, g in train.qrels[train_ids[r]].items() if g > 0 for c in by_doc.get(d, [])])
            for r in rows
        ]
        keep = [r for r, p in zip(rows, positives, strict=True) if len(p)]
        return fit_adapter(train_q[keep], vectors, [p for p in positives if len(p)], penalty=penalty)

    def adapted(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        moved = queries @ matrix
        return moved / np.linalg.norm(moved, axis=1, keepdims=True)

    clean = [r for r, q in enumerate(train_ids) if not set(train.qrels[q]) & judged_test]
    rows = [
        ("no adapter", test_q),
        (
            f"adapter, all {len(train_ids)} train queries",
            adapted(test_q, adapter_for(list(range(len(train_ids))), args.penalty)),
        ),
        (
            f"adapter, the {len(clean)} train queries sharing no judged abstract with test",
            adapted(test_q, adapter_for(clean, 0.03)),
        ),
    ]
    print(f"{'dense, SciFact test':72} nDCG@10")
    for label, queries in rows:
        print(f"{label:72} {ndcg_at_10(queries, vectors, chunk_doc, names, test_ids, test.qrels):.4f}")


if __name__ == "__main__":
    main()
