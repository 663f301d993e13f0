"""Performance benchmark: memflow against the bare floor, on the same corpus, model and process.

    .venv/bin/python bench/perf.py ingest [--corpus squad|pg|DIR]   # ingest vs sentence-transformers + FAISS
    .venv/bin/python bench/perf.py query  [--questions 1000]        # search / ask latency vs encode + search
    .venv/bin/python bench/perf.py memory                           # peak RSS at two corpus sizes (subprocesses)
    .venv/bin/python bench/perf.py flops                            # encoder FLOP/s vs this machine's matmul
    add --json for machines. Nothing here is asserted: it measures and prints a table.

The floor is what any framework must at least spend: the same chunk texts encoded by sentence-transformers'
`encode` in one call (length-sorted batches) plus `faiss.IndexFlatIP.add`. memflow's figure is a cold store
ingested through the default pipeline, stage by stage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def squad_corpus(directory: Path) -> tuple[Path, list[str]]:
    """SQuAD v1.1 dev paragraphs as one JSONL corpus (2,067 documents) and its questions."""
    data = json.loads((DATA / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    path = directory / "squad-paragraphs.jsonl"
    questions = []
    with path.open("w", encoding="utf-8") as out:
        n = 0
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                out.write(json.dumps({"id": str(n), "title": article["title"], "text": paragraph["context"]}) + "\n")
                questions += [qa["question"] for qa in paragraph["qas"]]
                n += 1
    return path, questions


def resolve_corpus(name: str, directory: Path) -> tuple[Path, list[str]]:
    if name == "squad":
        return squad_corpus(directory)
    _, questions = squad_corpus(directory)
    if name == "pg":
        return DATA / "pg-essays" / "essays", questions
    return Path(name), questions


def table(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    keys = list(dict.fromkeys(k for row in rows for k in row))
    widths = {k: max(len(k), *(len(_fmt(r.get(k, ""))) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(_fmt(row.get(k, "")).ljust(widths[k]) for k in keys))


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def bench_ingest(args: argparse.Namespace) -> list[dict[str, Any]]:
    import faiss

    from memflow import Memory
    from memflow.components.chunkers.sentences import SentenceChunker
    from memflow.components.encoders.sentence_transformers import load_encoder
    from memflow.components.loaders.auto import AutoLoader

    work = Path(tempfile.mkdtemp(prefix="memflow-perf-"))
    corpus, _ = resolve_corpus(args.corpus, work)
    encoder = load_encoder("default")
    encoder.encode_queries(["warm up"])

    with Memory(work / "store") as memory:
        report = memory.ingest([str(corpus)])
    tokens = report.tokens

    # The floor: the very same chunk texts, one encode call, one FAISS add.
    loader, chunker = AutoLoader(), SentenceChunker()
    texts = [c.text for f in loader.iter_files([str(corpus)]) for d in loader.load_file(f)
             for c in chunker.chunk_document(d)]
    started = time.perf_counter()
    vectors = encoder.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    floor = time.perf_counter() - started

    rows = [
        {"system": "floor (st.encode + IndexFlatIP.add)", "chunks": len(texts), "tokens": tokens,
         "wall_s": round(floor, 2), "chunks_per_s": round(len(texts) / floor, 1),
         "tokens_per_s": round(tokens / floor, 1), "ratio": 1.0},
        {"system": "memflow ingest (cold store)", "chunks": report.chunks, "tokens": tokens,
         "wall_s": round(report.seconds, 2), "chunks_per_s": round(report.chunks / report.seconds, 1),
         "tokens_per_s": round(tokens / report.seconds, 1), "ratio": round(report.seconds / floor, 3),
         **{f"{k}_s": round(v, 2) for k, v in report.stages.items()}},
    ]
    return rows


def bench_query(args: argparse.Namespace) -> list[dict[str, Any]]:
    import faiss

    from memflow import Memory
    from memflow.components.encoders.sentence_transformers import load_encoder

    work = Path(tempfile.mkdtemp(prefix="memflow-perf-"))
    corpus, questions = resolve_corpus(args.corpus, work)
    questions = questions[: args.questions]
    encoder = load_encoder("default")
    rows = []
    with Memory(work / "store") as memory:
        memory.ingest([str(corpus)])
        ids = memory.store.chunk_ids_all()
        index = faiss.IndexFlatIP(encoder.dimension)
        index.add(memory.store.chunk_vectors(ids))
        memory.search(questions[0])
        memory.ask(questions[0])

        def floor(q: str) -> None:
            vector = encoder.model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
            index.search(vector, 10)

        for name, call in (("floor (encode + IndexFlatIP.search)", floor),
                           ("memflow search k=10", lambda q: memory.search(q, k=10)),
                           ("memflow ask (attention decoder)", lambda q: memory.ask(q))):
            times = []
            for question in questions:
                t0 = time.perf_counter()
                call(question)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            rows.append({"path": name, "queries": len(times), "p50_ms": round(statistics.median(times), 2),
                         "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)})
    base = rows[0]["p50_ms"]
    for row in rows:
        row["p50_ratio"] = round(row["p50_ms"] / base, 3)
    return rows


def _memory_child(words: int, directory: Path) -> None:
    """In a subprocess: ingest the first ``words`` words of the Gutenberg books; print peak RSS."""
    from memflow import Memory

    corpus = directory / f"corpus-{words}"
    corpus.mkdir(parents=True, exist_ok=True)
    budget = words
    for book in sorted((DATA / "gutenberg").glob("*.txt")):
        text = book.read_text(encoding="utf-8-sig").split()
        take = min(budget, len(text))
        # Books as files of ~10k words, so the corpus streams through batches as a real folder would.
        for start in range(0, take, 10_000):
            (corpus / f"{book.stem}-{start:07d}.txt").write_text(" ".join(text[start : start + 10_000]))
        budget -= take
        if budget <= 0:
            break
    with Memory(directory / f"store-{words}") as memory:
        report = memory.ingest([str(corpus)])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"words": words, "documents": len(report.ingested), "chunks": report.chunks,
                      "ingest_s": round(report.seconds, 1), "peak_rss_mb": round(peak_mb, 1)}))


def bench_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="memflow-perf-"))
    rows = []
    for words in args.sizes:
        result = subprocess.run([sys.executable, __file__, "_memory_child", str(words), str(work)],
                                capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return rows


def bench_flops(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from memflow.components.encoders.sentence_transformers import load_encoder

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    started = time.perf_counter()
    reps = 5
    for _ in range(reps):
        a @ b
    matmul = 2 * n**3 * reps / (time.perf_counter() - started)

    encoder = load_encoder("default")
    config = encoder.model[0].auto_model.config
    layers, hidden, inter = config.num_hidden_layers, config.hidden_size, config.intermediate_size
    seq = 256
    # Per token: 4 hidden^2 (QKV + output) + 2 hidden*inter (FFN) multiply-adds per layer, plus attention
    # scores and mixing (2 seq hidden); x2 for FLOPs.
    per_token = 2 * layers * (4 * hidden * hidden + 2 * hidden * inter + 2 * seq * hidden)
    texts = [" ".join(["memory"] * (seq - 2))] * 64
    encoder.model.encode(texts[:8], batch_size=32)
    started = time.perf_counter()
    encoder.model.encode(texts, batch_size=32)
    seconds = time.perf_counter() - started
    achieved = per_token * seq * len(texts) / seconds
    return [{"what": "torch fp32 matmul 2048^2", "gflops": round(matmul / 1e9, 1), "threads": torch.get_num_threads()},
            {"what": "MiniLM encode (256-token inputs)", "gflops": round(achieved / 1e9, 1),
             "mflop_per_token": round(per_token / 1e6, 1), "tokens_per_s": round(seq * len(texts) / seconds),
             "of_matmul": round(achieved / matmul, 3)}]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory_child":
        _memory_child(int(sys.argv[2]), Path(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("ingest", "query", "memory", "flops"):
        command = sub.add_parser(name)
        command.add_argument("--json", action="store_true")
        command.add_argument("--corpus", default="squad", help="squad (SQuAD dev paragraphs), pg, or a folder")
    sub.choices["query"].add_argument("--questions", type=int, default=1000)
    sub.choices["memory"].add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_130_000],
                                       help="corpus sizes in words (default: a quarter, and all of Gutenberg)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    benches = {"ingest": bench_ingest, "query": bench_query, "memory": bench_memory, "flops": bench_flops}
    rows = benches[args.command](args)
    table(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
