"""Every registered built-in component keeps the one contract its constructor and run() declare."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from memflow.components.base import Component, constructor_parameters
from memflow.components.registry import available, resolve
from memflow.pipeline import run_problems

# Components that cannot be built without a parameter, and what the test gives them.
REQUIRED: dict[str, dict[str, Any]] = {"decoders.transformers": {"model": "."}}
# Defaults a constructor resolves to the value it then runs with, by component and parameter.
RESOLVED_DEFAULTS = {("chunkers.recursive", "separators")}

BUILTIN = sorted(name for name, target in available().items() if target.startswith("memflow."))


def build(name: str) -> tuple[type[Component], Component]:
    cls = resolve(name)
    return cls, cls(**REQUIRED.get(name, {}))


def test_every_builtin_is_covered() -> None:
    assert len(BUILTIN) >= 25
    assert "rerankers.late_interaction" in BUILTIN and "decoders.openai" in BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_params_are_the_constructors_keyword_only_parameters(name: str) -> None:
    cls, instance = build(name)
    signature = inspect.signature(cls.__init__)
    keyword_only = [p.name for p in list(signature.parameters.values())[1:] if p.kind is p.KEYWORD_ONLY]
    assert constructor_parameters(cls) == (keyword_only, None)  # nothing positional, no **kwargs
    reported = instance.params()
    assert list(reported) == [p for p in keyword_only if p not in cls.secret_params]
    given = set(REQUIRED.get(name, {})) | {p for n, p in RESOLVED_DEFAULTS if n == name}
    for parameter in list(signature.parameters.values())[1:]:
        if parameter.name in reported and parameter.name not in given:
            assert reported[parameter.name] == parameter.default, parameter.name


@pytest.mark.parametrize("name", BUILTIN)
def test_param_attributes_name_real_parameters(name: str) -> None:
    cls = resolve(name)
    names, _ = constructor_parameters(cls)
    for klass in cls.__mro__:
        for param in vars(klass).get("param_attributes", {}):
            assert param in names, f"{klass.__name__}.param_attributes maps unknown parameter {param!r}"
    assert cls.secret_params <= set(names)


@pytest.mark.parametrize("name", BUILTIN)
def test_run_matches_the_input_sockets(name: str) -> None:
    _, instance = build(name)
    assert run_problems(instance) == []


def test_params_follow_what_the_instance_runs_with(tmp_path: Path) -> None:
    from memflow.components.decoders.llama_cpp import LlamaCppDecoder
    from memflow.components.loaders.auto import AutoLoader

    decoder = LlamaCppDecoder(model="tiny.gguf", hops=3, scale=10.0)
    assert decoder.params()["model"] == "tiny.gguf"
    assert (decoder.params()["hops"], decoder.params()["scale"]) == (3, 10.0)  # read from its attention
    decoder.attention.hops = 4
    assert decoder.params()["hops"] == 4
    assert AutoLoader(extensions=["MD"]).params()["extensions"] == ["MD"]  # as given, not normalized


def test_secret_params_are_never_reported() -> None:
    from memflow.components.decoders.openai_compat import OpenAIDecoder

    decoder = OpenAIDecoder(api_key="sk-secret", model="m")
    assert "api_key" not in decoder.params()
    assert decoder.params()["model"] == "m"
