"""Small typed components for the pipeline tests (memflow's own components are tested elsewhere).

Pipelines name them by trusted dotted path, ``tests.pipeline.helpers:Numbers``, with
``trusted_modules=TRUSTED``. This module uses ``from __future__ import annotations`` on purpose: the
parameter checks must resolve string annotations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from memflow.components.base import Component, RunContext, Socket
from memflow.pipeline import Pipeline

TRUSTED = ("tests.pipeline",)
P = "tests.pipeline.helpers:"


def build(text: str, **kwargs: Any) -> Pipeline:
    """A pipeline from YAML text that may name these components by their dotted path."""
    kwargs.setdefault("trusted_modules", TRUSTED)
    return Pipeline.from_string(text, source="test.yaml", **kwargs)


class Counted(Component):
    """Counts its runs, so tests can tell which components a partial run executed."""

    calls = 0

    def count(self) -> None:
        self.calls += 1


class Numbers(Counted):
    inputs = {"count": Socket(int)}
    outputs = {"numbers": Socket(list[int])}

    def __init__(self, *, start: int = 0) -> None:
        self.start = start

    def run(self, **inputs: Any) -> dict[str, Any]:
        self.count()
        count = inputs["count"]
        return {"numbers": list(range(self.start, self.start + count))}


class Double(Counted):
    inputs = {"numbers": Socket(list[int])}
    outputs = {"numbers": Socket(list[int])}

    def __init__(self, *, factor: int = 2) -> None:
        self.factor = factor

    def run(self, **inputs: Any) -> dict[str, Any]:
        self.count()
        return {"numbers": [n * self.factor for n in inputs["numbers"]]}


class Sum(Counted):
    inputs = {"numbers": Socket(list[int]), "offset": Socket(float, optional=True, default=0.5)}
    outputs = {"total": Socket(float)}

    def run(self, **inputs: Any) -> dict[str, Any]:
        self.count()
        return {"total": sum(inputs["numbers"]) + inputs["offset"]}


class Merge(Counted):
    inputs = {"left": Socket(list[int]), "right": Socket(list[int])}
    outputs = {"numbers": Socket(list[int]), "size": Socket(int)}

    def run(self, **inputs: Any) -> dict[str, Any]:
        self.count()
        merged = inputs["left"] + inputs["right"]
        return {"numbers": merged, "size": len(merged)}


class Words(Counted):
    inputs = {"text": Socket(str, optional=True, default="a b")}
    outputs = {"words": Socket(list[str])}

    def run(self, **inputs: Any) -> dict[str, Any]:
        self.count()
        return {"words": inputs["text"].split()}


class Echo(Counted):
    """Takes and gives Any: connectable to and from every socket type."""

    inputs = {"value": Socket(Any)}
    outputs = {"value": Socket(Any)}

    def run(self, **inputs: Any) -> dict[str, Any]:
        self.count()
        return {"value": inputs["value"]}


class MaybeNumbers(Counted):
    """A union input: ``list[int] | None``."""

    inputs = {"numbers": Socket(list[int] | None, optional=True)}
    outputs = {"size": Socket(int)}

    def run(self, **inputs: Any) -> dict[str, Any]:
        self.count()
        return {"size": len(inputs["numbers"] or [])}


class Settings(Component):
    """Only parameters: required, defaulted, Literal, float, tuple, Path, and a range check."""

    outputs = {"settings": Socket(dict[str, Any])}

    def __init__(
        self,
        *,
        size: int,
        ratio: float = 0.5,
        mode: Literal["fast", "slow"] = "fast",
        tags: tuple[str, ...] = (),
        root: Path | None = None,
        enabled: bool = True,
    ) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError(f"ratio must be between 0 and 1, got {ratio}")
        self.size, self.ratio, self.mode = size, ratio, mode
        self.tags, self.root, self.enabled = tags, root, enabled

    def run(self, **inputs: Any) -> dict[str, Any]:
        return {"settings": self.params()}


class Broken(Component):
    """Declares an output it never returns."""

    inputs = {"numbers": Socket(list[int])}
    outputs = {"total": Socket(float), "count": Socket(int)}

    def run(self, **inputs: Any) -> dict[str, Any]:
        return {"total": 1.0}


class Contextual(Component):
    """Reports what it was bound to."""

    outputs = {"context": Socket(RunContext)}

    def run(self, **inputs: Any) -> dict[str, Any]:
        self.context.report("contextual", "ran", kind="note")
        return {"context": self.context}


class NotAComponent:
    pass


# A chain used by several tests: numbers -> double -> total, plus an independent words branch.
CHAIN = f"""\
name: chain
description: numbers, doubled, summed
components:
  numbers: {{type: "{P}Numbers", params: {{start: 1}}}}
  double:
    type: "{P}Double"
    params:
      factor: 3
  total: {{type: "{P}Sum"}}
  words: {{type: "{P}Words"}}
connections:
  - numbers.numbers -> double.numbers
  - {{from: double.numbers, to: total.numbers}}
"""
