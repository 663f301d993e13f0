"""Performance benchmark: memflow against the bare floor, on the same corpus, model and process.

    .venv/bin/python bench/perf.py ingest [--corpus squad|pg|DIR]   # ingest vs sentence-transformers + FAISS
    .venv/bin/python bench/perf.py query  [--questions 1000]        # search / ask latency vs encode + search
    .venv/bin/python bench/perf.py memory                           # peak RSS at two corpus sizes (subprocesses)
    .venv/bin/python bench/perf.py flops                            # encoder FLOP/s vs this machine's matmul
    .venv/bin/python bench/perf.py quality                          # SQuAD recall per encoder backend
    add --json for machines; --backend torch|onnx|auto and --precision auto|float32|int8 choose memflow's
    encoder (default: torch and onnx int8, side by side). Nothing here is asserted: it measures and prints.

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


def variants(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(backend, precision) pairs to measure: the ones asked for, else PyTorch and ONNX int8."""
    if args.backend:
        return [(args.backend, args.precision)]
    from memflow.models import pick_device

    if pick_device("auto") != "cpu":
        return [("torch", "auto")]  # a GPU: PyTorch fp16 (backend auto picks it too); ONNX int8 is the CPU path
    return [("torch", "auto"), ("onnx", "int8")]


def pipelines(directory: Path, backend: str, precision: str) -> dict[str, Path]:
    """The default ingest pipeline and the dense ask pipeline (what the floor is: an encoder pass and a FAISS
    search) with the encoders' backend and precision set."""
    import yaml

    paths = {}
    for role, name, encoder in (("ingest", "ingest", "encode"), ("ask", "ask-dense", "embed")):
        spec = yaml.safe_load((REPO / "pipelines" / f"{name}.yaml").read_text())
        spec["components"][encoder].setdefault("params", {}).update({"backend": backend, "precision": precision})
        paths[f"{role}_pipeline"] = directory / f"{name}-{backend}-{precision}.yaml"
        paths[f"{role}_pipeline"].write_text(yaml.safe_dump(spec, sort_keys=False))
    return paths


def label(backend: str, precision: str) -> str:
    return backend if precision == "auto" else f"{backend} {precision}"


def bench_ingest(args: argparse.Namespace) -> list[dict[str, Any]]:
    import faiss

    from memflow import Memory
    from memflow.components.chunkers.sentences import SentenceChunker
    from memflow.components.encoders.sentence_transformers import load_encoder
    from memflow.components.loaders.auto import AutoLoader

    work = Path(tempfile.mkdtemp(prefix="memflow-perf-"))
    corpus, _ = resolve_corpus(args.corpus, work)
    encoder = load_encoder("default", backend="torch")  # the floor is plain sentence-transformers
    encoder.encode_queries(["warm up"])

    reports = []
    for backend, precision in variants(args):
        load_encoder("default", backend=backend, precision=precision).encode_queries(["warm up"])  # type: ignore[arg-type]
        with Memory(work / f"store-{backend}-{precision}", **pipelines(work, backend, precision)) as memory:
            reports.append((label(backend, precision), memory.ingest([str(corpus)])))
    tokens = reports[0][1].tokens

    # The floor: the very same chunk texts, one encode call, one FAISS add.
    loader, chunker = AutoLoader(), SentenceChunker()
    texts = [
        c.text for f in loader.iter_files([str(corpus)]) for d in loader.load_file(f) for c in chunker.chunk_document(d)
    ]
    started = time.perf_counter()
    vectors = encoder.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    floor = time.perf_counter() - started

    rows = [
        {
            "system": "floor (st.encode + IndexFlatIP.add)",
            "chunks": len(texts),
            "tokens": tokens,
            "wall_s": round(floor, 2),
            "chunks_per_s": round(len(texts) / floor, 1),
            "tokens_per_s": round(tokens / floor, 1),
            "ratio": 1.0,
        },
    ]
    for name, report in reports:
        rows.append(
            {
                "system": f"memflow ingest, {name} (cold store)",
                "chunks": report.chunks,
                "tokens": report.tokens,
                "wall_s": round(report.seconds, 2),
                "chunks_per_s": round(report.chunks / report.seconds, 1),
                "tokens_per_s": round(report.tokens / report.seconds, 1),
                "ratio": round(report.seconds / floor, 3),
                **{f"{k}_s": round(v, 2) for k, v in report.stages.items()},
            }
        )
    return rows


def bench_query(args: argparse.Namespace) -> list[dict[str, Any]]:
    import faiss

    from memflow import Memory
    from memflow.components.encoders.sentence_transformers import load_encoder

    work = Path(tempfile.mkdtemp(prefix="memflow-perf-"))
    corpus, questions = resolve_corpus(args.corpus, work)
    questions = questions[: args.questions]
    encoder = load_encoder("default", backend="torch")  # the floor is plain sentence-transformers
    chosen = variants(args)
    # One store for every variant (ingested with the last, usually the fastest); each variant then answers
    # with its own query encoder: the question's encoder pass is what differs between them.
    with Memory(work / "store", **pipelines(work, *chosen[-1])) as memory:
        memory.ingest([str(corpus)])
        ids = memory.store.chunk_ids_all()
        index = faiss.IndexFlatIP(encoder.dimension)
        index.add(memory.store.chunk_vectors(ids))

    def floor(q: str) -> None:
        vector = encoder.model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
        index.search(vector, 10)

    def timed(name: str, call: Any) -> dict[str, Any]:
        call(questions[0])
        times = []
        for question in questions:
            t0 = time.perf_counter()
            call(question)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        return {
            "path": name,
            "queries": len(times),
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        }

    rows = [timed("floor (st.encode + IndexFlatIP.search)", floor)]
    for backend, precision in chosen:
        paths = pipelines(work, backend, precision)
        with Memory(work / "store", ask_pipeline=paths["ask_pipeline"]) as memory:
            name = label(backend, precision)
            rows.append(timed(f"memflow search k=10, {name}", lambda q: memory.search(q, k=10)))  # noqa: B023
            rows.append(timed(f"memflow ask (attention decoder), {name}", lambda q: memory.ask(q)))  # noqa: B023
    base = rows[0]["p50_ms"]
    for row in rows:
        row["p50_ratio"] = round(row["p50_ms"] / base, 3)
    return rows


