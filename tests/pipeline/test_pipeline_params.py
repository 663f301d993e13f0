"""Component params checked against constructor annotations, with the line of the offending param."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from memflow.components.base import Component, Socket
from memflow.errors import PipelineError
from memflow.pipeline import describe_params, instantiate, type_name, validate_params
from tests.pipeline.helpers import P, Settings, build


def settings(params: str) -> str:
    return f"""\
name: settings
components:
  first: {{type: "{P}Numbers"}}
  conf:
    type: "{P}Settings"
    params:
{params}
"""


def error_for(params: str) -> PipelineError:
    with pytest.raises(PipelineError) as info:
        build(settings(params))
    assert info.value.file == "test.yaml"
    return info.value


def test_valid_params_are_validated_and_recorded() -> None:
    pipe = build(settings("      size: 3\n      ratio: 1\n      mode: slow\n      tags: [a, b]\n      root: data"))
    conf = pipe.component("conf")
    assert isinstance(conf, Settings)
    assert conf.size == 3
    assert conf.ratio == 1.0 and isinstance(conf.ratio, float)  # an int is a fine float
    assert conf.mode == "slow"
    assert conf.tags == ("a", "b")  # YAML has no tuples: a list is what the author means
    assert conf.root == Path("data")
    assert conf.params() == {
        "size": 3,
        "ratio": 1.0,
        "mode": "slow",
        "tags": ("a", "b"),
        "root": Path("data"),
        "enabled": True,
    }


def test_unknown_param_lists_valid_ones() -> None:
    err = error_for("      size: 3\n      rato: 0.2")
    assert err.line == 8
    assert "unknown parameter 'rato'" in err.reason
    assert "did you mean 'ratio'?" in err.reason
    assert "valid parameters: size, ratio, mode, tags, root, enabled" in err.reason


def test_component_without_params_says_so() -> None:
    with pytest.raises(PipelineError, match=r"takes no parameters") as info:
        build(f"components:\n  s:\n    type: {P}Sum\n    params: {{x: 1}}\n")
    assert info.value.line == 4


@pytest.mark.parametrize(
    ("value", "expects"),
    [
        ('"5"', "expects int, got '5' (str)"),
        ("1.5", "expects int, got 1.5 (float)"),
        ("true", "expects int, got True (bool)"),
        ("[1]", "expects int, got [1] (list)"),
        ("null", "expects int, got None"),
    ],
)
def test_wrong_int(value: str, expects: str) -> None:
    err = error_for(f"      ratio: 0.5\n      size: {value}")
    assert err.line == 8
    assert "parameter 'size'" in err.reason
    assert expects in err.reason


def test_bad_literal_lists_allowed_values() -> None:
    err = error_for("      size: 1\n      mode: medium")
    assert err.line == 8
    assert "Literal['fast', 'slow']" in err.reason
    assert "'fast' or 'slow'" in err.reason


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("ratio: high", "expects float"),
        ("enabled: 1", "expects bool"),
        ("enabled: 'yes'", "expects bool"),
        ("tags: [a, 1]", "at 1:"),
        ("tags: a", "expects tuple[str, ...]"),
        ("root: 5", "expects Path | None"),
    ],
)
def test_other_wrong_types(param: str, fragment: str) -> None:
    err = error_for(f"      size: 1\n      {param}")
    assert err.line == 8
    assert fragment in err.reason


def test_missing_required_param_points_at_the_component() -> None:
    err = error_for("      ratio: 0.5")
    assert err.line == 4
    assert "missing required parameter(s): size (int)" in err.reason
    with pytest.raises(PipelineError, match="missing required") as info:
        build(f"components:\n  x: {{type: {P}Numbers}}\n  conf: {{type: {P}Settings}}\n")
    assert info.value.line == 3


def test_constructor_errors_point_at_the_component() -> None:
    err = error_for("      size: 1\n      ratio: 1.5")
    assert err.line == 4
    assert "component 'conf'" in err.reason
    assert "ratio must be between 0 and 1, got 1.5" in err.reason
    assert isinstance(err.__cause__, ValueError)


class Loose(Component):
    def __init__(self, *, known: int = 1, unannotated=None, **extra: Any) -> None:  # type: ignore[no-untyped-def]
        self.known, self.unannotated, self.extra = known, unannotated, extra


class Plain(Component):
    outputs = {"x": Socket(int)}


def test_var_keyword_and_unannotated_params_pass_through() -> None:
    kwargs = validate_params(Loose, {"known": 2, "unannotated": "anything", "other": [1]})
    assert kwargs == {"known": 2, "unannotated": "anything", "other": [1]}
    with pytest.raises(PipelineError, match="expects int"):
        validate_params(Loose, {"known": "2"})
    instance = instantiate(Loose, {"other": 5})
    assert isinstance(instance, Loose) and instance.extra == {"other": 5}
    assert instance.params() == {"known": 1, "unannotated": None, "other": 5}


def test_describe_params() -> None:
    params, var_keyword = describe_params(Settings)
    assert not var_keyword
    assert list(params) == ["size", "ratio", "mode", "tags", "root", "enabled"]
    assert params["size"].required and params["size"].annotation is int
    assert params["mode"].annotation == Literal["fast", "slow"]
    assert params["ratio"].default == 0.5 and not params["ratio"].required
    assert describe_params(Plain) == ({}, False)
    assert instantiate(Plain, {}).params() == {}


def test_python_objects_from_dicts_are_accepted_strictly() -> None:
    kwargs = validate_params(Settings, {"size": 1, "root": Path("/x"), "tags": ("a",)})
    assert kwargs["root"] == Path("/x") and kwargs["tags"] == ("a",)
    with pytest.raises(PipelineError, match="expects Path | None"):
        validate_params(Settings, {"size": 1, "root": object()})


def test_type_name() -> None:
    from memflow.types import Chunk

    assert type_name(list[Chunk]) == "list[Chunk]"
    assert type_name(int) == "int"
    assert type_name(Any) == "Any"
    assert type_name(dict[str, list[int]] | None) == "dict[str, list[int]] | None"
    assert type_name(Literal["a", "b"]) == "Literal['a', 'b']"
