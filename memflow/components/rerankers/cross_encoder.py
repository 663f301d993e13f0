"""A cross-encoder reranker (sentence-transformers ``CrossEncoder``), from a local model directory only.

memflow never downloads a model: ``model`` must name a local directory holding a cross-encoder (e.g. a
copy of cross-encoder/ms-marco-MiniLM-L-6-v2). With no model configured the component passes the hits
through unchanged and says so once (a warning, and a "skipped" problem in the run's context); a configured
path that does not exist is an error naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from memflow.components.base import Component, Socket
from memflow.components.retrievers._hits import rehit
from memflow.errors import MemflowError
from memflow.types import Hit

__all__ = ["CrossEncoderReranker"]

log = logging.getLogger("memflow")

Device = Literal["auto", "cpu", "cuda", "mps"]


class CrossEncoderReranker(Component):
    """Rescores the first ``depth`` hits with a cross-encoder over (question, chunk text) pairs and returns the
    best ``k``."""

    inputs = {
        "query": Socket(str),
        "hits": Socket(list[Hit]),
        "k": Socket(int, optional=True, default=None, doc="overrides the component's k for one run"),
    }
    outputs = {"hits": Socket(list[Hit])}

    def __init__(
        self,
        *,
        model: str | None = None,
        k: int = 10,
        depth: int = 50,
        batch_size: int = 32,
        device: Device = "auto",
        max_length: int = 512,
    ) -> None:
        if k < 1 or depth < 1 or batch_size < 1:
            raise ValueError("k, depth and batch_size must be at least 1")
        self.k = k
        if model is not None and not Path(model).expanduser().is_dir():
            raise MemflowError(f"cross-encoder model directory not found: {model} (memflow never downloads models)")
        self.model = model  # as given; model_path is where it resolves
        self.model_path = str(Path(model).expanduser().resolve()) if model else None
        self.depth, self.batch_size, self.device, self.max_length = depth, batch_size, device, max_length
        self._model: Any = None
        self._warned = False

    @property
    def available(self) -> bool:
        return self.model_path is not None

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            from memflow.models import pick_device

            self._model = CrossEncoder(
                self.model_path, device=pick_device(self.device), max_length=self.max_length, local_files_only=True
            )
        return self._model

    def run(self, *, query: str, hits: list[Hit], k: int | None = None) -> dict[str, Any]:
        k = self.k if k is None else k
        if not self.available:
            if not self._warned:
                message = (
                    "no local cross-encoder model configured (rerankers.cross_encoder params.model): "
                    "hits passed through unreranked"
                )
                log.warning("%s", message)
                self.context.report("rerankers.cross_encoder", message, kind="skipped")
                self._warned = True
            return {"hits": hits[:k]}
        if len(hits) < 2:
            return {"hits": hits[:k]}
        head, tail = hits[: self.depth], hits[self.depth :]
        scores = self._load().predict(
            [(query, h.text) for h in head], batch_size=self.batch_size, show_progress_bar=False
        )
        by_id = {h.chunk_id: float(s) for h, s in zip(head, scores, strict=True)}
        floor = min(by_id.values())
        for n, h in enumerate(tail, start=1):
            by_id.setdefault(h.chunk_id, floor - n)
        return {"hits": rehit(head + tail, by_id)[:k]}
