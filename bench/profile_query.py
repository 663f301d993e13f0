"""Where a `search` spends its time: the query encoder alone against the whole search, then cProfile's top
functions over the same queries (model loaded, a small store of PG essays, the dense pipeline).

    .venv/bin/python bench/profile_query.py [--essays 6] [--queries 200] [--backend auto|torch|onnx] [--top 25]
    .venv/bin/python bench/profile_query.py --squad [--queries 100] [--top 45]

``--squad`` profiles the default pipeline instead, on the SQuAD dev eval store (`memflow eval squad` builds
it), over every n-th dev question, after two unprofiled passes over them (warm: the reranker's caches full).
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
    parser.add_argument("--squad", action="store_true", help="the default pipeline on the SQuAD dev eval store")
    args = parser.parse_args()
    if args.squad:
        return profile_squad(args.queries, args.top)
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


def profile_squad(queries: int, top: int) -> int:
    from memflow.evaluation.squad import load_squad, open_squad_memory

    data = load_squad(REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json")
    questions = [q.question for q in data.questions[:: max(1, len(data.questions) // queries)]][:queries]
    with open_squad_memory(data) as memory:
        for _ in range(2):
            for question in questions:
                memory.search(question)
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        for question in questions:
            memory.search(question)
        profile.disable()
        print(
            f"default pipeline: {(time.perf_counter() - started) / len(questions) * 1000:.1f} ms per search "
            f"under cProfile (mean over {len(questions)} warm SQuAD questions)"
        )
        pstats.Stats(profile).sort_stats("cumulative").print_stats(top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
