"""Checking a component's YAML ``params`` against its constructor, then building the component.

A component declares its parameters as keyword-only constructor arguments with type annotations, so
the constructor signature *is* the parameter schema: unknown names, missing required ones and values
of the wrong type are reported, with their YAML line, before any component is built or run.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError

from memflow.components.base import Component
from memflow.errors import PipelineError

__all__ = ["Param", "describe_params", "validate_params", "instantiate", "type_name"]

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One constructor parameter: its annotation (``Any`` when unannotated) and default."""

    name: str
    annotation: Any
    required: bool
    default: Any = None


def type_name(annotation: Any) -> str:
    """A short readable name for an annotation: ``list[Chunk]`` rather than ``list[memflow.types.Chunk]``."""
    if annotation is Any:
        return "Any"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    text = annotation if isinstance(annotation, str) else repr(annotation)
    text = text.replace("typing.", "")
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


def _hints(init: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(init)
    except Exception:
        # An annotation that cannot be resolved at run time (e.g. a TYPE_CHECKING-only import) is a
        # component's own business; its parameters are then accepted unchecked rather than rejected.
        return {}


def describe_params(cls: type[Component]) -> tuple[dict[str, Param], bool]:
    """The parameters ``cls`` takes from YAML, and whether it also accepts arbitrary ``**kwargs``."""
    init = cls.__init__
    if init is object.__init__:
        return {}, False
    hints = _hints(init)
    params: dict[str, Param] = {}
    var_keyword = False
    for index, p in enumerate(inspect.signature(init).parameters.values()):
        if index == 0 or p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue  # ``self``, and ``*args`` which YAML cannot fill
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
            continue
        annotation = hints.get(p.name, Any)
        params[p.name] = Param(p.name, annotation, p.default is _EMPTY, None if p.default is _EMPTY else p.default)
    return params, var_keyword


@lru_cache(maxsize=256)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        try:
            return _cached_adapter(annotation)
        except TypeError:  # an unhashable annotation cannot be cached
            return TypeAdapter(annotation)
    except (PydanticSchemaGenerationError, TypeError, NameError):
        return None


def _check_value(annotation: Any, value: Any) -> tuple[Any, str | None]:
    """The validated value, or an error message. Strict: ``"5"`` is not an int, ``1.5`` is not an int."""
    if annotation is Any:
        return value, None
    adapter = _adapter(annotation)
    if adapter is None:
        if isinstance(annotation, type) and not isinstance(value, annotation):
            return value, f"an instance of {annotation.__name__}"
        return value, None
    try:
        return adapter.validate_python(value, strict=True), None
    except ValidationError as exc:
        first = exc.errors()[0]
    # YAML has no tuples or paths: strict JSON mode takes a list for tuple[...] and a string for a
    # Path, exactly as a config file means them, while still refusing "5" for an int.
    try:
        return adapter.validate_json(json.dumps(value), strict=True), None
    except ValidationError as exc:
        first = exc.errors()[0]  # the JSON reading is the one the author meant, so is its complaint
    except (TypeError, ValueError):
        pass  # not JSON data (a Python object from from_dict): the strict Python error stands
    location = ".".join(str(part) for part in first.get("loc", ()))
    return value, (f"at {location}: " if location else "") + str(first.get("msg", "invalid value"))


def validate_params(
    cls: type[Component],
    params: Mapping[str, Any],
    *,
    component: str = "<component>",
    kind: str | None = None,
    source: str | Path | None = None,
    line: int | None = None,
    param_lines: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Check ``params`` against ``cls.__init__`` and return the keyword arguments to build it with."""
    declared, var_keyword = describe_params(cls)
    label = f"component {component!r} ({kind or cls.__name__})"
    lines = param_lines or {}
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        where = lines.get(name, line)
        param = declared.get(name)
        if param is None:
            if var_keyword:
                kwargs[name] = value
                continue
            valid = ", ".join(declared) if declared else "none (it takes no parameters)"
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise PipelineError(
                f"{label}: unknown parameter {name!r}; {hint}valid parameters: {valid}",
                file=source,
                line=where,
            )
        checked, problem = _check_value(param.annotation, value)
        if problem is not None:
            raise PipelineError(
                f"{label}: parameter {name!r} expects {type_name(param.annotation)}, "
                f"got {value!r} ({type(value).__name__}): {problem}",
                file=source,
                line=where,
            )
        kwargs[name] = checked
    missing = [name for name, p in declared.items() if p.required and name not in kwargs]
    if missing:
        needed = ", ".join(f"{n} ({type_name(declared[n].annotation)})" for n in missing)
        raise PipelineError(f"{label}: missing required parameter(s): {needed}", file=source, line=line)
    return kwargs


def instantiate(
    cls: type[Component],
    params: Mapping[str, Any],
    *,
    component: str = "<component>",
    kind: str | None = None,
    source: str | Path | None = None,
    line: int | None = None,
    param_lines: Mapping[str, int] | None = None,
) -> Component:
    """Validate ``params`` and build the component; its own ValueError/TypeError become PipelineErrors."""
    kwargs = validate_params(
        cls, params, component=component, kind=kind, source=source, line=line, param_lines=param_lines
    )
    try:
        instance = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        # Range checks live in the constructor (e.g. overlap must be < 1); the author needs the line.
        raise PipelineError(f"component {component!r} ({kind or cls.__name__}): {exc}", file=source, line=line) from exc
    try:
        # params() reads every parameter back from the instance: one it does not keep where the rule says
        # is the component's mistake, better reported now, at its line, than by ``pipeline show``.
        instance.params()
    except AttributeError as exc:
        raise PipelineError(f"component {component!r} ({kind or cls.__name__}): {exc}", file=source, line=line) from exc
    return instance
