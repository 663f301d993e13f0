"""Decoder benchmark: the built-in attention decoder and SmolLM2 (decoders.llama_cpp) side by side.

    .venv/bin/python bench/decoders.py                   # the PG essays in ../shared/data, 1 llama.cpp thread
    .venv/bin/python bench/decoders.py --threads 2 --budget 768 --json

Ingests the corpus into a store (a fresh temporary one, or --store DIR, where unchanged files are skipped),
then asks each question of tests/data/pg_questions.jsonl with both decoders and scores an answer 1 when it
contains the question's expected fact (or one of its alternatives; case and spacing ignored). Also measures
SmolLM2's speed on this CPU (generated and prompt tokens/s, from llama.cpp's own timings, over a fixed
prompt) and the latency of `ask` with each decoder. The load average is printed with the figures: llama.cpp
slows down sharply when its threads compete with other busy processes for the cores. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "pg-essays" / "essays"
DEFAULT_QUESTIONS = REPO / "tests" / "data" / "pg_questions.jsonl"

SPEED_PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": "Context: [1] The Eiffel Tower was built in 1889 for the World's Fair in Paris. "
        "[2] It is 330 metres tall.\nQuestion: Describe the Eiffel Tower in three sentences.",
    },
]


def _flat(text: str) -> str:
    return " ".join(text.lower().split())


def contains_fact(answer: str, question: dict[str, Any]) -> bool:
    """Whether ``answer`` contains the question's expected fact or one of its alternatives."""
    return any(_flat(fact) in _flat(answer) for fact in [question["fact"], *question.get("also", [])])


def load_questions(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def measure_speed(threads: int, runs: int = 3) -> dict[str, float]:
    """SmolLM2's generated and prompt tokens/s on this CPU (llama.cpp's timings; median over ``runs``)."""
    from memflow.components.decoders.llama_cpp import load_llama, resolve_gguf

    started = time.perf_counter()
    model = load_llama(resolve_gguf("smollm2"), 2048, threads)
    load = time.perf_counter() - started
    generated, prompt = [], []
    for run in range(runs):
        messages = [dict(m) for m in SPEED_PROMPT]
        messages[1]["content"] += f" (run {run})"  # defeat llama.cpp's prompt cache: measure prompt speed too
        model.complete(messages, max_tokens=96, temperature=0.0)
        generated.append(model.last_timings.get("predicted_per_second", 0.0))
        prompt.append(model.last_timings.get("prompt_per_second", 0.0))
    return {
        "load_s": load,
        "generated_tokens_per_s": statistics.median(generated),
        "prompt_tokens_per_s": statistics.median(prompt),
        "threads": float(threads),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from memflow import Memory, Pipeline
    from memflow.pipeline import builtin_pipeline

    questions = load_questions(args.questions)[: args.limit or None]
    load_before = os.getloadavg()
    speed = measure_speed(args.threads)
    spec = Pipeline.from_yaml(builtin_pipeline("ask")).to_dict()
    spec["components"]["decode"] = {
        "type": "decoders.llama_cpp",
        "params": {"model": "smollm2", "threads": args.threads, "budget": args.budget, "max_tokens": args.max_tokens},
    }
    with tempfile.TemporaryDirectory(prefix="memflow-bench-") as scratch:
        store = args.store or Path(scratch) / "store"
        with Memory(store) as memory:
            report = memory.ingest([str(args.corpus)])
            llm = Memory(store, ask_pipeline=Pipeline.from_dict(spec, source="<bench ask-llm>"))
            rows = []
            for question in questions:
                started = time.perf_counter()
                builtin = memory.ask(question["question"])
                builtin_s = time.perf_counter() - started
                started = time.perf_counter()
                generated = llm.ask(question["question"])
                llm_s = time.perf_counter() - started
                rows.append(
                    {
                        "id": question["id"],
                        "essay": question["essay"],
                        "question": question["question"],
                        "fact": question["fact"],
                        "builtin": contains_fact(builtin.text, question),
                        "smollm2": contains_fact(generated.text, question),
                        "builtin_s": builtin_s,
                        "smollm2_s": llm_s,
                        "smollm2_cited": bool(generated.citations),
                        "smollm2_answer": generated.text,
                    }
                )
                if not args.json:
                    print(
                        f"  {question['id']}: built-in {'yes' if rows[-1]['builtin'] else 'no '}  "
                        f"SmolLM2 {'yes' if rows[-1]['smollm2'] else 'no '}  {llm_s:5.1f} s",
                        file=sys.stderr,
                    )
            llm.close()
    latencies = [r["smollm2_s"] for r in rows]
    return {
        "corpus": str(args.corpus),
        "documents": len(report.ingested) + len(report.unchanged),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "smollm2": speed,
        "budget": args.budget,
        "max_tokens": args.max_tokens,
        "builtin_score": sum(r["builtin"] for r in rows),
        "smollm2_score": sum(r["smollm2"] for r in rows),
        "smollm2_cited": sum(r["smollm2_cited"] for r in rows),
        "questions": len(rows),
        "builtin_latency_median_s": statistics.median(r["builtin_s"] for r in rows),
        "smollm2_latency_median_s": statistics.median(latencies),
        "smollm2_latency_max_s": max(latencies),
        "rows": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    speed = result["smollm2"]
    print(
        f"SmolLM2-135M-Instruct Q4_1 (llama.cpp via xllamacpp, {int(speed['threads'])} thread(s), "
        f"{result['cpu_count']} cores, load average {result['load_average_before'][0]:.2f} before / "
        f"{result['load_average_after'][0]:.2f} after)"
    )
    print(
        f"  load {speed['load_s']:.1f} s; generation {speed['generated_tokens_per_s']:.1f} tokens/s; "
        f"prompt {speed['prompt_tokens_per_s']:.1f} tokens/s"
    )
    print(
        f"ask latency over {result['documents']} documents: built-in decoder median "
        f"{result['builtin_latency_median_s']:.2f} s; --decoder llama_cpp median "
        f"{result['smollm2_latency_median_s']:.1f} s, max {result['smollm2_latency_max_s']:.1f} s "
        f"(budget {result['budget']}, max_tokens {result['max_tokens']})"
    )
    print()
    print(f"| {'id':<3} | {'question':<70} | {'expected fact':<18} | built-in | SmolLM2 |")
    print(f"|{'-' * 5}|{'-' * 72}|{'-' * 20}|----------|---------|")
    for row in result["rows"]:
        question = row["question"] if len(row["question"]) <= 70 else row["question"][:67] + "..."
        print(
            f"| {row['id']:<3} | {question:<70} | {row['fact']:<18} | {'yes' if row['builtin'] else 'no':<8} | "
            f"{'yes' if row['smollm2'] else 'no':<7} |"
        )
    total = result["questions"]
    print(
        f"| {'':<3} | {'answers containing the expected fact':<70} | {'':<18} | "
        f"{result['builtin_score']:>2}/{total:<5} | {result['smollm2_score']:>2}/{total:<4} |"
    )
    print(f"SmolLM2 cited [n] in {result['smollm2_cited']} of {result['questions']} answers.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--store", type=Path, default=None, help="reuse this store (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    parser.add_argument("--budget", type=int, default=768, help="the decoder's prompt budget in tokens")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="ask only the first N questions")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
