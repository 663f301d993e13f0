"""A component whose run() or params disagree with what it declares is refused when the pipeline is built."""

from __future__ import annotations

from typing import Any

import pytest

from memflow.components.base import Component, Socket
from memflow.errors import PipelineError
from memflow.pipeline import run_problems
from memflow.testing import check_component
from tests.pipeline.helpers import build

M = "tests.pipeline.test_pipeline_contract:"


class Agreeing(Component):
    inputs = {"numbers": Socket(list[int]), "offset": Socket(int, optional=True, default=0)}
    outputs = {"total": Socket(int)}

    def __init__(self, *, scale: int = 1) -> None:
        self.scale = scale

    def run(self, *, numbers: list[int], offset: int = 0) -> dict[str, Any]:
        return {"total": self.scale * sum(numbers) + offset}


class ExtraParameter(Agreeing):
    def run(self, *, numbers: list[int], offset: int = 0, limit: int = 5) -> dict[str, Any]:
        return {"total": 0}


class MissingParameter(Agreeing):
    def run(self, *, numbers: list[int]) -> dict[str, Any]:  # type: ignore[override]
        return {"total": 0}


class OptionalWithoutDefault(Agreeing):
    def run(self, *, numbers: list[int], offset: int) -> dict[str, Any]:  # type: ignore[override]
        return {"total": 0}


class RequiredWithDefault(Agreeing):
    def run(self, *, numbers: list[int] | None = None, offset: int = 0) -> dict[str, Any]:
        return {"total": 0}


class OtherDefault(Agreeing):
    def run(self, *, numbers: list[int], offset: int = 1) -> dict[str, Any]:
        return {"total": 0}


class PositionalOnly(Agreeing):
    def run(self, numbers: list[int], /, *, offset: int = 0) -> dict[str, Any]:  # type: ignore[override]
        return {"total": 0}


class AnyInputs(Agreeing):
    def run(self, **inputs: Any) -> dict[str, Any]:
        return {"total": sum(inputs["numbers"])}


class Unkept(Agreeing):
    """Keeps its parameter under another name without saying so."""

    def __init__(self, *, scale: int = 1) -> None:
        self._scale = scale


class Mapped(Agreeing):
    """Keeps its parameters elsewhere and says where; the token is never reported."""

    param_attributes = {"scale": "inner.scale"}
    secret_params = frozenset({"token"})

    def __init__(self, *, scale: int = 1, token: str = "", **extra: Any) -> None:
        self.inner = Agreeing(scale=scale)
        self.token = token
        self.extra = extra


def pipeline(kind: str, params: str = "") -> str:
    return f"""\
name: contract
components:
  sum:
    type: "{M}{kind}"
{params}"""


def error_for(kind: str) -> PipelineError:
    with pytest.raises(PipelineError) as info:
        build(pipeline(kind))
    assert info.value.file == "test.yaml"
    assert info.value.line == 3
    assert f"component 'sum' ({M}{kind}): run() does not match the input sockets (numbers, offset)" in info.value.reason
    return info.value


def test_an_agreeing_component_builds_and_runs() -> None:
    pipe = build(pipeline("Agreeing", "    params: {scale: 2}\n"))
    assert pipe.run({"numbers": [1, 2]}) == {"sum": {"total": 6}}
    assert pipe.component("sum").params() == {"scale": 2}


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("ExtraParameter", "run() takes 'limit', which is not an input socket"),
        ("MissingParameter", "input 'offset' is not a parameter of run()"),
        ("OptionalWithoutDefault", "input 'offset' is optional, but run() has no default for it"),
        ("RequiredWithDefault", "input 'numbers' is required, but run() gives it a default (None)"),
        ("OtherDefault", "input 'offset' defaults to 0, but run()'s default is 1"),
        ("PositionalOnly", "run() parameter 'numbers' is positional-only"),
    ],
)
def test_run_disagreeing_with_the_sockets_is_refused(kind: str, problem: str) -> None:
    assert problem in error_for(kind).reason


def test_run_taking_any_keywords_accepts_every_socket() -> None:
    assert run_problems(AnyInputs()) == []
    assert build(pipeline("AnyInputs")).run({"numbers": [1, 2]}) == {"sum": {"total": 3}}


def test_a_parameter_not_kept_on_the_instance_is_refused() -> None:
    with pytest.raises(PipelineError) as info:
        build(pipeline("Unkept", "    params: {scale: 2}\n"))
    assert info.value.line == 3
    assert "component 'sum' (" in info.value.reason
    assert "constructor parameter 'scale' is not kept as self.scale" in info.value.reason
    assert "Unkept.param_attributes" in info.value.reason


def test_mapped_secret_and_extra_params() -> None:
    pipe = build(pipeline("Mapped", "    params: {scale: 3, token: hidden, colour: red}\n"))
    assert pipe.component("sum").params() == {"scale": 3, "colour": "red"}
    assert "hidden" not in pipe.show()


def test_check_component_reports_both_contracts() -> None:
    assert check_component(Agreeing, inputs={"numbers": [1]}) == {"total": 1}
    with pytest.raises(AssertionError, match="run\\(\\) takes 'limit', which is not an input socket"):
        check_component(ExtraParameter)
    with pytest.raises(AssertionError, match="constructor parameter 'scale' is not kept as self.scale"):
        check_component(Unkept)
