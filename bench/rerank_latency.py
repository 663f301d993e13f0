"""What the reranker's encoder-run features (token MaxSim, plain and rare-word weighted, and title similarity)
cost per question: pipelines/ask-hybrid.yaml as shipped against the same pipeline with ``tokens``,
``rare_tokens`` and ``title`` at 0 (no encoder run in the reranker), over the same questions, each through
`Memory.ask` (retrieval, reranking and the attention decoder).

    .venv/bin/python bench/rerank_latency.py [--questions 200] [--json]

The store is the SQuAD dev paragraphs' eval store (`memflow eval squad` builds it; built here if missing).
Questions are every n-th SQuAD question. Each variant answers them twice: cold (empty token- and title-vector
caches: every chunk the token feature reads is encoded) and warm (the same questions again: their chunks are
cached). Nothing is asserted; it prints a table of milliseconds per question (median and 90th percentile).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def _variant(directory: Path, encoder_features: bool) -> Path:
    spec = yaml.safe_load((REPO / "pipelines" / "ask-hybrid.yaml").read_text(encoding="utf-8"))
    if not encoder_features:
        spec["components"]["rerank"]["params"].update(tokens=0.0, rare_tokens=0.0, title=0.0)
    path = directory / f"ask-hybrid-{'shipped' if encoder_features else 'no-encoder'}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from memflow.components.rerankers.title_similarity import TitleScorer
    from memflow.components.rerankers.token_maxsim import TokenScorer
    from memflow.evaluation.squad import load_squad, open_squad_memory

    data = load_squad(args.squad)
    step = max(1, len(data.questions) // args.questions)
    questions = [q.question for q in data.questions[::step]][: args.questions]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, shipped in (
            ("tokens, rare_tokens, title: 0 (no encoder in the reranker)", False),
            ("shipped (tokens and rare_tokens for the top 50, title)", True),
        ):
            with open_squad_memory(data, ask_pipeline=_variant(Path(tmp), shipped)) as memory:
                memory.ask(questions[0])  # load the models outside the timings
                TokenScorer.clear_caches()
                TitleScorer.clear_caches()
                for run in ("cold", "warm"):
                    times = []
                    for question in questions:
                        started = time.perf_counter()
                        memory.ask(question)
                        times.append((time.perf_counter() - started) * 1000)
                    times.sort()
                    rows.append(
                        {
                            "variant": label,
                            "cache": run,
                            "questions": len(times),
                            "median_ms": round(statistics.median(times), 1),
                            "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
                        }
                    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'variant':60} {'cache':6} {'questions':>9} {'median ms':>10} {'p90 ms':>8}")
    for row in rows:
        print(f"{row['variant']:60} {row['cache']:6} {row['questions']:>9} {row['median_ms']:>10} {row['p90_ms']:>8}")


if __name__ == "__main__":
    main()
