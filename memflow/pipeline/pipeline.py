"""A pipeline: components built from YAML, wired into a checked graph, run in dependency order.

Inputs that no connection feeds are the pipeline's own inputs (e.g. ``load.paths``, ``retrieve.k``):
the caller supplies them to :meth:`Pipeline.run`, nested by component or flat by socket name.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import networkx as nx

from memflow.components.base import Component, RunContext, Socket
from memflow.errors import PipelineError
from memflow.pipeline.graph import build_graph, connections_of, topological_order
from memflow.pipeline.params import type_name
from memflow.pipeline.yaml_loader import ConnectionSpec, PipelineSpec, load_spec, parse_spec, read_spec

__all__ = ["Pipeline"]

T = TypeVar("T")


class Pipeline:
    """A validated, runnable pipeline: build it with ``from_yaml``, ``from_string`` or ``from_dict``."""

    def __init__(self, spec: PipelineSpec, *, trusted_modules: Iterable[str] = ()) -> None:
        self.spec = spec
        self.name = spec.name
        self.description = spec.description
        self.source = spec.source
        self.graph: nx.DiGraph = build_graph(spec, trusted_modules=trusted_modules)
        self._order = topological_order(self.graph)
        self.components: dict[str, Component] = {n: self.graph.nodes[n]["instance"] for n in self._order}
        self.connections: list[ConnectionSpec] = connections_of(self.graph)
        self._fed = {(c.target, c.input): c for c in self.connections}

    @classmethod
    def from_yaml(cls, path: str | Path, *, trusted_modules: Iterable[str] = ()) -> Pipeline:
        return cls(read_spec(path), trusted_modules=trusted_modules)

    @classmethod
    def from_string(cls, text: str, *, source: str = "<string>", trusted_modules: Iterable[str] = ()) -> Pipeline:
        return cls(load_spec(text, source=source), trusted_modules=trusted_modules)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str = "<dict>", trusted_modules: Iterable[str] = ()
    ) -> Pipeline:
        return cls(parse_spec(data, source=source), trusted_modules=trusted_modules)

    # -- inspection -------------------------------------------------------------------------------

    def _line(self, component: str) -> int | None:
        line: int | None = self.graph.nodes[component]["line"]
        return line

    def component(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            known = ", ".join(self.components)
            raise PipelineError(
                f"no component {name!r} in pipeline {self.name!r}; components: {known}", file=self.source
            ) from None

    def find(self, cls: type[T]) -> list[tuple[str, T]]:
        """The components that are instances of ``cls`` (e.g. the encoder), in run order."""
        return [(name, c) for name, c in self.components.items() if isinstance(c, cls)]

    def inputs(self) -> dict[str, dict[str, Socket]]:
        """Unconnected input sockets per component: what a caller may (or, if required, must) supply."""
        found: dict[str, dict[str, Socket]] = {}
        for name, comp in self.components.items():
            free = {s: sock for s, sock in comp.inputs.items() if (name, s) not in self._fed}
            if free:
                found[name] = free
        return found

    def outputs(self) -> dict[str, dict[str, Socket]]:
        """Unconnected output sockets per component: what :meth:`run` returns by default."""
        used = {(c.source, c.output) for c in self.connections}
        found: dict[str, dict[str, Socket]] = {}
        for name, comp in self.components.items():
            free = {s: sock for s, sock in comp.outputs.items() if (name, s) not in used}
            if free:
                found[name] = free
        return found

    # -- running ----------------------------------------------------------------------------------

    def _error(self, message: str, component: str | None = None) -> PipelineError:
        return PipelineError(message, file=self.source, line=self._line(component) if component else None)

    def _supply(self, supplied: dict[tuple[str, str], Any], component: str, socket: str, value: Any) -> None:
        comp = self.components[component]
        if socket not in comp.inputs:
            inputs = ", ".join(comp.inputs) or "none"
            raise self._error(f"component {component!r} has no input {socket!r}; inputs: {inputs}", component)
        feeder = self._fed.get((component, socket))
        if feeder is not None:
            raise self._error(
                f"input {component}.{socket} is connected to {feeder.source}.{feeder.output}; "
                "only unconnected inputs can be supplied",
                component,
            )
        if (component, socket) in supplied:
            raise self._error(f"input {component}.{socket} is supplied twice", component)
        supplied[(component, socket)] = value

    def _collect(self, data: Mapping[str, Any] | None) -> dict[tuple[str, str], Any]:
        supplied: dict[tuple[str, str], Any] = {}
        free = self.inputs()
        for key, value in (data or {}).items():
            if key in self.components:
                if not isinstance(value, Mapping):
                    raise self._error(f"the data for component {key!r} must be a mapping of input name to value")
                for socket, item in value.items():
                    self._supply(supplied, key, socket, item)
                continue
            owners = [name for name, sockets in free.items() if key in sockets]
            if len(owners) == 1:
                self._supply(supplied, owners[0], key, value)
            elif owners:
                choices = ", ".join(f"{o}.{key}" for o in owners)
                raise self._error(f"input {key!r} is ambiguous ({choices}); pass it as {{component: {{{key!r}: ...}}}}")
            else:
                known = ", ".join(f"{c}.{s}" for c, socks in free.items() for s in socks) or "none"
                connected = [f"{t}.{s}" for t, s in self._fed if s == key]
                why = f" ({', '.join(connected)} is connected)" if connected else ""
                raise self._error(f"unknown pipeline input {key!r}{why}; pipeline inputs: {known}")
        return supplied

    def _wanted(self, outputs: Iterable[str]) -> dict[str, list[str]]:
        wanted: dict[str, list[str]] = {}
        for item in outputs:
            component, _, socket = item.partition(".")
            comp = self.components.get(component)
            if comp is None:
                raise self._error(f"unknown output {item!r}: no component {component!r}")
            names = [socket] if socket else list(comp.outputs)
            for name in names:
                if name not in comp.outputs:
                    known = ", ".join(comp.outputs) or "none"
                    raise self._error(f"component {component!r} has no output {name!r}; outputs: {known}", component)
                wanted.setdefault(component, []).append(name)
        return wanted

    def run(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        context: RunContext | None = None,
        outputs: Iterable[str] | None = None,
        given: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Run the pipeline (or, with ``outputs=["comp.socket"]``, only what those outputs need).

        ``data`` supplies unconnected inputs, nested (``{"load": {"paths": [...]}}``) or flat
        (``{"paths": [...]}``, when exactly one unconnected input has that name); a key that names a
        component is always read as nested. ``outputs`` items may also name a whole component.
        ``given`` stands in for components: ``{"load": {"documents": [...]}}`` runs the pipeline with those
        outputs in place of running ``load`` (which then needs no inputs), and skips what only ``load`` needed.
        Every component that runs is bound to ``context`` (a fresh :class:`RunContext` by default).
        Returns ``{component: {socket: value}}``: the requested outputs, or every unconnected output.
        """
        wanted = self._wanted(outputs) if outputs is not None else None
        stand_ins = self._stand_ins(given or {})
        # Past a stand-in nothing flows in, so what only fed it does not run.
        graph = self.graph
        if stand_ins:
            graph = self.graph.copy()
            graph.remove_edges_from(list(graph.in_edges(list(stand_ins))))
        if wanted is None:
            only_feeding = set().union(*(nx.ancestors(self.graph, c) for c in stand_ins)) - set(stand_ins)
            targets = set(self._order) - only_feeding
        else:
            targets = set(wanted)
        selected = targets.union(*(nx.ancestors(graph, c) for c in targets))
        supplied = self._collect(data)
        order = [name for name in self._order if name in selected and name not in stand_ins]
        for name in order:
            for socket, sock in self.components[name].inputs.items():
                if not sock.optional and (name, socket) not in self._fed and (name, socket) not in supplied:
                    raise self._error(
                        f"missing input {name}.{socket} ({type_name(sock.type)}): it is not connected, so "
                        f"run() must supply it, e.g. {{{name!r}: {{{socket!r}: ...}}}}",
                        name,
                    )
        ctx = context if context is not None else RunContext()
        for name in order:
            self.components[name].bind(ctx)
        results: dict[str, dict[str, Any]] = {name: outputs for name, outputs in stand_ins.items() if name in selected}
        for name in order:
            results[name] = self._run_one(name, results, supplied, ctx)
        if wanted is not None:
            return {c: {s: results[c][s] for s in sockets} for c, sockets in wanted.items()}
        return {c: {s: results[c][s] for s in socks} for c, socks in self.outputs().items() if c in results}

    def _stand_ins(self, given: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """``given`` checked: known components, each with every one of its outputs that something reads."""
        read = {(c.source, c.output) for c in self.connections}
        checked: dict[str, dict[str, Any]] = {}
        for name, values in given.items():
            comp = self.component(name)
            unknown = [s for s in values if s not in comp.outputs]
            if unknown:
                known = ", ".join(comp.outputs) or "none"
                raise self._error(f"component {name!r} has no output {unknown[0]!r}; outputs: {known}", name)
            missing = [s for s in comp.outputs if (name, s) in read and s not in values]
            if missing:
                raise self._error(
                    f"given outputs of {name!r} lack {', '.join(missing)}, which the pipeline reads", name
                )
            checked[name] = dict(values)
        return checked

    def _run_one(
        self,
        name: str,
        results: Mapping[str, Mapping[str, Any]],
        supplied: Mapping[tuple[str, str], Any],
        ctx: RunContext,
    ) -> dict[str, Any]:
        comp = self.components[name]
        kwargs: dict[str, Any] = {}
        for socket, sock in comp.inputs.items():
            feeder = self._fed.get((name, socket))
            if feeder is not None:
                kwargs[socket] = results[feeder.source][feeder.output]
            elif (name, socket) in supplied:
                kwargs[socket] = supplied[(name, socket)]
            else:
                kwargs[socket] = sock.default
        started = time.perf_counter()
        try:
            produced = comp.run(**kwargs)
        except Exception as exc:
            # Keep the component's own exception type (InputError, StoreError...) and add where it was.
            if sys.version_info >= (3, 11):
                exc.add_note(f"in component {name!r} ({self.graph.nodes[name]['type']}) of pipeline {self.name!r}")
            raise
        finally:
            ctx.seconds[name] = ctx.seconds.get(name, 0.0) + time.perf_counter() - started
        if not isinstance(produced, Mapping):
            raise self._error(f"component {name!r} returned {type(produced).__name__}, not a dict of its outputs", name)
        missing = [s for s in comp.outputs if s not in produced]
        if missing:
            raise self._error(f"component {name!r} did not return output(s): {', '.join(missing)}", name)
        return dict(produced)

    # -- rendering --------------------------------------------------------------------------------

    def show(self) -> str:
        """A readable rendering: components in run order with their type and params, then the wiring."""
        title = f"pipeline {self.name!r} ({self.source})"
        lines = [title] + ([f"  {self.description}"] if self.description else [])
        width = max(len(n) for n in self.components)
        lines.append("components:")
        for name, comp in self.components.items():
            params = ", ".join(f"{k}={v!r}" for k, v in comp.params().items())
            kind = self.graph.nodes[name]["type"]
            lines.append(f"  {name:<{width}}  {kind}" + (f"  ({params})" if params else ""))
        lines.append("connections:" if self.connections else "connections: none")
        for conn in self.connections:
            sock = self.components[conn.source].outputs[conn.output]
            lines.append(f"  {conn}  ({type_name(sock.type)})")
        for label, found in (("inputs", self.inputs()), ("outputs", self.outputs())):
            lines.append(f"{label}:" if found else f"{label}: none")
            for comp_name, sockets in found.items():
                for socket, s in sockets.items():
                    note = "  optional" if label == "inputs" and s.optional else ""
                    lines.append(f"  {comp_name}.{socket}  ({type_name(s.type)}){note}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The pipeline as plain data, in the YAML layout (``from_dict`` of it builds the same pipeline)."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        components: dict[str, Any] = {}
        for c in self.spec.components:
            components[c.name] = {"type": c.type, **({"params": dict(c.params)} if c.params else {})}
        data["components"] = components
        data["connections"] = [str(c) for c in self.connections]
        return data

    def __repr__(self) -> str:
        return (
            f"<Pipeline {self.name!r}: {len(self.components)} components, "
            f"{len(self.connections)} connections, from {self.source}>"
        )
