"""End to end through memflow.Memory: the real loaders, chunker, MiniLM encoder, SQLite and FAISS."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memflow import Answer, MemflowError, Memory, StoreError
from memflow.answering import decoder_inputs, question_inputs, ranking_output
from memflow.components.base import RunContext

# Each answer sentence was picked by reading the essay; the question paraphrases it. Each one's attention weight
# is far above the runner-up's, so a different machine's last-bit float differences cannot flip the order.
QUESTIONS = [
    (
        "What could the government do to increase the number of startups at no cost?",
        "foundervisa.txt",
        "establish a new class of visa for startup founders",
    ),
    (
        "Should you worry about repeating yourself when you write about general ideas?",
        "sun.txt",
        "the more general the ideas you're talking about, the less you should worry about repeating yourself",
    ),
    (
        "Are venture capital firms biased against female founders?",
        "bias.txt",
        "many suspect that venture capital firms are biased against female founders",
    ),
    (
        "Is it worth reading important books more than once?",
        "know.txt",
        "it is very much worth reading important books multiple times",
    ),
    (
        "When people say all programming languages are basically equivalent, what are they really making a statement "
        "about?",
        "weird.txt",
        "they're making a statement not about languages but about the kind of programming they've done",
    ),
]


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("question", "essay", "expected"), QUESTIONS)
def test_picked_answer_sentence_is_cited_at_rank_one(
    essay_memory: Memory, question: str, essay: str, expected: str
) -> None:
    answer = essay_memory.ask(question)
    top = answer.evidence[0]
    assert expected in _flat(top.text), f"top evidence was: {top.text!r}"
    assert top.citation.document.endswith("/" + essay)
    assert top.citation in answer.citations
    assert expected in answer.text


def test_citations_point_at_exact_spans_of_the_source(essay_memory: Memory, pg_essays: Path) -> None:
    answer = essay_memory.ask("What could the government do to increase the number of startups?")
    assert answer.citations
    for citation in answer.citations + [e.citation for e in answer.evidence]:
        text = Path(citation.document).read_text(encoding="utf-8")
        evidence = next(e for e in answer.evidence if e.citation == citation)
        assert text[citation.start : citation.end] == evidence.text
        hit_chunk = essay_memory.store.chunks([citation.chunk_id])[0]
        assert hit_chunk.start <= citation.start and citation.end <= hit_chunk.end or evidence.origin == "summary"


def test_attention_is_a_distribution_per_hop(essay_memory: Memory) -> None:
    answer = essay_memory.ask("What is your mind like?")
    assert len(answer.attention) == 2
    for hop in answer.attention:
        assert len(hop) == len(answer.evidence)
        assert sum(hop) == pytest.approx(1.0, abs=1e-4)
    weights = [e.weight for e in answer.evidence]
    assert weights == sorted(weights, reverse=True)
    assert {e.origin for e in answer.evidence} == {"retrieved", "summary"}


def test_ask_is_deterministic(essay_memory: Memory) -> None:
    first = essay_memory.ask("Which insights are the most valuable?")
    second = essay_memory.ask("Which insights are the most valuable?")
    assert isinstance(first, Answer)
    assert first.text == second.text and first.attention == second.attention


def test_search_returns_ranked_hits(essay_memory: Memory) -> None:
    hits = essay_memory.search("startup founders visa", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0].document.endswith("foundervisa.txt")
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


SEARCH_AND_ASK = [q for q, _, _ in QUESTIONS] + ["What is your mind like?", "Which insights are the most valuable?"]


@pytest.mark.parametrize("question", SEARCH_AND_ASK)
def test_search_returns_the_hits_ask_attends_to(essay_memory: Memory, question: str) -> None:
    hits = essay_memory.search(question, k=10)
    fed = decoder_inputs(
        essay_memory.ask_pipeline(),
        question_inputs(essay_memory.ask_pipeline(), question),
        RunContext(store=essay_memory.store),
    )[1]["hits"]
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in fed]
    answer = essay_memory.ask(question)
    first_cited = next(
        c for c in answer.citations if any(e.citation == c and e.origin == "retrieved" for e in answer.evidence)
    )
    assert first_cited.chunk_id in [h.chunk_id for h in hits[:5]]


def test_search_k_cuts_the_same_reranked_ranking(essay_memory: Memory) -> None:
    question = "Are venture capital firms biased against female founders?"
    ten = essay_memory.search(question, k=10)
    three = essay_memory.search(question, k=3)
    assert [h.chunk_id for h in three] == [h.chunk_id for h in ten[:3]]
    assert [h.rank for h in ten] == list(range(1, 11))


def test_the_default_pipeline_reranks_hybrid_candidates(essay_memory: Memory) -> None:
    pipeline = essay_memory.ask_pipeline()
    assert ranking_output(pipeline) == "rerank.hits"
    assert type(pipeline.component("retrieve")).__name__ == "HybridRetriever"
    assert pipeline.component("retrieve").params()["dedupe"] is True


def test_a_shipped_pipeline_by_name(tmp_path: Path, essay_memory: Memory) -> None:
    with Memory(essay_memory.store.directory, ask_pipeline="dense") as dense:
        assert ranking_output(dense.ask_pipeline()) == "retrieve.hits"
        hits = dense.search("startup founders visa", k=3)
        assert hits[0].document.endswith("foundervisa.txt")
    with pytest.raises(MemflowError, match="unknown ask pipeline 'nosuch'; shipped: default, .*dense"):
        Memory(tmp_path, ask_pipeline="nosuch").ask_pipeline()


def test_one_call_runs_another_pipeline(essay_memory: Memory) -> None:
    hits = essay_memory.search("startup founders visa", k=3, pipeline="dense")
    assert hits[0].document.endswith("foundervisa.txt")
    assert [set(h.scores) for h in hits] == [{"dense"}] * 3
    assert "reranked" in essay_memory.search("startup founders visa", k=3)[0].scores  # its own is unchanged
    answer = essay_memory.ask("What visa should founders get?", pipeline="dense")
    assert answer.citations[0].document.endswith("foundervisa.txt")
    with pytest.raises(MemflowError, match="unknown ask pipeline 'nosuch'"):
        essay_memory.search("x", pipeline="nosuch")


def test_ingesting_again_changes_nothing(essay_memory: Memory, essay_paths: list[Path]) -> None:
    before = essay_memory.stats()
    report = essay_memory.ingest([str(p) for p in essay_paths])
    after = essay_memory.stats()
    assert report.ingested == [] and len(report.unchanged) == len(essay_paths)
    assert (before.documents, before.chunks, before.vectors) == (after.documents, after.chunks, after.vectors)


def test_changed_file_replaces_its_chunks_vectors_and_summary(tmp_path: Path, pg_essays: Path) -> None:
    essay = tmp_path / "sun.txt"
    shutil.copy(pg_essays / "sun.txt", essay)
    with Memory(tmp_path / "store") as memory:
        memory.ingest([str(essay)])
        first = memory.stats()
        essay.write_text("Sandwiches are best eaten in Dolores Park on a sunny day.\n", encoding="utf-8")
        report = memory.ingest([str(essay)])
        second = memory.stats()
        assert len(report.ingested) == 1
        assert second.documents == 1 and second.chunks == second.vectors == 1 < first.chunks
        assert memory.summary("sun.txt").slots[0].text.startswith("Sandwiches")
        assert "Dolores Park" in memory.ask("Where should I eat a sandwich?").text


def test_summary_by_file_name_and_forget(tmp_path: Path, pg_essays: Path) -> None:
    with Memory(tmp_path / "store") as memory:
        memory.ingest([str(pg_essays / "sun.txt"), str(pg_essays / "nft.txt")])
        state = memory.summary("sun.txt")
        assert 0 < len(state.slots) <= state.capacity == 8
        assert memory.forget(["sun.txt"]) == 1
        assert memory.stats().documents == 1
        with pytest.raises(MemflowError, match="no document"):
            memory.summary("sun.txt")


def test_asking_an_empty_store_is_a_clear_error(tmp_path: Path) -> None:
    with Memory(tmp_path / "empty") as memory, pytest.raises(StoreError, match="ingest something first"):
        memory.ask("anything?")


def test_bad_inputs_are_reported_and_the_rest_ingested(tmp_path: Path, pg_essays: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(pg_essays / "nft.txt", corpus / "nft.txt")
    (corpus / "blob.txt").write_bytes(bytes(range(256)) * 10)
    (corpus / "empty.md").write_text("", encoding="utf-8")
    with Memory(tmp_path / "store") as memory:
        report = memory.ingest([str(corpus), str(tmp_path / "missing.txt")])
        assert [Path(u).name for u in report.ingested] == ["nft.txt"]
        failed = {Path(p.source).name for p in report.problems}
        assert {"blob.txt", "empty.md", "missing.txt"} <= failed


def test_a_mixed_corpus_of_every_format(tmp_path: Path, shared_data: Path, pg_essays: Path) -> None:
    corpus = tmp_path / "mixed"
    (corpus / "notes").mkdir(parents=True)
    shutil.copy(pg_essays / "foundervisa.txt", corpus / "foundervisa.txt")
    (corpus / "notes" / "garden.md").write_text(
        "# Garden notes\n\nTomatoes need **full sun** and deep watering.\n\n"
        "## Pests\n\nAphids are controlled by [ladybugs](https://example.org) released in spring.\n",
        encoding="utf-8",
    )
    (corpus / "page.html").write_text(
        "<html><head><title>Trains</title><style>p {color: red}</style></head><body>"
        "<h1>Night trains</h1><p>The night train from Vienna to Rome leaves at 19:00.</p>"
        "<script>var hidden = 'never indexed';</script></body></html>",
        encoding="utf-8",
    )
    with (shared_data / "scifact" / "corpus.jsonl").open(encoding="utf-8") as source:
        lines = [next(source) for _ in range(20)]
    (corpus / "scifact.jsonl").write_text("".join(lines), encoding="utf-8")
    with Memory(tmp_path / "store") as memory:
        report = memory.ingest([str(corpus)])
        assert report.failed == [] and len(report.ingested) == 3 + 20
        pests = memory.search("How are aphids controlled?", k=1)[0]
        assert pests.document.endswith("garden.md") and pests.section == "Garden notes"  # where the chunk starts
        garden = memory.store.find_document("garden.md")
        assert garden is not None
        assert [s.title for s in memory.store.document_sections(garden.id)] == ["Garden notes", "Pests"]
        assert "[ladybugs]" not in pests.text and "ladybugs" in pests.text
        trains = memory.ask("When does the night train to Rome leave?")
        assert "19:00" in trains.text and trains.citations[0].document.endswith("page.html")
        assert all("never indexed" not in h.text for h in memory.search("hidden variable", k=25))
        rna = memory.search("BC1 RNA master gene for ID element amplification", k=1)[0]
        assert rna.document.endswith("scifact.jsonl#7912")


def test_the_library_writes_nothing_to_stderr(tmp_path: Path, pg_essays: Path) -> None:
    # An application embedding memflow owns its terminal: no model-loading bars, no progress, no notices.
    program = (
        "import sys, memflow\n"
        f"with memflow.Memory({str(tmp_path / 'store')!r}) as m:\n"
        f"    m.ingest([{str(pg_essays / 'foundervisa.txt')!r}])\n"
        "    assert m.search('startup visa', k=3)\n"
        "    print(m.ask('What could the government do to increase the number of startups?').text)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "visa" in done.stdout
    assert done.stderr == ""
