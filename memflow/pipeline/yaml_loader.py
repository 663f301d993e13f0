"""Reading pipeline YAML safely, with the line of every key, and checking the file's shape.

The text is only *composed* by PyYAML's safe loader (a node tree with marks); this module turns the
nodes into plain dicts, lists and scalars itself, so a tag such as ``!!python/object`` can never
construct anything: only the standard scalar, mapping and sequence tags are accepted. Along the way it
records the 1-based line of every mapping key and sequence item, so later checks (parameters, wiring)
can point at the exact line they are about.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from memflow.errors import PipelineError

__all__ = [
    "KeyPath",
    "YamlDocument",
    "ComponentSpec",
    "ConnectionSpec",
    "PipelineSpec",
    "load_yaml",
    "parse_spec",
    "load_spec",
    "read_spec",
]

KeyPath = tuple[object, ...]
_Fail = Callable[..., PipelineError]

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("null", "bool", "int", "float", "str")}
# A value that merely looks like a date stays the text the author wrote: params are plain data.
_TIMESTAMP = _TAG + "timestamp"
# Aliases can make a tiny file expand exponentially ("billion laughs"); no real pipeline comes close.
_MAX_NODES = 100_000

TOP_LEVEL_KEYS = ("name", "description", "components", "connections")
COMPONENT_KEYS = ("type", "params")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_ENDPOINT = r"\s*([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*"
_CONNECTION = re.compile(_ENDPOINT + r"->" + _ENDPOINT + r"\Z")
_SINGLE_ENDPOINT = re.compile(_ENDPOINT + r"\Z")


@dataclass(frozen=True)
class YamlDocument:
    """Plain data from a YAML text, and the line of each key path (``("components", "chunk")`` etc.)."""

    data: Any
    lines: Mapping[KeyPath, int]
    source: str

    def line(self, *path: object) -> int | None:
        return _line_of(self.lines, path)


def _line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    # The nearest recorded ancestor is the best location for a key that is absent or not a key.
    for end in range(len(path), -1, -1):
        found = lines.get(path[:end])
        if found is not None:
            return found
    return None


class _Converter:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[KeyPath, int] = {}
        self.nodes = 0
        self.active: set[int] = set()
        # SafeLoader's constructor is used for scalars with a whitelisted tag only.
        self.scalars = yaml.SafeLoader("")

    def error(self, message: str, node: Node) -> PipelineError:
        return PipelineError(message, file=self.source, line=node.start_mark.line + 1)

    def convert(self, node: Node, path: KeyPath) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise self.error(f"the YAML expands to more than {_MAX_NODES} values (alias bomb?)", node)
        if id(node) in self.active:
            raise self.error("a YAML alias refers to the node that contains it", node)
        self.active.add(id(node))
        try:
            if isinstance(node, ScalarNode):
                return self.scalar(node)
            if isinstance(node, SequenceNode):
                return self.sequence(node, path)
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            raise self.error(f"unsupported YAML node {type(node).__name__}", node)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value
        if node.tag not in _SCALAR_TAGS:
            raise self.error(f"unsupported YAML tag {node.tag!r}: pipelines hold plain data only", node)
        try:
            return self.scalars.construct_object(node)
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:  # e.g. "!!int abc"
            raise self.error(f"invalid {node.tag.rpartition(':')[2]} value {node.value!r}", node) from exc

    def sequence(self, node: SequenceNode, path: KeyPath) -> list[Any]:
        if node.tag != _TAG + "seq":
            raise self.error(f"unsupported YAML tag {node.tag!r}: pipelines hold plain data only", node)
        items: list[Any] = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = item.start_mark.line + 1
            items.append(self.convert(item, (*path, index)))
        return items

    def mapping(self, node: MappingNode, path: KeyPath) -> dict[Any, Any]:
        if node.tag != _TAG + "map":
            raise self.error(f"unsupported YAML tag {node.tag!r}: pipelines hold plain data only", node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                raise self.error("YAML merge keys ('<<') are not supported in pipelines", key_node)
            if not isinstance(key_node, ScalarNode):
                raise self.error("a mapping key must be a plain scalar, not a list or mapping", key_node)
            key = self.scalar(key_node)
            line = key_node.start_mark.line + 1
            if key in result:
                first = self.lines.get((*path, key))
                raise self.error(f"duplicate key {key!r} (first defined on line {first})", key_node)
            self.lines[(*path, key)] = line
            result[key] = self.convert(value_node, (*path, key))
        return result


def _syntax_error(exc: yaml.YAMLError, text: str, source: str) -> PipelineError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line: int | None = mark.line + 1 if mark is not None else None
    position = getattr(exc, "position", None)  # a ReaderError has an offset instead of a mark
    if line is None and isinstance(position, int):
        line = text.count("\n", 0, position) + 1
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else str(problem)
    context_mark = getattr(exc, "context_mark", None)
    unclosed = isinstance(context, str) and context.startswith(("while parsing a flow", "while scanning a quoted"))
    if unclosed and context_mark is not None and line is not None and context_mark.line + 1 < line:
        # An unclosed bracket or quote is noticed lines later (often at the end of the file); the line to
        # fix is where it was opened.
        detail += f" (noticed on line {line})"
        line = context_mark.line + 1
    return PipelineError(f"invalid YAML: {detail}", file=source, line=line)


def load_yaml(text: str, *, source: str = "<string>") -> YamlDocument:
    """Parse one YAML document into plain data with line numbers; every failure is a PipelineError."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, source) from exc
    except RecursionError as exc:
        raise PipelineError("invalid YAML: nested too deeply", file=source) from exc
    if root is None:
        raise PipelineError("the pipeline file is empty", file=source, line=1)
    converter = _Converter(source)
    converter.lines[()] = root.start_mark.line + 1
    try:
        data = converter.convert(root, ())
    except yaml.YAMLError as exc:  # a scalar the safe constructor rejects, e.g. a malformed !!int
        raise _syntax_error(exc, text, source) from exc
    except RecursionError as exc:
        raise PipelineError("invalid YAML: nested too deeply", file=source) from exc
    return YamlDocument(data=data, lines=converter.lines, source=source)


