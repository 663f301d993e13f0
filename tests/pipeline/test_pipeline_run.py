"""Running pipelines: supplying inputs, partial runs, the context, rendering, built-in pipeline paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import memflow
from memflow.components.base import RunContext
from memflow.errors import PipelineError
from memflow.pipeline import Pipeline, builtin_pipeline
from tests.pipeline.helpers import CHAIN, TRUSTED, Counted, P, build


def calls(pipe: Pipeline) -> dict[str, int]:
    return {name: c.calls for name, c in pipe.components.items() if isinstance(c, Counted)}


def test_run_nested_and_flat_inputs() -> None:
    pipe = build(CHAIN)
    expected = {"total": {"total": 18.5}, "words": {"words": ["a", "b"]}}  # (1+2+3)*3 + 0.5
    assert pipe.run({"numbers": {"count": 3}}) == expected
    assert pipe.run({"count": 3}) == expected
    assert pipe.run({"count": 3, "offset": 1, "words": {"text": "x y z"}}) == {
        "total": {"total": 19},
        "words": {"words": ["x", "y", "z"]},
    }
    assert calls(pipe) == {"numbers": 3, "double": 3, "total": 3, "words": 3}


def test_inputs_and_outputs() -> None:
    pipe = build(CHAIN)
    inputs = pipe.inputs()
    assert {c: list(s) for c, s in inputs.items()} == {
        "numbers": ["count"],
        "total": ["offset"],
        "words": ["text"],
    }
    assert not inputs["numbers"]["count"].optional and inputs["total"]["offset"].default == 0.5
    assert {c: list(s) for c, s in pipe.outputs().items()} == {"total": ["total"], "words": ["words"]}


def test_missing_input_is_reported_at_run_time_with_the_component_line() -> None:
    pipe = build(CHAIN)
    with pytest.raises(PipelineError) as info:
        pipe.run()
    assert (info.value.file, info.value.line) == ("test.yaml", 4)
    assert "missing input numbers.count (int)" in info.value.reason
    assert calls(pipe) == {"numbers": 0, "double": 0, "total": 0, "words": 0}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"cnt": 3},
            "unknown pipeline input 'cnt'; pipeline inputs: numbers.count, total.offset, words.text",
        ),
        ({"count": 3, "numbers": {"start": 1}}, "component 'numbers' has no input 'start'; inputs: count"),
        ({"count": 3, "double": {"numbers": [1]}}, "input double.numbers is connected to numbers.numbers"),
        ({"count": 3, "numbers": 5}, "data for component 'numbers' must be a mapping"),
        ({"count": 3, "numbers": {"count": 3}}, "input numbers.count is supplied twice"),
    ],
)
def test_bad_run_data(data: dict[str, object], fragment: str) -> None:
    pipe = build(CHAIN)
    with pytest.raises(PipelineError) as info:
        pipe.run(data)
    assert fragment in info.value.reason
    assert calls(pipe)["numbers"] == 0


def test_flat_input_for_a_connected_socket_says_so() -> None:
    text = CHAIN.replace("  words: ", "  other: {type: tests.pipeline.helpers:Sum}\n  words: ")
    pipe = build(text)
    with pytest.raises(PipelineError, match=r"input 'offset' is ambiguous \(total.offset, other.offset\)"):
        pipe.run({"count": 1, "offset": 2.0, "other": {"numbers": [1]}})
    out = pipe.run({"count": 1, "other": {"numbers": [1], "offset": 2.0}})
    assert out["other"] == {"total": 3.0}
    merge = build(
        f"components:\n  n: {{type: {P}Numbers}}\n  m: {{type: {P}Merge}}\nconnections: [n.numbers -> m.left]\n"
    )
    with pytest.raises(PipelineError, match=r"unknown pipeline input 'left' \(m.left is connected\)"):
        merge.run({"count": 1, "left": [1], "right": [2]})
    assert merge.run({"count": 1, "right": [2]}) == {"m": {"numbers": [0, 2], "size": 2}}


def test_partial_run_only_runs_ancestors() -> None:
    pipe = build(CHAIN)
    assert pipe.run({"count": 2}, outputs=["double.numbers"]) == {"double": {"numbers": [3, 6]}}
    assert calls(pipe) == {"numbers": 1, "double": 1, "total": 0, "words": 0}
    # an input of a component that does not run is not required
    assert pipe.run({"words": {"text": "q"}}, outputs=["words"]) == {"words": {"words": ["q"]}}
    assert calls(pipe) == {"numbers": 1, "double": 1, "total": 0, "words": 1}
    out = pipe.run({"count": 1}, outputs=["numbers.numbers", "total.total"])
    assert out == {"numbers": {"numbers": [1]}, "total": {"total": 3.5}}
    assert calls(pipe) == {"numbers": 2, "double": 2, "total": 1, "words": 1}
    with pytest.raises(PipelineError, match="component 'total' has no output 'sum'; outputs: total"):
        pipe.run({"count": 1}, outputs=["total.sum"])
    with pytest.raises(PipelineError, match="no component 'nope'"):
        pipe.run({"count": 1}, outputs=["nope.x"])


def test_given_outputs_stand_in_for_a_component_and_what_only_fed_it() -> None:
    pipe = build(CHAIN)
    # numbers does not run, so its required input 'count' is not needed
    out = pipe.run(given={"numbers": {"numbers": [5, 7]}})
    assert out == {"total": {"total": 36.5}, "words": {"words": ["a", "b"]}}
    assert calls(pipe) == {"numbers": 0, "double": 1, "total": 1, "words": 1}
    # a stand-in in the middle: numbers only fed double, so neither runs
    assert pipe.run(given={"double": {"numbers": [1]}}, outputs=["total"]) == {"total": {"total": 1.5}}
    assert calls(pipe) == {"numbers": 0, "double": 1, "total": 2, "words": 1}
    assert pipe.run(given={"double": {"numbers": [2]}}, outputs=["double"]) == {"double": {"numbers": [2]}}
    with pytest.raises(PipelineError, match="component 'numbers' has no output 'nums'; outputs: numbers"):
        pipe.run(given={"numbers": {"nums": [1]}})
    with pytest.raises(PipelineError, match="given outputs of 'numbers' lack numbers, which the pipeline reads"):
        pipe.run(given={"numbers": {}})
    with pytest.raises(PipelineError, match="no component 'nope'"):
        pipe.run(given={"nope": {}})


def test_context_is_bound_and_shared() -> None:
    pipe = build(f"components:\n  c: {{type: {P}Contextual}}\n")
    context = RunContext()
    out = pipe.run(context=context)
    assert out["c"]["context"] is context
    assert [p.reason for p in context.problems] == ["ran"]
    fresh = pipe.run()["c"]["context"]
    assert isinstance(fresh, RunContext) and fresh is not context


def test_component_must_return_every_output() -> None:
    text = f"""\
