"""Needle in a haystack: a needle sentence at depths 0-100 % of haystacks of 1k to 1M tokens.

A haystack of L tokens (counted with the encoder's tokenizer) is the text folder's files in name order,
repeated as often as needed, the last one cut at a sentence end so the total is L. The needle goes in as
a paragraph of its own at the sentence boundary nearest to depth d (0 % = the very start, 100 % = the
very end). Each haystack is one folder of files ingested into a fresh store through the ingest pipeline,
and the question is asked through the ask pipeline. Scored per cell: the needle's retrieval rank (the
first hit whose span holds the needle, 1 = best) and whether the answer's text contains it and cites it.

Encoding 1M tokens per cell would take hours on a CPU, so the folder is ingested once into a cached
source store, and a haystack file that is an unchanged copy of a source file gets the source's stored
chunks, vectors and summary state (the same text through the same pipeline gives the same data); only
the files that differ -- the one holding the needle and a cut last file -- go through the encoder. The
ingest then skips the copies as unchanged, as it would on any re-run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memflow.components.chunkers.sentence_split import split_sentences
from memflow.errors import MemflowError, MissingDependencyError
from memflow.evaluation.cache import cache_root, digest_files, open_eval_memory
from memflow.evaluation.metrics import normalize_answer
from memflow.memory import Memory
from memflow.models import DEFAULT_MODEL, load_tokenizer
from memflow.pipeline import Pipeline
from memflow.storage.store import Store
from memflow.types import Chunk, Document, Sentence

__all__ = [
    "NEEDLE",
    "QUESTION",
    "NiahCell",
    "NiahReport",
    "run_niah",
    "format_grid",
    "save_heatmap",
    "require_matplotlib",
    "parse_length",
]

NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
QUESTION = "What is the best thing to do in San Francisco?"
LENGTHS = (1_000, 8_000, 64_000, 256_000, 1_000_000)
DEPTHS = (0, 25, 50, 75, 100)


@dataclass(frozen=True, slots=True)
class NiahCell:
    length: int
    depth: int
    tokens: int
    rank: int | None
    answer_contains: bool
    answer_cites: bool


@dataclass(slots=True)
class NiahReport:
    needle: str
    question: str
    cells: list[NiahCell] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n = len(self.cells) or 1
        return {
            "cells": len(self.cells),
            "rank1": sum(c.rank == 1 for c in self.cells) / n,
            "answer_contains": sum(c.answer_contains for c in self.cells) / n,
            "answer_cites": sum(c.answer_cites for c in self.cells) / n,
        }


def parse_length(text: str) -> int:
    """``1k``, ``64k``, ``1M`` or a plain number of tokens."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise MemflowError(f"invalid haystack length {text!r} (use e.g. 8k, 1M or 8000)") from None


@dataclass(slots=True)
class _Source:
    path: Path
    text: str
    token_ends: list[int]  # character offset where each token ends


def _sources(folder: Path, model: str) -> list[_Source]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in {".txt", ".md"})
    if not files:
        raise MemflowError(f"no .txt or .md files in {folder} to build a haystack from")
    tokenizer = load_tokenizer(model)
    sources = []
    for path in files:
        text = path.read_bytes().decode("utf-8")
        ends = [end for _, end in tokenizer.encode(text, add_special_tokens=False).offsets]
        sources.append(_Source(path, text, ends))
    return sources


def _cut(text: str, at: int) -> int:
    """The end of the last sentence that ends at or before ``at`` (0 if none)."""
    best = 0
    for _, end in split_sentences(text):
        if end > at:
            break
        best = end
    return best


def _boundary(text: str, at: int) -> int:
    """The sentence boundary of ``text`` nearest to ``at``."""
    spans = split_sentences(text)
    candidates = [0, len(text)] + [s for s, _ in spans]
    return min(candidates, key=lambda c: abs(c - at))