def bench_quality(args: argparse.Namespace) -> list[dict[str, Any]]:
    """SQuAD v1.1 dev paragraph retrieval (dense, the default ask pipeline) per encoder variant: the quality
    side of the speed-up. Stores are the eval cache's (`memflow eval squad` reuses them)."""
    from memflow.evaluation.squad import evaluate_squad_retrieval, load_squad, open_squad_memory

    work = Path(tempfile.mkdtemp(prefix="memflow-perf-"))
    data = load_squad(DATA / "squad" / "dev-v1.1.json")
    rows = []
    for backend, precision in variants(args):
        paths = pipelines(work, backend, precision)
        started = time.perf_counter()
        with open_squad_memory(data, **paths) as memory:
            ingest_s = time.perf_counter() - started
            report = evaluate_squad_retrieval(memory, data, limit=args.questions)
        rows.append(
            {
                "encoder": label(backend, precision),
                "questions": report.queries,
                **{k: round(v, 4) for k, v in report.metrics.items()},
                "open_or_ingest_s": round(ingest_s, 1),
            }
        )
    return rows


def _memory_child(words: int, directory: Path, backend: str = "torch", precision: str = "auto") -> None:
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
    store = directory / f"store-{words}-{backend}-{precision}"
    with Memory(store, **pipelines(directory, backend, precision)) as memory:
        report = memory.ingest([str(corpus)])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "encoder": label(backend, precision),
                "words": words,
                "documents": len(report.ingested),
                "chunks": report.chunks,
                "ingest_s": round(report.seconds, 1),
                "peak_rss_mb": round(peak_mb, 1),
            }
        )
    )


def bench_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="memflow-perf-"))
    rows = []
    backend, precision = variants(args)[-1]
    for words in args.sizes:
        result = subprocess.run(
            [sys.executable, __file__, "_memory_child", str(words), str(work), backend, precision],
            capture_output=True,
            text=True,
            check=True,
        )
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

    encoder = load_encoder("default", backend="torch")  # the floor is plain sentence-transformers
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
    rows = [
        {"what": "torch fp32 matmul 2048^2", "gflops": round(matmul / 1e9, 1), "threads": torch.get_num_threads()},
        {
            "what": "MiniLM encode, torch fp32 (256-token inputs)",
            "gflops": round(achieved / 1e9, 1),
            "mflop_per_token": round(per_token / 1e6, 1),
            "tokens_per_s": round(seq * len(texts) / seconds),
            "of_matmul": round(achieved / matmul, 3),
        },
    ]
    for backend, precision in variants(args):
        if backend == "torch":
            continue
        model = load_encoder("default", backend=backend, precision=precision)  # type: ignore[arg-type]
        features = model.tokenizer(texts, padding=True, truncation=True, max_length=seq, return_tensors="pt")
        model._forward({k: v[:8] for k, v in features.items()})
        started = time.perf_counter()
        for i in range(0, len(texts), 32):
            model._forward({k: v[i : i + 32] for k, v in features.items()})
        seconds = time.perf_counter() - started
        achieved = per_token * seq * len(texts) / seconds
        # int8 runs the same multiply-adds in integer units: "gflops" counts them as the fp32 model's FLOPs.
        rows.append(
            {
                "what": f"MiniLM encode, {label(backend, precision)} (256-token inputs)",
                "gflops": round(achieved / 1e9, 1),
                "mflop_per_token": round(per_token / 1e6, 1),
                "tokens_per_s": round(seq * len(texts) / seconds),
                "of_matmul": round(achieved / matmul, 3),
            }
        )
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory_child":
        _memory_child(int(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("ingest", "query", "memory", "flops", "quality"):
        command = sub.add_parser(name)
        command.add_argument("--json", action="store_true")
        command.add_argument("--corpus", default="squad", help="squad (SQuAD dev paragraphs), pg, or a folder")
        command.add_argument("--backend", choices=["torch", "onnx", "auto"], help="memflow's encoder backend")
        command.add_argument("--precision", default="auto", choices=["auto", "float32", "float16", "int8"])
    sub.choices["query"].add_argument("--questions", type=int, default=1000)
    sub.choices["quality"].add_argument("--questions", type=int, default=None, help="default: all 10,570")
    sub.choices["memory"].add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[250_000, 1_130_000],
        help="corpus sizes in words (default: a quarter, and all of Gutenberg)",
    )
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    benches = {
        "ingest": bench_ingest,
        "query": bench_query,
        "memory": bench_memory,
        "flops": bench_flops,
        "quality": bench_quality,
    }
    rows = benches[args.command](args)
    table(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
