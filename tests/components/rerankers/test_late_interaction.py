"""The late-interaction reranker's shipped configuration (its features are tested with the retrievers and scorers)."""

from __future__ import annotations

import inspect

import pytest
import yaml

from memflow.components.rerankers.late_interaction import FEATURES, LateInteractionReranker
from memflow.pipeline import builtin_pipeline


@pytest.mark.parametrize("name", ["ask", "ask-hybrid"])
def test_the_shipped_pipelines_weigh_every_feature_as_the_component_defaults_do(name: str) -> None:
    # the fitted weights live in two places (component defaults, YAML); a refit must change both
    params = yaml.safe_load(builtin_pipeline(name).read_text())["components"]["rerank"]["params"]
    defaults = {p.name: p.default for p in inspect.signature(LateInteractionReranker.__init__).parameters.values()}
    assert set(FEATURES) <= params.keys()
    for key in [*FEATURES, "prf_depth", "feedback", "feedback_depth", "token_depth"]:
        assert params[key] == defaults[key], key
