"""Resolving components and checking the wiring, each error with its YAML line."""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest

from memflow.errors import PipelineError
from memflow.pipeline import Pipeline, types_match
from tests.pipeline.helpers import CHAIN, Double, Echo, Numbers, P, Sum, build


def error_for(text: str) -> PipelineError:
    with pytest.raises(PipelineError) as info:
        build(text)
    assert info.value.file == "test.yaml"
    return info.value


def two(connections: str, a: str = "Numbers", b: str = "Double") -> str:
    return f"components:\n  a: {{type: {P}{a}}}\n  b: {{type: {P}{b}}}\nconnections:\n{connections}"


def test_graph_nodes_and_edges() -> None:
    pipe = build(CHAIN)
    graph = pipe.graph
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.nodes) == {"numbers", "double", "total", "words"}
    node = graph.nodes["double"]
    assert isinstance(node["instance"], Double)
    assert node["type"] == f"{P}Double"
    assert node["line"] == 5
    edge = graph.edges["double", "total"]
    [conn] = edge["connections"]
    assert (conn.output, conn.input, conn.line) == ("numbers", "numbers", 13)
    assert list(pipe.components) == ["numbers", "double", "total", "words"]
    assert [(n, type(c)) for n, c in pipe.find(Numbers)] == [("numbers", Numbers)]
    assert pipe.find(Sum)[0][1] is pipe.component("total")
    assert pipe.find(int) == []


def test_topological_order_breaks_ties_by_yaml_order() -> None:
    text = f"""\
components:
  tail: {{type: {P}Sum}}
  z: {{type: {P}Numbers}}
  mid: {{type: {P}Double}}
  a: {{type: {P}Words}}
connections:
  - mid.numbers -> tail.numbers
  - z.numbers -> mid.numbers
"""
    assert list(build(text).components) == ["z", "mid", "tail", "a"]


def test_unknown_component_type_points_at_its_line() -> None:
    err = error_for(f"name: x\ncomponents:\n  a: {{type: {P}Numbers}}\n  b: {{type: loaders.nonexistent}}\n")
    assert err.line == 4
    assert "component 'b'" in err.reason and "unknown component type 'loaders.nonexistent'" in err.reason
    err = error_for("components:\n  a:\n    params: {}\n    type: nothing.here\n")
    assert err.line == 4
    err = error_for(f"components:\n  a: {{type: {P}Missing}}\n")
    assert err.line == 2 and "cannot be imported" in err.reason
    err = error_for(f"components:\n  a: {{type: {P}NotAComponent}}\n")
    assert err.line == 2 and "not a memflow component" in err.reason


def test_dotted_paths_need_a_trusted_module() -> None:
    with pytest.raises(PipelineError, match="is not trusted") as info:
        build(CHAIN, trusted_modules=())
    assert info.value.line == 4
    with pytest.raises(PipelineError, match="is not trusted"):
        build(CHAIN, trusted_modules=["tests.pipe"])  # a prefix of a name is not its parent module
    assert build(CHAIN, trusted_modules=["tests"]).name == "chain"
    assert build(CHAIN.replace(":Numbers", ".Numbers"), trusted_modules=["tests.pipeline.helpers"]).name == "chain"


@pytest.mark.parametrize(
    ("connection", "fragment"),
    [
        ("a.numbers -> c.numbers", "unknown component 'c'; components: a, b"),
        ("c.numbers -> b.numbers", "unknown component 'c'"),
        ("a.nums -> b.numbers", "component 'a' has no output 'nums'; outputs: numbers"),
        ("a.numbers -> b.count", "component 'b' has no input 'count'; inputs: numbers"),
        ("b.numbers -> b.numbers", "connected to itself"),
    ],
)
def test_bad_connections(connection: str, fragment: str) -> None:
    err = error_for(two(f"  - {{from: a.numbers, to: b.numbers}}\n  - {connection}\n"))
    assert err.line == 6
    assert fragment in err.reason
    assert f"connection {connection}" in err.reason


def test_type_mismatch_reports_both_types() -> None:
    text = f"""\
components:
  w: {{type: {P}Words}}
  s: {{type: {P}Sum}}
connections:
  - w.words -> s.numbers
"""
    err = error_for(text)
    assert err.line == 5
    assert "type mismatch: w.words gives list[str], s.numbers takes list[int]" in err.reason


def test_any_and_union_sockets_match() -> None:
    text = f"""\
components:
  n: {{type: {P}Numbers}}
  e: {{type: {P}Echo}}
  m: {{type: {P}MaybeNumbers}}
  s: {{type: {P}Sum}}
connections:
  - n.numbers -> e.value
  - e.value -> s.numbers
  - n.numbers -> m.numbers
"""
    pipe = build(text)
    assert isinstance(pipe.component("e"), Echo)
    assert pipe.run({"count": 3}) == {"s": {"total": 3.5}, "m": {"size": 3}}
    assert types_match(Any, int) and types_match(int, Any)
    assert types_match(list[int], list[int] | None)
    assert types_match(int | None, None | int)
    assert not types_match(int | str, int | None)
    assert not types_match(list[int], list[str])
    assert not types_match(list[int] | None, list[int])


def test_one_input_fed_twice() -> None:
    text = f"""\
components:
  a: {{type: {P}Numbers}}
  b: {{type: {P}Numbers}}
  s: {{type: {P}Sum}}
connections:
  - a.numbers -> s.numbers
  - b.numbers -> s.numbers
"""
    err = error_for(text)
    assert err.line == 7
    assert "input s.numbers is already fed by a.numbers (line 6)" in err.reason


def test_cycle_reports_path_and_a_line() -> None:
    text = f"""\
components:
  a: {{type: {P}Merge}}
  b: {{type: {P}Double}}
  c: {{type: {P}Double}}
connections:
  - a.numbers -> b.numbers
  - b.numbers -> c.numbers
  - c.numbers -> a.left
"""
    err = error_for(text)
    assert err.line == 8
    assert "cycle" in err.reason
    path = err.reason.split("cycle: ")[1].split(" (")[0]
    nodes = path.split(" -> ")
    assert nodes[0] == nodes[-1] and sorted(nodes[:-1]) == ["a", "b", "c"]


def test_several_connections_between_one_pair() -> None:
    text = f"""\
components:
  n: {{type: {P}Numbers}}
  m: {{type: {P}Merge}}
connections:
  - n.numbers -> m.left
  - n.numbers -> m.right
"""
    pipe = build(text)
    assert [c.input for c in pipe.graph.edges["n", "m"]["connections"]] == ["left", "right"]
    assert len(pipe.connections) == 2
    assert pipe.run({"count": 2}) == {"m": {"numbers": [0, 1, 0, 1], "size": 4}}


def test_a_mistyped_component_type_gets_a_did_you_mean() -> None:
    text = "name: typo\ncomponents:\n  chunk: {type: chunkers.sentnces}\n"
    with pytest.raises(PipelineError) as info:
        Pipeline.from_string(text, source="typo.yaml")
    assert info.value.line == 3
    assert "unknown component type 'chunkers.sentnces'; did you mean 'chunkers.sentences'?" in str(info.value)
    far = "name: far\ncomponents:\n  x: {type: zzz.qqq}\n"
    with pytest.raises(PipelineError, match="not a registered name, and module 'zzz' is not trusted"):
        Pipeline.from_string(far, source="far.yaml")
