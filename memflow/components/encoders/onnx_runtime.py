"""The encoder's transformer on ONNX Runtime, optionally int8: the same weights, fewer and cheaper FLOPs.

On a CPU, encoding is bound by matrix multiplies. ONNX Runtime runs the exported graph with fused kernels
(about 1.6x PyTorch's speed here at float32), and dynamic int8 quantization of the MatMul weights, one scale
per output channel, runs the same multiplies in 8-bit integer arithmetic (about 3x). Per-channel scales are
what keep quality: per-tensor int8 loses several points of retrieval quality on MiniLM, per-channel loses
well under one (``bench/perf.py quality`` measures it).

The model is exported locally from the weights on disk (never downloaded) into memflow's cache directory,
once per model and variant, and written atomically, so concurrent first uses are safe. Only the
transformer runs here; pooling and normalization stay the sentence-transformers modules of the model, so
the vectors are the model's own.

Why not sentence-transformers' ``backend="onnx"``: it needs ``optimum``, whose current release pins
transformers below 4.58, which sentence-transformers 6 does not support. The export here uses
``torch.onnx.export`` and ``onnxruntime.quantization`` directly, the two libraries that do the work.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from memflow.errors import MemflowError

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

__all__ = ["OnnxTransformer", "onnx_available", "cache_dir", "EXPORT_VERSION"]

OnnxPrecision = Literal["float32", "int8"]

#: Bump when the export or quantization recipe changes, so cached files from the old one are not reused.
EXPORT_VERSION = 1
#: Model families whose transformer the export wrapper knows (embeddings + encoder with an additive mask).
SUPPORTED_MODEL_TYPES = frozenset({"bert"})

_EXPORT_LOCK = threading.Lock()


def onnx_available() -> bool:
    """Whether onnxruntime and onnx are importable (memflow depends on both; a platform without their wheels
    falls back to PyTorch under ``backend: auto``)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def cache_dir() -> Path:
    """Where memflow keeps files it derives from local models: ``$MEMFLOW_CACHE``, else the XDG cache."""
    explicit = os.environ.get("MEMFLOW_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memflow"


def _writable_cache(name: str) -> Path:
    """The folder for one model's ONNX files: under :func:`cache_dir`, or, where that cannot be written (a
    service user without a home, a read-only home), a folder of this user's own in the temporary directory."""
    preferred = cache_dir() / "onnx" / name
    fallback = Path(tempfile.gettempdir()) / f"memflow-{os.getuid()}" / "onnx" / name
    errors = []
    for folder in (preferred, fallback):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            owner = folder.parents[1]
            if folder is fallback and ((held := owner.stat()).st_uid != os.getuid() or held.st_mode & 0o022):
                raise PermissionError(f"{owner} belongs to another user or is writable by others")
            if os.access(folder, os.W_OK):
                return folder
            raise PermissionError(f"{folder} is not writable")
        except OSError as exc:
            errors.append(f"{folder}: {exc.strerror or exc}")
    raise MemflowError(
        f"cannot write the encoder's ONNX cache ({'; '.join(errors)}): set MEMFLOW_CACHE to a writable directory"
    )


def _require_onnx() -> None:
    if not onnx_available():
        raise MemflowError(
            "the ONNX encoder backend needs onnxruntime and onnx (memflow's own dependencies): "
            "pip install onnxruntime onnx"
        )


def _fingerprint(model_dir: Path) -> str:
    """Changes when the model's files change: names, sizes and modification times of its weights/config."""
    digest = hashlib.sha256(f"memflow-onnx-export/{EXPORT_VERSION}".encode())
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".json"}:
            stat = path.stat()
            digest.update(f"{path.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class OnnxTransformer:
    """Runs the first module (the Hugging Face transformer) of a sentence-transformers model on ONNX Runtime;
    :meth:`forward` returns ``(sentence_embedding, token_embeddings)`` like the PyTorch path."""

    def __init__(
        self,
        model: SentenceTransformer,
        model_dir: Path,
        *,
        precision: OnnxPrecision = "int8",
        threads: int | None = None,
    ) -> None:
        _require_onnx()
        import onnxruntime as ort

        transformer = model[0]
        auto_model = getattr(transformer, "auto_model", None)
        model_type = getattr(getattr(auto_model, "config", None), "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise MemflowError(
                f"the ONNX encoder backend supports BERT-family models, not {model_type!r} ({model_dir}); "
                "use backend: torch"
            )
        self.precision = precision
        self.path = self._ensure_exported(model, model_dir, precision)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, len(os.sched_getaffinity(0)))
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Threads that spin between runs fight PyTorch's (pooling, the decoder) and other processes for the
        # cores: a short query encoded twice as fast without spinning here (bench/profile_query.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self.session.get_inputs()}
        self._heads = list(model)[1:]  # pooling, normalization, ...: the model's own, in PyTorch

    # -- export ---------------------------------------------------------------------------------------

    @classmethod
    def _ensure_exported(cls, model: SentenceTransformer, model_dir: Path, precision: OnnxPrecision) -> Path:
        name = f"{model_dir.name}-{_fingerprint(model_dir)}"
        with _EXPORT_LOCK:
            folder = _writable_cache(name)
            target = folder / f"model.{precision}.onnx"
            if target.exists():
                return target
            plain = folder / "model.float32.onnx"
            if not plain.exists():
                cls._export(model, plain)
            if precision == "int8":
                cls._quantize(plain, target)
        return target

    @staticmethod
    def _export(model: SentenceTransformer, target: Path) -> None:
        import torch

        bert: Any = model[0].auto_model

        class _Encoder(torch.nn.Module):
            # The additive mask is built here, not by transformers' mask helpers, whose Python branches on
            # shapes would be frozen into the traced graph.
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(
                self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
            ) -> torch.Tensor:
                hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
                additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
                out: torch.Tensor = self.bert.encoder(hidden, attention_mask=additive).last_hidden_state
                return out

        wrapper = _Encoder().eval()
        example = model.tokenizer(["an example sentence to trace", "short"], padding=True, return_tensors="pt")
        ids = example["input_ids"]
        args = (ids, example["attention_mask"], example.get("token_type_ids", torch.zeros_like(ids)))
        names = ["input_ids", "attention_mask", "token_type_ids"]
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        # The tracer's warnings are about branches of transformers' own mask code, which the wrapper avoids.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                args,
                str(tmp),
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "token_embeddings"]},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, target)

    @staticmethod
    def _quantize(source: Path, target: Path) -> None:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        previous = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" advice is for conv nets
        try:
            quantize_dynamic(
                str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
            )
        finally:
            logging.getLogger().setLevel(previous)
        os.replace(tmp, target)

    # -- inference ------------------------------------------------------------------------------------

    def _run(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        """Token embeddings for a right-padded batch, one sequence per call at its own length: no FLOPs on
        padding (faster here than padded batches), and int8's dynamic activation scales then depend on the
        text alone, so a chunk gets the same vector whatever batch it is encoded in."""
        mask = feeds["attention_mask"]
        lengths = mask.sum(axis=1)
        if bool((mask[:, 0] == 0).any()):  # a left-padding tokenizer: run the batch as it is
            return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)
        rows: list[npt.NDArray[np.float32]] = []
        for row, length in enumerate(lengths.tolist()):
            single = {name: value[row : row + 1, :length] for name, value in feeds.items()}
            rows.append(self.session.run(None, single)[0][0])
        out = np.zeros((*mask.shape, rows[0].shape[-1] if rows else 0), dtype=np.float32)
        for row, values in enumerate(rows):
            out[row, : len(values)] = values
        return out

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        ids = features["input_ids"]
        feeds: dict[str, npt.NDArray[np.int64]] = {
            "input_ids": ids.numpy().astype(np.int64, copy=False),
            "attention_mask": features["attention_mask"].numpy().astype(np.int64, copy=False),
        }
        if "token_type_ids" in self._input_names:
            types = features.get("token_type_ids")
            feeds["token_type_ids"] = (
                types.numpy().astype(np.int64, copy=False) if types is not None else np.zeros_like(feeds["input_ids"])
            )
        tokens = torch.from_numpy(self._run(feeds))
        out: dict[str, torch.Tensor] = {"token_embeddings": tokens, "attention_mask": features["attention_mask"]}
        with torch.inference_mode():
            for head in self._heads:
                out = head(out)
        sentence = torch.nn.functional.normalize(out["sentence_embedding"].float(), dim=-1)
        return sentence, tokens