def _haystack(sources: list[_Source], length: int, depth: int) -> tuple[list[tuple[str, str, _Source | None]], int]:
    """(file name, text, source if an unchanged copy) per file, and the haystack's token count."""
    pieces: list[tuple[str, str, _Source | None]] = []
    total, copy = 0, 0
    while total < length:
        for source in sources:
            need = length - total
            if need <= 0:
                break
            name = f"{copy:03d}-{source.path.name}"
            if len(source.token_ends) <= need:
                pieces.append((name, source.text, source))
                total += len(source.token_ends)
            else:
                end = _cut(source.text, source.token_ends[need - 1])
                if end == 0:
                    total = length
                    break
                pieces.append((name, source.text[:end], None))
                total += sum(1 for e in source.token_ends if e <= end)
        copy += 1
    # the needle: at the boundary nearest depth% of the tokens
    target, seen = depth / 100 * total, 0
    for index, (name, text, src) in enumerate(pieces):
        count = len(src.token_ends) if src else _count(text, sources)
        if seen + count >= target or index == len(pieces) - 1:
            local = target - seen
            ratio = min(max(local / max(count, 1), 0.0), 1.0)
            at = _boundary(text, int(ratio * len(text)))
            new = f"{text[:at].rstrip()}\n\n{NEEDLE}\n\n{text[at:].lstrip()}".strip() + "\n"
            pieces[index] = (name, new, None)
            break
        seen += count
    return pieces, total


def _count(text: str, sources: list[_Source]) -> int:
    for source in sources:
        if source.text.startswith(text):
            return sum(1 for e in source.token_ends if e <= len(text))
    return len(text) // 4


def _copy_document(source: Store, target: Store, uri: str, new_path: Path) -> Document | None:
    """Write the source store's document ``uri`` into ``target`` as the file ``new_path`` (same bytes)."""
    found = source.find_document(uri)
    if found is None:
        return None
    text = source.document_text(found.id)
    document = Document(
        uri=str(new_path),
        text=text,
        content_hash=found.content_hash,
        title=new_path.stem,
        metadata={**found.metadata, "path": str(new_path)},
        sections=source.document_sections(found.id),
    )
    ids = [cid for (_, _), cid in sorted(source.chunk_ids((found.id, o) for o in range(found.chunk_count)).items())]
    stored = source.chunks(ids)
    vectors = source.chunk_vectors(ids) if ids else None
    chunks = []
    for n, chunk in enumerate(stored):
        assert vectors is not None
        chunks.append(
            Chunk(
                document=document,
                ordinal=chunk.ordinal,
                start=chunk.start,
                end=chunk.end,
                text=chunk.text,
                token_count=0,
                section=chunk.section,
                vector=vectors[n],
                sentences=[Sentence(s.start, s.end, s.text) for s in chunk.sentences],
                sentence_vectors=chunk.sentence_vectors,
            )
        )
    state = source.summary_states([found.id]).get(found.id)
    if state is not None:
        state.document = document.uri
    target.write_documents([(document, chunks, state)])
    return document


def _locate(hits: Sequence[Any], needle_uri: str, start: int, end: int) -> int | None:
    for hit in hits:
        if hit.document == needle_uri and hit.start <= start and end <= hit.end:
            return int(hit.rank)
    return None


def run_niah(
    folder: str | Path,
    *,
    lengths: Sequence[int] = LENGTHS,
    depths: Sequence[int] = DEPTHS,
    ask_pipeline: str | Path | Pipeline | None = None,
    ingest_pipeline: str | Path | None = None,
    cache: str | Path | None = None,
    k: int | None = None,
    progress: bool = False,
    trusted_modules: tuple[str, ...] = (),
) -> NiahReport:
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise MemflowError(f"{root} is not a folder of text files")
    sources = _sources(root, DEFAULT_MODEL)
    key = digest_files([s.path for s in sources], "niah-source/1")[:12]
    base = cache_root(cache) / f"niah-{root.name}-{key}"
    source_memory = open_eval_memory(
        base, root, ingest_pipeline=ingest_pipeline, progress=progress, trusted_modules=trusted_modules
    )
    report = NiahReport(needle=NEEDLE, question=QUESTION)
    try:
        for length in lengths:
            for depth in depths:
                report.cells.append(
                    _cell(
                        sources,
                        source_memory,
                        length,
                        depth,
                        ask_pipeline=ask_pipeline,
                        ingest_pipeline=ingest_pipeline,
                        k=k,
                        trusted=trusted_modules,
                    )
                )
    finally:
        source_memory.close()
    return report