components:
  n: {{type: {P}Numbers}}
  b: {{type: {P}Broken}}
connections:
  - n.numbers -> b.numbers
"""
    with pytest.raises(PipelineError, match="component 'b' did not return output.s.: count") as info:
        build(text).run({"count": 1})
    assert info.value.line == 3


def test_component_exceptions_keep_their_type() -> None:
    pipe = build(CHAIN)
    with pytest.raises(TypeError) as info:
        pipe.run({"count": "three"})
    if sys.version_info >= (3, 11):
        assert "in component 'numbers'" in "\n".join(info.value.__notes__)


def test_show_mentions_components_and_connections() -> None:
    text = build(CHAIN).show()
    lines = text.splitlines()
    assert lines[0] == "pipeline 'chain' (test.yaml)"
    assert "numbers, doubled, summed" in text
    order = [line.split()[0] for line in lines[lines.index("components:") + 1 : lines.index("connections:")]]
    assert order == ["numbers", "double", "total", "words"]
    assert f"double   {P}Double  (factor=3)" in text
    assert "numbers.numbers -> double.numbers  (list[int])" in text
    assert "double.numbers -> total.numbers  (list[int])" in text
    assert "numbers.count  (int)" in text and "total.offset  (float)  optional" in text
    assert "total.total  (float)" in text


def test_to_dict_round_trips_and_repr() -> None:
    pipe = build(CHAIN)
    data = pipe.to_dict()
    assert data["components"]["double"] == {"type": f"{P}Double", "params": {"factor": 3}}
    assert data["components"]["total"] == {"type": f"{P}Sum"}
    again = Pipeline.from_dict(data, trusted_modules=TRUSTED)
    assert again.to_dict() == data
    assert again.run({"count": 3}) == pipe.run({"count": 3})
    assert repr(pipe) == "<Pipeline 'chain': 4 components, 2 connections, from test.yaml>"
    with pytest.raises(PipelineError, match="no component 'x' in pipeline 'chain'; components: numbers"):
        pipe.component("x")


def test_builtin_pipeline_prefers_the_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "memflow"
    (package / "_pipelines").mkdir(parents=True)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "ask.yaml").write_text("components: {}\n")
    (tmp_path / "pipelines" / "ingest.yaml").write_text("components: {}\n")
    (package / "_pipelines" / "ingest.yaml").write_text("components: {}\n")
    monkeypatch.setattr(memflow, "__file__", str(package / "__init__.py"))
    assert builtin_pipeline("ingest") == package / "_pipelines" / "ingest.yaml"
    assert builtin_pipeline("ask.yaml") == tmp_path / "pipelines" / "ask.yaml"
    with pytest.raises(PipelineError, match="no built-in pipeline 'other'"):
        builtin_pipeline("other")
    with pytest.raises(PipelineError, match="invalid built-in pipeline name"):
        builtin_pipeline("../pipelines/ask")
