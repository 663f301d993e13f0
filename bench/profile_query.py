"""Where a `search` spends its time: the query encoder alone against the whole search, then cProfile's top
functions over the same queries (model loaded, a small store of PG essays).

    .venv/bin/python bench/profile_query.py [--essays 6] [--queries 200] [--backend auto|torch|onnx] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ESSAYS = REPO.parent / "shared" / "data" / "pg-essays" / "essays"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--essays", type=int, default=6)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from perf import pipelines  # the built-in pipelines with the encoder's backend set

    from memflow import Memory
    from memflow.components.encoders.sentence_transformers import load_encoder

    work = Path(tempfile.mkdtemp(prefix="memflow-profile-"))
    files = sorted(str(p) for p in ESSAYS.glob("*.txt"))[: args.essays]
    memory = Memory(work / "store", **pipelines(work, args.backend, "auto"))
    memory.ingest(files)
    questions = [f"what does the author think about topic {i} and startups" for i in range(args.queries)]
    memory.search(questions[0])
    encoder = load_encoder("default", backend=args.backend)  # type: ignore[arg-type]
    started = time.perf_counter()
    for question in questions:
        encoder.encode_queries([question])
    encode_ms = (time.perf_counter() - started) / len(questions) * 1000
    started = time.perf_counter()
    for question in questions:
        memory.search(question)
    search_ms = (time.perf_counter() - started) / len(questions) * 1000
    print(
        f"backend {encoder.backend}: query encoder alone {encode_ms:.2f} ms, whole search {search_ms:.2f} ms "
        f"(mean over {len(questions)} queries)"
    )
    profile = cProfile.Profile()
    profile.enable()
    for question in questions:
        memory.search(question)
    profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    memory.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
