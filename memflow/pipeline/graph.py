"""Building and checking a pipeline's component graph.

One node per component (attributes ``instance``, ``type``, ``cls``, ``line``, ``order``, ``spec``) and
one edge per connected pair of components; the edge attribute ``connections`` lists the socket-level
connections between that pair (a networkx DiGraph holds one edge per pair, and two components may be
joined by several sockets). Everything that can be known before running is checked here, each error
naming the YAML line of the component or connection at fault.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable
from typing import Any

import networkx as nx

from memflow.components.base import Component
from memflow.components.registry import resolve
from memflow.errors import PipelineError
from memflow.pipeline.params import instantiate, type_name
from memflow.pipeline.yaml_loader import ConnectionSpec, PipelineSpec

__all__ = ["build_graph", "types_match", "run_problems", "topological_order", "connections_of"]


def types_match(output: Any, input: Any) -> bool:
    """Whether an output socket of type ``output`` may feed an input socket of type ``input``.

    Types must be equal, ``Any`` on either side matches anything, and a union input (``X | None``)
    accepts any of its members.
    """
    if output is Any or input is Any or output == input:
        return True
    origin = typing.get_origin(input)
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(input)
        out_members = (
            typing.get_args(output) if typing.get_origin(output) in (typing.Union, types.UnionType) else (output,)
        )
        return all(any(types_match(o, m) for m in members) for o in out_members)
    return False


def _socket_list(sockets: Iterable[str]) -> str:
    names = list(sockets)
    return ", ".join(names) if names else "none"


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # e.g. arrays, whose == is elementwise
        return False


def run_problems(component: Component) -> list[str]:
    """Where ``component.run`` disagrees with its declared input sockets (empty when they agree).

    The pipeline calls ``run`` with every input socket as a keyword, an unconnected optional one set to
    its socket's default, so: each keyword parameter of ``run`` is an input socket; each input socket is a
    parameter (unless ``run`` takes ``**kwargs``); a parameter has a default exactly when its socket is
    optional, and then the same one. Types are not compared: ``run`` may accept more than its socket says.
    """
    parameters = inspect.signature(component.run).parameters.values()
    inputs = component.inputs
    problems: list[str] = []
    named: dict[str, inspect.Parameter] = {}
    takes_any = False
    for p in parameters:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            takes_any = True
        elif p.kind is inspect.Parameter.POSITIONAL_ONLY:
            problems.append(f"run() parameter {p.name!r} is positional-only, but inputs are passed by name")
        elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
            named[p.name] = p
    for name, p in named.items():
        socket = inputs.get(name)
        has_default = p.default is not inspect.Parameter.empty
        if socket is None:
            problems.append(f"run() takes {name!r}, which is not an input socket")
        elif socket.optional and not has_default:
            problems.append(f"input {name!r} is optional, but run() has no default for it")
        elif not socket.optional and has_default:
            problems.append(
                f"input {name!r} is required, but run() gives it a default ({p.default!r}); "
                "declare the socket optional with that default, or drop it"
            )
        elif socket.optional and not _same(socket.default, p.default):
            problems.append(f"input {name!r} defaults to {socket.default!r}, but run()'s default is {p.default!r}")
    if not takes_any:
        problems.extend(f"input {name!r} is not a parameter of run()" for name in inputs if name not in named)
    return problems


def _add_components(graph: nx.DiGraph, spec: PipelineSpec, trusted: list[str]) -> None:
    for order, component in enumerate(spec.components):
        line = component.type_line or component.line
        try:
            cls = resolve(component.type, trusted_modules=trusted)
        except PipelineError as exc:
            raise PipelineError(f"component {component.name!r}: {exc.reason}", file=spec.source, line=line) from exc
        instance = instantiate(
            cls,
            component.params,
            component=component.name,
            kind=component.type,
            source=spec.source,
            line=component.line,
            param_lines=component.param_lines,
        )
        problems = run_problems(instance)
        if problems:
            raise PipelineError(
                f"component {component.name!r} ({component.type}): run() does not match the input sockets "
                f"({_socket_list(instance.inputs)}): {'; '.join(problems)}",
                file=spec.source,
                line=component.line,
            )
        graph.add_node(
            component.name,
            instance=instance,
            cls=cls,
            type=component.type,
            line=component.line,
            order=order,
            spec=component,
        )


def _add_connection(graph: nx.DiGraph, conn: ConnectionSpec, fed: dict[tuple[str, str], ConnectionSpec]) -> None:
    source = graph.graph["source"]

    def fail(message: str) -> PipelineError:
        return PipelineError(f"connection {conn}: {message}", file=source, line=conn.line)

    for name in (conn.source, conn.target):
        if name not in graph:
            raise fail(f"unknown component {name!r}; components: {_socket_list(graph.nodes)}")
    if conn.source == conn.target:
        raise fail(f"component {conn.source!r} is connected to itself")
    producer: Component = graph.nodes[conn.source]["instance"]
    consumer: Component = graph.nodes[conn.target]["instance"]
    out = producer.outputs.get(conn.output)
    if out is None:
        raise fail(
            f"component {conn.source!r} has no output {conn.output!r}; outputs: {_socket_list(producer.outputs)}"
        )
    inp = consumer.inputs.get(conn.input)
    if inp is None:
        raise fail(f"component {conn.target!r} has no input {conn.input!r}; inputs: {_socket_list(consumer.inputs)}")
    if not types_match(out.type, inp.type):
        raise fail(
            f"type mismatch: {conn.source}.{conn.output} gives {type_name(out.type)}, "
            f"{conn.target}.{conn.input} takes {type_name(inp.type)}"
        )
    key = (conn.target, conn.input)
    first = fed.get(key)
    if first is not None:
        where = f" (line {first.line})" if first.line is not None else ""
        raise fail(f"input {conn.target}.{conn.input} is already fed by {first.source}.{first.output}{where}")
    fed[key] = conn
    if graph.has_edge(conn.source, conn.target):
        graph.edges[conn.source, conn.target]["connections"].append(conn)
    else:
        graph.add_edge(conn.source, conn.target, connections=[conn])


def _check_acyclic(graph: nx.DiGraph) -> None:
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([str(u) for u, _ in cycle] + [str(cycle[0][0])])
    conns = [c for u, v in cycle for c in graph.edges[u, v]["connections"]]
    # The connection written last is the one that closed the loop in the author's reading order.
    culprit = max(conns, key=lambda c: c.line or 0)
    raise PipelineError(
        f"the connections form a cycle: {path} (e.g. connection {culprit})",
        file=graph.graph["source"],
        line=culprit.line,
    )


def build_graph(spec: PipelineSpec, *, trusted_modules: Iterable[str] = ()) -> nx.DiGraph:
    """Resolve and build every component, wire the connections, and check the wiring."""
    graph = nx.DiGraph(name=spec.name, source=spec.source)
    _add_components(graph, spec, list(trusted_modules))
    fed: dict[tuple[str, str], ConnectionSpec] = {}
    for conn in spec.connections:
        _add_connection(graph, conn, fed)
    graph.graph["connections"] = list(spec.connections)
    _check_acyclic(graph)
    return graph


def topological_order(graph: nx.DiGraph) -> list[str]:
    """Components in an order that respects every connection, ties broken by YAML order."""
    return list(nx.lexicographical_topological_sort(graph, key=lambda n: graph.nodes[n]["order"]))


def connections_of(graph: nx.DiGraph) -> list[ConnectionSpec]:
    """Every socket-level connection, in YAML order."""
    return list(graph.graph["connections"])