@dataclass(frozen=True)
class ComponentSpec:
    """One entry of ``components:`` as written: its name, ``type:`` string, raw params and lines."""

    name: str
    type: str
    params: dict[str, Any]
    line: int | None = None
    type_line: int | None = None
    param_lines: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionSpec:
    """One entry of ``connections:``: ``source.output -> target.input``."""

    source: str
    output: str
    target: str
    input: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.source}.{self.output} -> {self.target}.{self.input}"


@dataclass(frozen=True)
class PipelineSpec:
    """A pipeline file whose shape is valid; its component types and wiring are not checked yet."""

    name: str
    description: str
    components: list[ComponentSpec]
    connections: list[ConnectionSpec]
    source: str


def _default_name(source: str) -> str:
    return Path(source).stem if not source.startswith("<") else "pipeline"


def parse_spec(data: Any, *, source: str = "<dict>", lines: Mapping[KeyPath, int] | None = None) -> PipelineSpec:
    """Check the shape of pipeline data (from YAML or a dict) and return it as a :class:`PipelineSpec`."""
    known = lines or {}

    def fail(message: str, *path: object) -> PipelineError:
        return PipelineError(message, file=source, line=_line_of(known, path))

    if not isinstance(data, Mapping):
        raise fail("a pipeline must be a mapping with 'components' (and usually 'connections')")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise fail(f"unknown top-level key {key!r}; allowed: {', '.join(TOP_LEVEL_KEYS)}", key)
    name = data.get("name", _default_name(source))
    if not isinstance(name, str) or not name.strip():
        raise fail("'name' must be a non-empty string", "name")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise fail("'description' must be a string", "description")
    if "components" not in data:
        raise fail("the pipeline has no 'components'")
    components = data["components"]
    if not isinstance(components, Mapping) or not components:
        raise fail("'components' must be a non-empty mapping of name to {type: ..., params: ...}", "components")
    specs = [_component(name_, entry, known, fail) for name_, entry in components.items()]
    raw_connections = data.get("connections")
    if raw_connections is None:
        raw_connections = []
    if not isinstance(raw_connections, list):
        raise fail("'connections' must be a list of 'component.output -> component.input'", "connections")
    connections = [
        _connection(item, _line_of(known, ("connections", index)), fail, index)
        for index, item in enumerate(raw_connections)
    ]
    return PipelineSpec(name.strip(), description.strip(), specs, connections, source)


