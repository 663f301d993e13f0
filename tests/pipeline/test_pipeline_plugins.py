"""A component from another distribution, found through a real ``memflow.components`` entry point."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from memflow.components import registry
from memflow.errors import PipelineError
from memflow.pipeline import Pipeline

PLUGIN_MODULE = """
from __future__ import annotations

from typing import Any

from memflow.components.base import Component, Socket


class Double(Component):
    inputs = {"numbers": Socket(list[int])}
    outputs = {"numbers": Socket(list[int])}

    def __init__(self, *, factor: int = 2) -> None:
        self.factor = factor

    def run(self, **inputs: Any) -> dict[str, Any]:
        return {"numbers": [n * self.factor for n in inputs["numbers"]]}


class Source(Component):
    inputs = {"count": Socket(int)}
    outputs = {"numbers": Socket(list[int])}

    def run(self, **inputs: Any) -> dict[str, Any]:
        return {"numbers": list(range(inputs["count"]))}
"""

ENTRY_POINTS = """\
[memflow.components]
demo.double = plugin_demo_mod:Double
demo.source = plugin_demo_mod:Source
demo.broken = plugin_demo_missing_mod:Nothing
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution ``plugin-demo`` on sys.path, as ``pip install`` would leave it."""
    site = tmp_path / "site"
    info = site / "plugin_demo-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-demo\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    (site / "plugin_demo_mod.py").write_text(textwrap.dedent(PLUGIN_MODULE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    registry.clear_cache()
    yield site
    registry.clear_cache()
    sys.modules.pop("plugin_demo_mod", None)


PIPELINE = """\
name: plugin
components:
  source: {type: demo.source}
  double: {type: demo.double, params: {factor: 5}}
connections:
  - source.numbers -> double.numbers
"""


def test_entry_point_component_is_found_and_runs(plugin: Path) -> None:
    assert registry.available()["demo.double"] == "plugin_demo_mod:Double"
    pipe = Pipeline.from_string(PIPELINE, source="plugin.yaml")
    assert type(pipe.component("double")).__module__ == "plugin_demo_mod"
    assert pipe.run({"count": 3}) == {"double": {"numbers": [0, 5, 10]}}
    assert "double  demo.double  (factor=5)" in pipe.show()


def test_entry_point_params_are_checked(plugin: Path) -> None:
    with pytest.raises(PipelineError, match="parameter 'factor' expects int") as info:
        Pipeline.from_string(PIPELINE.replace("factor: 5", "factor: 2.5"), source="plugin.yaml")
    assert info.value.line == 4


def test_broken_plugin_is_reported_at_its_line(plugin: Path) -> None:
    text = PIPELINE.replace("type: demo.source", "type: demo.broken")
    with pytest.raises(PipelineError, match="'demo.broken' failed to load") as info:
        Pipeline.from_string(text, source="plugin.yaml")
    assert info.value.line == 3


def test_without_the_plugin_the_name_is_unknown() -> None:
    registry.clear_cache()
    with pytest.raises(PipelineError, match="unknown component type 'demo.source'") as info:
        Pipeline.from_string(PIPELINE, source="plugin.yaml")
    assert info.value.line == 3
