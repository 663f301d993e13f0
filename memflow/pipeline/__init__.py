"""Pipelines: YAML files of components and connections, checked before anything runs."""

from __future__ import annotations

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
