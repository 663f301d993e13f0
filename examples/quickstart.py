"""memflow as an application's memory: ingest files, search, ask, cite, stream.

    .venv/bin/python examples/quickstart.py [STORE_DIR] [FILE_OR_FOLDER ...]

With no arguments it ingests three Paul Graham essays from ../shared/data into a temporary store.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import memflow

ESSAYS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pg-essays" / "essays"


def main(store: str, paths: list[str]) -> None:
    with memflow.Memory(store) as memory:
        report = memory.ingest(paths)  # unchanged files are skipped on a second run
        print(report.summary())

        # search returns the ranking ask answers from: hybrid retrieval, reranked, duplicates collapsed
        for hit in memory.search("visa for startup founders", k=3):
            scores = ", ".join(f"{stage} {score:.2f}" for stage, score in hit.scores.items())
            print(f"{hit.rank}. {Path(hit.document).name} chars {hit.start}-{hit.end} ({scores})")

        answer = memory.ask("What could the government do to increase the number of startups?")
        print(answer.text)
        for citation in answer.citations:  # document, chunk and character span of each cited sentence
            print(
                f"  cited: {Path(citation.document).name} chunk {citation.chunk_ordinal} "
                f"chars {citation.start}-{citation.end}"
            )

        # the same answer streamed: text pieces, then the whole Answer with its citations
        for piece in memory.stream("Are venture capital firms biased against female founders?"):
            if isinstance(piece, memflow.Answer):
                print(f"\n  ({len(piece.citations)} citations)")
            else:
                print(piece, end="", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        main(sys.argv[1], sys.argv[2:])
    else:
        with tempfile.TemporaryDirectory() as directory:
            store = sys.argv[1] if len(sys.argv) == 2 else directory
            main(store, [str(ESSAYS / name) for name in ("foundervisa.txt", "bias.txt", "sun.txt")])
