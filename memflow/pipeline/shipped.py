"""The pipelines memflow ships, found by name.

Each is a YAML file in ``pipelines/`` (in the wheel: ``memflow/_pipelines``). ``ingest`` and ``ask`` are the
defaults; the others are named by their role and a variant, ``ask-dense`` or ``ingest-sentences``. Where a
command takes a pipeline, the short name is enough: ``--pipeline dense`` for the ask role is
``ask-dense.yaml``, ``--pipeline default`` is the role's default, and anything that looks like a path (it
holds a ``/`` or ends in ``.yaml``) is read as a file. Reading this catalogue parses YAML only: no component
is built and no model is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

import memflow
from memflow.errors import PipelineError

__all__ = ["ShippedPipeline", "Role", "builtin_pipeline", "shipped_pipelines", "resolve_pipeline"]

Role = Literal["ingest", "ask"]


@dataclass(frozen=True, slots=True)
class ShippedPipeline:
    """A shipped pipeline: its file stem (``ask-dense``), the short name a command takes for its role
    (``dense``; ``default`` for the role's default), the role, its file and its YAML ``description``."""

    stem: str
    short_name: str
    role: Role
    path: Path
    description: str


def _directories() -> list[Path]:
    package = Path(memflow.__file__).resolve().parent
    return [package / "_pipelines", package.parent / "pipelines"]


def builtin_pipeline(name: str) -> Path:
    """The path of a pipeline memflow ships (``ingest``, ``ask``, ``ask-dense``): in the wheel, else the
    source tree."""
    stem = name[:-5] if name.endswith(".yaml") else name
    if not re.fullmatch(r"[A-Za-z0-9_-]+", stem):
        raise PipelineError(f"invalid built-in pipeline name {name!r}")
    candidates = [directory / f"{stem}.yaml" for directory in _directories()]
    for path in candidates:
        if path.is_file():
            return path
    raise PipelineError(f"no built-in pipeline {stem!r}; looked in {', '.join(str(p.parent) for p in candidates)}")


def shipped_pipelines() -> list[ShippedPipeline]:
    """Every shipped pipeline, the ingest ones first, each role's default first within it."""
    directory = next((d for d in _directories() if d.is_dir()), None)
    if directory is None:
        return []
    found: list[ShippedPipeline] = []
    for path in sorted(directory.glob("*.yaml")):
        role_name, _, variant = path.stem.partition("-")
        if role_name not in ("ingest", "ask"):
            continue
        role: Role = "ingest" if role_name == "ingest" else "ask"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise PipelineError(f"cannot read shipped pipeline: {exc}", file=path) from None
        description = data.get("description", "") if isinstance(data, dict) else ""
        found.append(
            ShippedPipeline(
                stem=path.stem,
                short_name=variant or "default",
                role=role,
                path=path,
                description=" ".join(str(description).split()),
            )
        )
    return sorted(found, key=lambda p: (p.role != "ingest", p.short_name != "default", p.short_name))


def looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.endswith((".yaml", ".yml"))


def resolve_pipeline(spec: str | Path, *, role: Role | None = None) -> Path:
    """The YAML file ``spec`` names: a path as given (it must exist), else a shipped pipeline of ``role`` by
    short name (``dense``), stem (``ask-dense``) or ``default``; with no role, by stem or by a short name only
    one role has. An unknown name lists the names there are."""
    if isinstance(spec, Path) or looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise PipelineError(f"no pipeline file {spec}")
        return path
    shipped = [p for p in shipped_pipelines() if role is None or p.role == role]
    by_stem = [p for p in shipped if p.stem == spec]
    by_name = [p for p in shipped if p.short_name == spec]
    if by_stem or len(by_name) == 1:
        return (by_stem or by_name)[0].path
    kind = f"{role} pipeline" if role else "pipeline"
    names = [p.short_name for p in shipped] if role else [p.stem for p in shipped]
    raise PipelineError(f"unknown {kind} {spec!r}; shipped: {', '.join(names)} (or give the path of a YAML file)")
