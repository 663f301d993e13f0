"""Finding a pipeline's decoder, and streaming its answer through Memory.stream."""

from __future__ import annotations

import pytest

from memflow import Answer, Memory, Pipeline, PipelineError
from memflow.answering import answering_component, decoder_inputs
from memflow.components.base import RunContext
from memflow.pipeline import builtin_pipeline


def test_the_answering_component_is_the_one_with_an_answer_output() -> None:
    assert answering_component(Pipeline.from_yaml(builtin_pipeline("ask"))) == "decode"


def test_a_pipeline_without_a_decoder_is_refused_naming_its_file() -> None:
    ingest = Pipeline.from_yaml(builtin_pipeline("ingest"))
    with pytest.raises(
        PipelineError,
        match=r"ingest\.yaml: an ask pipeline needs exactly one component with an "
        r"Answer output \(its decoder\), not 0",
    ):
        answering_component(ingest)


def test_stream_yields_the_text_then_the_whole_answer_with_its_citations(essay_memory: Memory) -> None:
    question = "Is it worth reading important books more than once?"
    items = list(essay_memory.stream(question))
    assert isinstance(items[-1], Answer)
    pieces = items[:-1]
    assert pieces and all(isinstance(p, str) for p in pieces)
    streamed = items[-1]
    assert "".join(str(p) for p in pieces) == streamed.text
    assert streamed.citations and streamed.citations[0].document.endswith("/know.txt")
    asked = essay_memory.ask(question)
    assert (streamed.text, [c.chunk_id for c in streamed.citations]) == (
        asked.text,
        [c.chunk_id for c in asked.citations],
    )


def test_a_generative_stream_ends_with_a_cited_answer(essay_memory: Memory) -> None:
    pytest.importorskip("xllamacpp", reason="the llama.cpp decoder needs the llm extra")
    question = "Who made a list of the biggest regrets of the dying?"
    items = list(essay_memory.stream(question, decoder="llama_cpp"))
    answer = items[-1]
    assert isinstance(answer, Answer) and answer.generated
    pieces = [p for p in items[:-1] if isinstance(p, str)]
    assert len(pieces) > 3 and "".join(pieces).strip() == answer.text
    # cited by the model or, where it cites nothing, attributed to what its sentences repeat
    assert answer.citations and len(answer.labels) == len(answer.citations)
    assert all(c.document.endswith(".txt") and c.metadata["loader"] == "text" for c in answer.citations)


def test_stream_of_an_empty_question_fails_on_first_use(essay_memory: Memory) -> None:
    with pytest.raises(Exception, match="the question is empty"):
        next(iter(essay_memory.stream("   ")))


def test_decoder_inputs_are_what_the_decoder_would_attend_to(essay_memory: Memory) -> None:
    pipeline = essay_memory.ask_pipeline()
    decoder, inputs = decoder_inputs(
        pipeline, {"query": "Should founders get a visa?"}, RunContext(store=essay_memory.store)
    )
    assert decoder is pipeline.component("decode")
    assert {"query", "query_vector", "hits"} <= set(inputs) <= set(decoder.inputs)
    assert inputs["hits"] and inputs["hits"][0].document.endswith("/foundervisa.txt")