def _component(name: object, entry: object, lines: Mapping[KeyPath, int], fail: _Fail) -> ComponentSpec:
    where = ("components", name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(f"invalid component name {name!r}: use letters, digits, '_' or '-' (no dots)", *where)
    if not isinstance(entry, Mapping):
        raise fail(f"component {name!r} must be a mapping like {{type: chunkers.sentences}}", *where)
    for key in entry:
        if key not in COMPONENT_KEYS:
            raise fail(f"component {name!r}: unknown key {key!r}; allowed: type, params", *where, key)
    type_name = entry.get("type")
    if not isinstance(type_name, str) or not type_name.strip():
        raise fail(f"component {name!r} needs a 'type' (a registered name such as loaders.auto)", *where, "type")
    params = entry.get("params")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise fail(f"component {name!r}: 'params' must be a mapping of name to value", *where, "params")
    for key in params:
        if not isinstance(key, str):
            raise fail(f"component {name!r}: parameter names must be strings, not {key!r}", *where, "params", key)
    param_lines = {key: line for key in params if (line := lines.get((*where, "params", key))) is not None}
    return ComponentSpec(
        name=name,
        type=type_name.strip(),
        params=dict(params),
        line=_line_of(lines, where),
        type_line=_line_of(lines, (*where, "type")),
        param_lines=param_lines,
    )


def _connection(item: object, line: int | None, fail: _Fail, index: int) -> ConnectionSpec:
    where = ("connections", index)
    form = "'component.output -> component.input' or {from: component.output, to: component.input}"
    if isinstance(item, str):
        match = _CONNECTION.match(item)
        if match is None:
            raise fail(f"invalid connection {item!r}: expected {form}", *where)
        source, output, target, input_ = match.groups()
        return ConnectionSpec(source, output, target, input_, line=line)
    if isinstance(item, Mapping):
        if set(item) != {"from", "to"}:
            raise fail(f"a connection mapping needs exactly 'from' and 'to'; expected {form}", *where)
        ends: list[str] = []
        for key in ("from", "to"):
            value = item[key]
            match = _SINGLE_ENDPOINT.match(value) if isinstance(value, str) else None
            if match is None:
                raise fail(f"invalid connection {key!r} {value!r}: expected component.socket", *where, key)
            ends.extend(match.groups())
        return ConnectionSpec(ends[0], ends[1], ends[2], ends[3], line=line)
    raise fail(f"invalid connection {item!r}: expected {form}", *where)


def load_spec(text: str, *, source: str = "<string>") -> PipelineSpec:
    """Parse YAML text and check its pipeline shape."""
    document = load_yaml(text, source=source)
    return parse_spec(document.data, source=source, lines=document.lines)


def read_spec(path: str | Path) -> PipelineSpec:
    """Read a pipeline file (UTF-8) and check its shape."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"the pipeline file is not UTF-8 text: {exc.reason}", file=path) from exc
    except OSError as exc:
        raise PipelineError(f"cannot read the pipeline file: {exc.strerror or exc}", file=path) from exc
    return load_spec(text, source=str(path))
