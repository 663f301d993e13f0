"""Pipelines: YAML files of components and connections, checked before anything runs.

The names below are imported on first use: reading the shipped pipelines' list needs no graph library."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memflow.pipeline.graph import build_graph, run_problems, types_match
    from memflow.pipeline.params import describe_params, instantiate, type_name, validate_params
    from memflow.pipeline.pipeline import Pipeline
    from memflow.pipeline.shipped import ShippedPipeline, builtin_pipeline, resolve_pipeline, shipped_pipelines
    from memflow.pipeline.yaml_loader import (
        ComponentSpec,
        ConnectionSpec,
        PipelineSpec,
        YamlDocument,
        load_spec,
        load_yaml,
        parse_spec,
        read_spec,
    )

_HOMES = {
    "Pipeline": "memflow.pipeline.pipeline",
    "builtin_pipeline": "memflow.pipeline.shipped",
    "shipped_pipelines": "memflow.pipeline.shipped",
    "resolve_pipeline": "memflow.pipeline.shipped",
    "ShippedPipeline": "memflow.pipeline.shipped",
    "load_yaml": "memflow.pipeline.yaml_loader",
    "load_spec": "memflow.pipeline.yaml_loader",
    "read_spec": "memflow.pipeline.yaml_loader",
    "parse_spec": "memflow.pipeline.yaml_loader",
    "YamlDocument": "memflow.pipeline.yaml_loader",
    "PipelineSpec": "memflow.pipeline.yaml_loader",
    "ComponentSpec": "memflow.pipeline.yaml_loader",
    "ConnectionSpec": "memflow.pipeline.yaml_loader",
    "build_graph": "memflow.pipeline.graph",
    "types_match": "memflow.pipeline.graph",
    "run_problems": "memflow.pipeline.graph",
    "describe_params": "memflow.pipeline.params",
    "validate_params": "memflow.pipeline.params",
    "instantiate": "memflow.pipeline.params",
    "type_name": "memflow.pipeline.params",
}

__all__ = [
    "Pipeline",
    "builtin_pipeline",
    "shipped_pipelines",
    "resolve_pipeline",
    "ShippedPipeline",
    "load_yaml",
    "load_spec",
    "read_spec",
    "parse_spec",
    "YamlDocument",
    "PipelineSpec",
    "ComponentSpec",
    "ConnectionSpec",
    "build_graph",
    "types_match",
    "run_problems",
    "describe_params",
    "validate_params",
    "instantiate",
    "type_name",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'memflow.pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
