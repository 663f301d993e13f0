"""Ingest engines other than the default in-process one.

``Memory.ingest(..., engine="ray")`` runs loading, chunking and encoding as a Ray Data pipeline
(:mod:`memflow.engines.ray`, imported only when asked for, since Ray is the optional ``ray`` extra).
"""

from __future__ import annotations

__all__ = ["ENGINES"]

#: The engines ``Memory.ingest`` accepts.
ENGINES = ("local", "ray")
