"""The shared prompting rules of the generative decoders, the example pipeline and the benchmark questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from memflow import Memory, Pipeline
from memflow.cli.main import cli
from memflow.components.decoders.prompting import about_whole_document, parse_citations, render

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "question",
    [
        "What is this essay about?",
        "what's the article about",
        "What is the essay about founder visas about?",
        "Summarize the document.",
        "Give me a summary of the post",
        "What is the main point of this essay?",
        "What is the essay's main argument?",
        "What's the gist?",
        "Give an overview of the talk",
    ],
)
def test_questions_about_a_whole_document(question: str) -> None:
    assert about_whole_document(question)


@pytest.mark.parametrize(
    "question",
    [
        "What could the government do to increase the number of startups?",
        "Who made the list of regrets?",
        "What is a startup about to do when it runs out of money?",
        "Which investment did First Round exclude?",
        "How many founders a year?",
    ],
)
def test_questions_about_a_detail(question: str) -> None:
    assert not about_whole_document(question)


def test_citations_are_parsed_in_order_without_repeats() -> None:
    assert parse_citations("A [2]. B [1, 3]; C [2][4] and [ 5 ]. [x] [] [12;13]") == [2, 1, 3, 4, 5, 12, 13]
    assert parse_citations("no citation here (1) or 1]") == []


def test_the_prompt_puts_the_summary_first_and_asks_for_citations() -> None:
    from memflow.components.decoders.prompting import ContextItem
    from memflow.types import Citation

    cite = Citation("/a.txt", "A", 1, 0, 0, 5)
    items = [
        ContextItem(1, "Summary sentence.", cite, "summary", 0.1, in_summary=True),
        ContextItem(2, "Evidence sentence.", cite, "retrieved", 0.9),
    ]
    user = render("What is it about?", items, mode="document", title="A")[1]["content"]
    assert user.index("Summary of A:\n[1] Summary sentence.") < user.index("Evidence:\n[2] Evidence sentence.")
    assert user.rstrip().endswith("cite the numbers you use, like [1].")
    assert "about the document as a whole" in user


def test_the_example_llm_pipeline_is_valid() -> None:
    pipeline = Pipeline.from_yaml(REPO / "pipelines" / "ask-llm.yaml")
    assert pipeline.spec.components[-1].type == "decoders.llama_cpp"
    assert pipeline.component("decode").params()["model"] == "smollm2"


def test_every_benchmark_fact_is_in_its_essay(pg_essays: Path) -> None:
    rows = [json.loads(line) for line in (REPO / "tests" / "data" / "pg_questions.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and len({r["id"] for r in rows}) == 20
    for row in rows:
        text = " ".join((pg_essays / row["essay"]).read_text(encoding="utf-8").lower().split())
        assert row["question"].endswith("?")
        assert any(" ".join(f.lower().split()) in text for f in [row["fact"], *row.get("also", [])]), row["id"]


def test_stream_with_the_builtin_decoder_prints_its_answer_once(essay_memory: Memory) -> None:
    question = "What could the government do to increase the number of startups at no cost?"
    store = str(essay_memory.store.directory)
    streamed = CliRunner().invoke(cli, ["ask", question, "--stream", "--store", store])
    plain = CliRunner().invoke(cli, ["ask", question, "--store", store])
    assert streamed.exit_code == plain.exit_code == 0, streamed.output
    assert streamed.output == plain.output and "establish a new class of visa" in plain.output
