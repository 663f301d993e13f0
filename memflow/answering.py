"""Answering from an ask pipeline: which component answers, running to it, and streaming its answer.

An ask pipeline's *answering component* (its decoder) is the one component with an :class:`Answer` output.
Everything else here is built on finding it once: swapping the decoder, running the pipeline up to it (what
``search`` returns is what the decoder would attend to), and streaming. A decoder that can stream implements
:class:`StreamingDecoder`; one that cannot (the built-in attention decoder) answers at once and its whole text
is the stream's one piece.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any, Protocol, runtime_checkable

import networkx as nx

from memflow.components.base import Component, RunContext
from memflow.errors import MemflowError, PipelineError
from memflow.pipeline import Pipeline
from memflow.types import Answer

__all__ = [
    "StreamingDecoder",
    "answering_component",
    "ranking_output",
    "question_inputs",
    "decoder_inputs",
    "stream_answer",
    "drain",
    "answer_of",
]


@runtime_checkable
class StreamingDecoder(Protocol):
    """A decoder that yields its answer's text as it is generated; the generator returns the Answer."""

    def stream(self, **inputs: Any) -> Generator[str, None, Answer]: ...


def _answering_components(pipeline: Pipeline) -> list[str]:
    return [
        name
        for name, component in pipeline.components.items()
        if any(socket.type is Answer for socket in component.outputs.values())
    ]


def answering_component(pipeline: Pipeline) -> str:
    """The name of the pipeline's one component with an Answer output; PipelineError when there is not one."""
    names = _answering_components(pipeline)
    if len(names) != 1:
        raise PipelineError(
            f"an ask pipeline needs exactly one component with an Answer output (its decoder), not {len(names)}",
            file=pipeline.source,
        )
    return names[0]


def ranking_output(pipeline: Pipeline) -> str:
    """The output (``component.socket``) that holds the pipeline's final ranking: what feeds the decoder's
    ``hits`` input (after any reranking), else the ``hits`` output of the one component no one consumes hits
    from (a pipeline without a decoder)."""
    answers = _answering_components(pipeline)
    if len(answers) == 1:
        for connection in pipeline.connections:
            if connection.target == answers[0] and connection.input == "hits":
                return f"{connection.source}.{connection.output}"
    consumed = {c.source for c in pipeline.connections if c.output == "hits"}
    final = [n for n, c in pipeline.components.items() if "hits" in c.outputs and n not in consumed]
    if len(final) == 1:
        return f"{final[0]}.hits"
    raise PipelineError("cannot tell which component's hits are the final ranking", file=pipeline.source)


def question_inputs(pipeline: Pipeline, query: str, *, k: int | None = None) -> dict[str, Any]:
    """The run data for ``query``, with ``k`` as the number of hits in the final ranking.

    ``k`` goes to the ranking component (a reranker's or a retriever's ``k`` input), and each component before
    it that takes a ``k`` is asked for at least ``k`` hits: a first stage keeps its own, deeper candidate
    count, so a reranker sees the same candidates whatever ``k`` a caller asks for.
    """
    data: dict[str, Any] = {"query": query}
    if k is None:
        return data
    final = ranking_output(pipeline).partition(".")[0]
    upstream = nx.ancestors(pipeline.graph, final)
    for name, component in pipeline.components.items():
        if "k" not in component.inputs or (name != final and name not in upstream):
            continue
        own = getattr(component, "k", None)
        wanted = k if name == final or not isinstance(own, int) else max(own, k)
        data[name] = {"k": wanted}
    return data


def answer_of(results: Mapping[str, Mapping[str, Any]], pipeline: Pipeline) -> Answer:
    """The Answer in a pipeline run's results."""
    found = results.get(answering_component(pipeline), {})
    for value in found.values():
        if isinstance(value, Answer):
            return value
    raise PipelineError("the ask pipeline produced no Answer", file=pipeline.source)


def decoder_inputs(
    pipeline: Pipeline, data: Mapping[str, Any], context: RunContext
) -> tuple[Component, dict[str, Any]]:
    """Run the pipeline up to its decoder: (the decoder, bound to ``context``, and the inputs it would get)."""
    name = answering_component(pipeline)
    fed = {c.input: (c.source, c.output) for c in pipeline.connections if c.target == name}
    results = pipeline.run(dict(data), context=context, outputs=[f"{s}.{o}" for s, o in fed.values()])
    decoder = pipeline.component(name)
    decoder.bind(context)
    inputs = {socket: results[source][output] for socket, (source, output) in fed.items()}
    if "query" not in inputs and "query" in decoder.inputs:
        inputs["query"] = data["query"]
    return decoder, inputs


def stream_answer(pipeline: Pipeline, data: Mapping[str, Any], context: RunContext) -> Generator[str, None, Answer]:
    """Run the ask pipeline and yield its answer as it is written; the generator returns the Answer."""
    if not str(data.get("query", "")).strip():
        raise MemflowError("the question is empty")
    decoder, inputs = decoder_inputs(pipeline, data, context)
    if isinstance(decoder, StreamingDecoder):
        streamed = yield from decoder.stream(**inputs)
        return streamed
    produced = decoder.run(**inputs)
    answer = next((v for v in produced.values() if isinstance(v, Answer)), None)
    if answer is None:
        raise PipelineError("the ask pipeline produced no Answer", file=pipeline.source)
    if answer.text:
        yield answer.text
    return answer


def drain(stream: Generator[str, None, Answer], on_piece: Callable[[str], Any] | None = None) -> Answer:
    """Run a stream to its end, passing each piece to ``on_piece``; returns the Answer."""
    while True:
        try:
            piece = next(stream)
        except StopIteration as stop:
            answer: Answer = stop.value
            return answer
        if on_piece is not None:
            on_piece(piece)