def _cell(
    sources: list[_Source],
    source: Memory,
    length: int,
    depth: int,
    *,
    ask_pipeline: Any,
    ingest_pipeline: Any,
    k: int | None,
    trusted: tuple[str, ...],
) -> NiahCell:
    pieces, tokens = _haystack(sources, length, depth)
    work = Path(tempfile.mkdtemp(prefix="memflow-niah-"))
    try:
        folder = work / "haystack"
        folder.mkdir()
        needle_path = None
        for name, text, _ in pieces:
            (folder / name).write_text(text, encoding="utf-8")
            if NEEDLE in text:
                needle_path = (folder / name).resolve()
        with Memory(
            work / "store", ingest_pipeline=ingest_pipeline, ask_pipeline=ask_pipeline, trusted_modules=trusted
        ) as memory:
            store = memory.store
            store.check_encoder(
                str(source.store.setting("encoder")), int(source.store.setting("dimension")), record=True
            )
            store.check_index(source.store.index_factory)
            with store.writer():
                for name, _, src in pieces:
                    if src is not None:
                        _copy_document(source.store, store, str(src.path.resolve()), (folder / name).resolve())
                store.save_vectors()
            memory.ingest([str(folder)])
            answer = memory.ask(QUESTION, k=k)
            assert needle_path is not None
            uri = str(needle_path)
            text = store.document_text(store.find_document(uri).id)  # type: ignore[union-attr]
            start = text.index(NEEDLE)
            end = start + len(NEEDLE)
            rank = _locate(answer.hits, uri, start, end)
            contains = normalize_answer(NEEDLE) in normalize_answer(answer.text)
            cites = any(c.document == uri and c.start < end and start < c.end for c in answer.citations)
        return NiahCell(
            length=length, depth=depth, tokens=tokens, rank=rank, answer_contains=contains, answer_cites=cites
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def format_grid(report: NiahReport) -> str:
    """Lengths as rows, depths as columns; each cell 'rank/answer' (e.g. '1 ✓' or '- ✗')."""
    lengths = sorted({c.length for c in report.cells})
    depths = sorted({c.depth for c in report.cells})
    by = {(c.length, c.depth): c for c in report.cells}
    lines = ["tokens \\ depth " + "".join(f"{d:>8}%" for d in depths)]
    for length in lengths:
        row = [f"{length:>14,} "]
        for depth in depths:
            cell = by.get((length, depth))
            if cell is None:
                row.append(f"{'':>9}")
                continue
            mark = "✓" if cell.answer_contains and cell.answer_cites else "✗"
            row.append(f"{(str(cell.rank) if cell.rank else '-') + ' ' + mark:>9}")
        lines.append("".join(row))
    lines.append("cell: the needle's retrieval rank ('-' = not retrieved), ✓ = the answer contains and cites it")
    return "\n".join(lines)


def require_matplotlib() -> Any:
    """matplotlib's pyplot (non-interactive backend), or MissingDependencyError naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", extra="plot", purpose="the NIAH heat map") from exc
    return plt


def save_heatmap(report: NiahReport, path: str | Path) -> Path:
    """A PNG heat map of the grid (green = needle at rank 1 and in the answer). Needs ``memflow[plot]``."""
    plt = require_matplotlib()
    lengths = sorted({c.length for c in report.cells})
    depths = sorted({c.depth for c in report.cells})
    by = {(c.length, c.depth): c for c in report.cells}
    grid = [[_score(by.get((length, depth))) for length in lengths] for depth in depths]
    figure, axes = plt.subplots(figsize=(1.2 * len(lengths) + 2, 0.6 * len(depths) + 1.5))
    image = axes.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    axes.set_xticks(range(len(lengths)), [f"{n:,}" for n in lengths])
    axes.set_yticks(range(len(depths)), [f"{d}%" for d in depths])
    axes.set_xlabel("haystack tokens")
    axes.set_ylabel("needle depth")
    for row, depth in enumerate(depths):
        for column, length in enumerate(lengths):
            cell = by.get((length, depth))
            label = "-" if cell is None or cell.rank is None else str(cell.rank)
            axes.text(column, row, label, ha="center", va="center", fontsize=9)
    axes.set_title("needle rank (1 = best; green = also answered)", fontsize=10)
    figure.colorbar(image)
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def _score(cell: NiahCell | None) -> float:
    if cell is None or cell.rank is None:
        return 0.0
    return 0.5 / cell.rank + 0.5 * float(cell.answer_contains and cell.answer_cites)
