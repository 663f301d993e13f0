"""SQuAD-format evaluation: paragraph retrieval, and reading with ``ask``.

Every paragraph of the file becomes a document (its text is the paragraph alone; id ``<article>-<n>``),
written as JSONL shards into the eval cache and ingested once. Each question's gold document is the
paragraph it was asked about. Retrieval is scored with recall@1/5/10 and MRR@10 of that paragraph in the
document ranking (documents ranked by their best chunk). For ``ask`` on a sample of questions: how often
the answer's top cited sentence (its highest-weighted evidence) contains a gold answer, how often the
answer text does, and EM/F1 of the answer text with the official SQuAD normalization (memflow answers
with whole sentences, not short spans, so EM is near 0 by construction and F1 is low: reported for
completeness).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memflow.errors import MemflowError
from memflow.evaluation.cache import cache_root, digest_files, open_eval_memory, prepare_corpus
from memflow.evaluation.metrics import best_over_golds, mean, normalize_answer
from memflow.evaluation.retrieval import RetrievalReport, document_id, evaluate_rankings, rank_documents
from memflow.filters import Where
from memflow.memory import Memory
from memflow.pipeline import Pipeline

__all__ = [
    "SquadQuestion",
    "SquadData",
    "load_squad",
    "open_squad_memory",
    "evaluate_squad_retrieval",
    "evaluate_squad_ask",
    "load_predictions",
]

PREPARATION = "squad-paragraphs/1"


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    id: str
    question: str
    answers: list[str]
    paragraph: str


@dataclass(frozen=True, slots=True)
class SquadData:
    name: str
    file: Path
    paragraphs: dict[str, str]
    titles: dict[str, str]
    questions: list[SquadQuestion]


def load_squad(file: str | Path) -> SquadData:
    path = Path(file).expanduser().resolve()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        articles = raw["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MemflowError(f"{path}: not a SQuAD v1.1 file ({exc.__class__.__name__}: {exc})") from exc
    paragraphs: dict[str, str] = {}
    titles: dict[str, str] = {}
    questions: list[SquadQuestion] = []
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article["paragraphs"]):
            pid = f"{a}-{p}"
            paragraphs[pid] = paragraph["context"]
            titles[pid] = str(article.get("title", "")).replace("_", " ")
            for qa in paragraph["qas"]:
                questions.append(
                    SquadQuestion(str(qa["id"]), str(qa["question"]), [str(x["text"]) for x in qa["answers"]], pid)
                )
    return SquadData(name=path.stem, file=path, paragraphs=paragraphs, titles=titles, questions=questions)


def load_predictions(file: str | Path) -> dict[str, str]:
    """A SQuAD predictions file: ``{question id: answer text}``."""
    data = json.loads(Path(file).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise MemflowError(f"{file}: expected a JSON object of question id -> answer")
    return {str(k): str(v) for k, v in data.items()}


def open_squad_memory(
    data: SquadData,
    *,
    cache: str | Path | None = None,
    ingest_pipeline: str | Path | None = None,
    ask_pipeline: str | Path | Pipeline | None = None,
    url: str | None = None,
    progress: bool = False,
    trusted_modules: tuple[str, ...] = (),
) -> Memory:
    key = digest_files([data.file], PREPARATION)[:12]
    directory = cache_root(cache) / f"squad-{data.name}-{key}"
    records = ({"_id": pid, "title": "", "text": text} for pid, text in data.paragraphs.items())
    corpus = prepare_corpus(directory, records)
    return open_eval_memory(
        directory,
        corpus,
        ingest_pipeline=ingest_pipeline,
        ask_pipeline=ask_pipeline,
        url=url,
        progress=progress,
        trusted_modules=trusted_modules,
    )


def _sample(questions: list[SquadQuestion], limit: int | None) -> list[SquadQuestion]:
    """Every n-th question, so a limited run still spans all articles."""
    if not limit or limit >= len(questions):
        return questions
    step = len(questions) / limit
    return [questions[int(i * step)] for i in range(limit)]


def evaluate_squad_retrieval(
    memory: Memory,
    data: SquadData,
    *,
    limit: int | None = None,
    chunks: int = 50,
    progress: bool = False,
    where: Mapping[str, Any] | Where | None = None,
) -> RetrievalReport:
    questions = _sample(data.questions, limit)
    texts = [q.question for q in questions]
    rankings = rank_documents(memory, texts, depth=10, chunks=chunks, progress=progress, where=where)
    report = evaluate_rankings(
        {q.id: r for q, r in zip(questions, rankings, strict=True)},
        {q.id: {q.paragraph: 1} for q in questions},
        name=data.name,
        cutoffs={"recall": (1, 5, 10), "mrr": (10,)},
    )
    return report


def evaluate_squad_ask(
    memory: Memory,
    data: SquadData,
    *,
    limit: int = 500,
    progress: bool = False,
    where: Mapping[str, Any] | Where | None = None,
) -> dict[str, Any]:
    """Reading on a sample: top cited sentence / answer containing a gold answer, and EM/F1."""
    questions = _sample(data.questions, limit)
    top_sentence, in_answer, em, f1, paragraph_hit = [], [], [], [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(questions), unit="question", desc="ask", dynamic_ncols=True)
    for q in questions:
        answer = memory.ask(q.question, where=where)
        golds = [normalize_answer(g) for g in q.answers]
        top = answer.evidence[0].text if answer.evidence else ""
        top_norm, answer_norm = normalize_answer(top), normalize_answer(answer.text)
        top_sentence.append(float(any(g and g in top_norm for g in golds)))
        in_answer.append(float(any(g and g in answer_norm for g in golds)))
        paragraph_hit.append(
            float(bool(answer.evidence) and document_id(answer.evidence[0].citation.document) == q.paragraph)
        )
        em.append(best_over_golds("em", answer.text, q.answers))
        f1.append(best_over_golds("f1", answer.text, q.answers))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {
        "questions": len(questions),
        "top_sentence_has_answer": mean(top_sentence),
        "answer_has_answer": mean(in_answer),
        "top_sentence_from_gold_paragraph": mean(paragraph_hit),
        "exact_match": 100 * mean(em),
        "f1": 100 * mean(f1),
    }
