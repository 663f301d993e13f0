"""The sentence-transformers encoder: chunk vectors and, from the same pass, one vector per sentence.

Sentence vectors come from "late chunking": the chunk is encoded once, and each sentence's vector is the
mean of the encoder's contextual token outputs over that sentence's tokens (found through the fast
tokenizer's character offsets). Ingest therefore never runs the encoder twice, and every sentence vector
has seen its whole chunk as context.

``sentence_vectors: independent`` instead encodes every sentence on its own, in a second pass over the
sentences (about as many tokens again, in short sequences): each vector is the model's embedding of that
sentence alone, the kind of text a short question is matched against. On SciFact's train queries it made
the late-interaction reranker's sentence features stronger (``bench/quality.py``; figures in
bench/RESULTS.md); ingest costs more for it, so the default stays ``late``.

``header: title`` (or ``title_section``) has the encoder read the document's title (and the chunk's section
heading) before each chunk's text, as BEIR's dense baselines read "title + text": a chunk that never names
its subject still lands near questions about it. The header's tokens count towards the chunk vector only;
the sentence vectors pool the chunk's own tokens, and the window widens by up to :data:`HEADER_TOKENS` for
the header so that no chunk loses its tail to it. The stored text and offsets are the chunk's own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from memflow.components.base import Component, Socket
from memflow.errors import MemflowError
from memflow.models import (
    DEFAULT_MODEL,
    DeviceName,
    model_id,
    pick_device,
    pick_dtype,
    quiet_loading,
    resolve_model_path,
)
from memflow.types import Chunk, Vector, informative_title

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

    from memflow.components.encoders.onnx_runtime import OnnxTransformer

__all__ = ["SentenceTransformersEncoder", "QueryEncoder", "EncoderModel", "load_encoder"]

Precision = Literal["auto", "float32", "float16", "int8"]
Backend = Literal["auto", "torch", "onnx"]
SentenceVectors = Literal["late", "independent"]
Header = Literal["none", "title", "title_section"]

#: Tokens a chunk header may take; they are added to the model's window rather than cut from the chunk's tail.
HEADER_TOKENS = 32

_CACHE: dict[tuple[str, str, str, str], EncoderModel] = {}
_CACHE_LOCK = threading.Lock()


def pick_backend(backend: Backend, device: str, precision: Precision) -> Literal["torch", "onnx"]:
    """``auto``: ONNX Runtime (int8 unless asked otherwise) on the CPU when the ``onnx`` extra is installed,
    PyTorch otherwise (and always on a GPU, where PyTorch runs fp16)."""
    if backend != "auto":
        return backend
    if device != "cpu" or precision == "float16":
        return "torch"
    from memflow.components.encoders.onnx_runtime import onnx_available

    return "onnx" if onnx_available() else "torch"


class EncoderModel:
    """A loaded sentence-transformers model with memflow's chunk + sentence encoding on top.

    ``backend`` runs the transformer on PyTorch or on ONNX Runtime (:mod:`.onnx_runtime`); ``precision``
    ``int8`` is ONNX Runtime's dynamic quantization, ``float16`` is PyTorch on a GPU."""

    def __init__(
        self, name: str, *, device: DeviceName = "auto", precision: Precision = "auto", backend: Backend = "auto"
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model_id = model_id(name)
        self.device = pick_device(device)
        self.backend = pick_backend(backend, self.device, precision)
        if precision == "int8" and self.backend != "onnx":
            raise MemflowError("precision int8 needs the ONNX backend (backend: onnx or auto, with the onnx extra)")
        if self.backend == "onnx" and self.device != "cpu":
            raise MemflowError(f"the ONNX encoder backend runs on the CPU, not {self.device}; use backend: torch")
        self.dtype = pick_dtype(self.device, "float32" if self.backend == "onnx" else precision)  # type: ignore[arg-type]
        path = resolve_model_path(name)
        with quiet_loading():
            self.model: SentenceTransformer = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        if self.dtype == torch.float16:
            self.model.half()
        self.model.eval()
        self.onnx: OnnxTransformer | None = None
        self.precision = str(self.dtype).removeprefix("torch.")
        if self.backend == "onnx":
            from memflow.components.encoders.onnx_runtime import OnnxTransformer

            self.precision = "float32" if precision == "float32" else "int8"
            self.onnx = OnnxTransformer(self.model, path, precision=self.precision)  # type: ignore[arg-type]
        self.tokenizer: Any = self.model.tokenizer
        self.max_length = int(self.model.max_seq_length or 512)
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"model {name!r} does not report its embedding dimension")
        self.dimension = int(dim)

    # -- queries ------------------------------------------------------------------------------------------

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
        """Normalized embeddings, one row per text."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            features = self._tokenize(batch, offsets=False)
            sentence, _ = self._forward(features)
            out[start : start + len(batch)] = sentence.float().cpu().numpy()
        return out

    def token_vectors(
        self, texts: Sequence[str], *, batch_size: int = 32
    ) -> list[tuple[npt.NDArray[np.float16], npt.NDArray[np.int32]]]:
        """Per text, the encoder's contextual output for each of its tokens (special tokens left out), each
        row normalized, as float16, and each token's character span in the text (``(n, 2)``): what token-level
        late interaction (ColBERT's MaxSim) matches a question's tokens against."""
        import torch

        out: list[tuple[npt.NDArray[np.float16], npt.NDArray[np.int32]]] = [
            (np.zeros((0, self.dimension), dtype=np.float16), np.zeros((0, 2), dtype=np.int32))
        ] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            features = self._tokenize([texts[i] for i in rows], offsets=True)
            offsets = features.pop("offset_mapping")
            special = features.pop("special_tokens_mask")
            _, tokens = self._forward(features)
            tokens = torch.nn.functional.normalize(tokens.float(), dim=-1).cpu()
            valid = features["attention_mask"].bool() & ~special.bool()
            for row, i in enumerate(rows):
                out[i] = (
                    tokens[row][valid[row]].numpy().astype(np.float16),
                    offsets[row][valid[row]].numpy().astype(np.int32),
                )
        return out

    # -- chunks -------------------------------------------------------------------------------------------

    def encode_chunks(
        self,
        chunks: Sequence[Chunk],
        *,
        batch_size: int = 32,
        sentence_vectors: SentenceVectors = "late",
        header: Header = "none",
    ) -> None:
        """Set ``vector`` and ``sentence_vectors`` on every chunk (in place), in length-sorted batches so
        padding stays small. ``sentence_vectors``: ``late`` pools them from the chunk's own pass,
        ``independent`` encodes each sentence alone; ``header``: what the encoder reads before the chunk's
        text (see the module docs)."""
        order = sorted(range(len(chunks)), key=lambda i: chunks[i].token_count or len(chunks[i].text))
        late = sentence_vectors == "late"
        for start in range(0, len(order), batch_size):
            batch = [chunks[i] for i in order[start : start + batch_size]]
            self._encode_batch(batch, pool_sentences=late, header=header)
        if not late:
            self._encode_sentences_alone(chunks, batch_size=batch_size)

    def _encode_sentences_alone(self, chunks: Sequence[Chunk], *, batch_size: int) -> None:
        texts = [sentence.text for chunk in chunks for sentence in chunk.sentences]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), self.dimension), dtype=np.float16)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            vectors[rows] = self.encode_queries([texts[i] for i in rows], batch_size=batch_size)
        at = 0
        for chunk in chunks:
            chunk.sentence_vectors = vectors[at : at + len(chunk.sentences)]
            at += len(chunk.sentences)

    def _encode_batch(self, batch: Sequence[Chunk], *, pool_sentences: bool = True, header: Header = "none") -> None:
        """Chunk vectors, and with ``pool_sentences`` the late-chunked sentence vectors from the same pass."""
        import torch

        headers = [self._header(chunk, header) for chunk in batch]
        texts = [f"{head}\n{chunk.text}" if head else chunk.text for head, chunk in zip(headers, batch, strict=True)]
        extra = HEADER_TOKENS if any(headers) else 0
        features = self._tokenize(texts, offsets=pool_sentences, max_length=self._window(extra))
        offsets = features.pop("offset_mapping", None)
        special = features.pop("special_tokens_mask", None)
        sentence, tokens = self._forward(features)
        chunk_vectors = sentence.float().cpu().numpy()
        if not pool_sentences:
            for row, chunk in enumerate(batch):
                chunk.vector = chunk_vectors[row]
            return
        assert offsets is not None and special is not None
        tokens = tokens.float()
        valid = (features["attention_mask"].bool() & ~special.bool()).to(tokens.device)
        # Offsets into the chunk's own text: a header's tokens fall before 0 and belong to no sentence.
        shifts = torch.tensor([len(head) + 1 if head else 0 for head in headers], device=tokens.device)
        token_starts = offsets[..., 0].to(tokens.device) - shifts[:, None]
        for row, chunk in enumerate(batch):
            chunk.vector = chunk_vectors[row]
            n = len(chunk.sentences)
            if n == 0:
                chunk.sentence_vectors = np.zeros((0, self.dimension), dtype=np.float16)
                continue
            starts = torch.tensor([s.start - chunk.start for s in chunk.sentences], device=tokens.device)
            ends = torch.tensor([s.end - chunk.start for s in chunk.sentences], device=tokens.device)
            # A token belongs to the sentence whose span holds its first character.
            idx = torch.searchsorted(starts, token_starts[row].contiguous(), right=True) - 1
            inside = valid[row] & (idx >= 0) & (token_starts[row] < ends[idx.clamp(min=0)])
            idx = idx.clamp(min=0)
            sums = torch.zeros((n, tokens.shape[-1]), dtype=tokens.dtype, device=tokens.device)
            sums.index_add_(0, idx[inside], tokens[row][inside])
            counts = torch.bincount(idx[inside], minlength=n).unsqueeze(1)
            pooled = sums / counts.clamp(min=1)
            # A sentence cut off by truncation has no tokens: it falls back to its chunk's vector.
            empty = (counts.squeeze(1) == 0).cpu().numpy()
            vectors = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
            vectors[empty] = chunk.vector
            chunk.sentence_vectors = vectors.astype(np.float16)

    def _tokenize(self, texts: list[str], *, offsets: bool, max_length: int | None = None) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=max_length or self.max_length,
            return_tensors="pt",
            return_offsets_mapping=offsets,
            return_special_tokens_mask=offsets,
        )
        return dict(encoded)

    def _window(self, extra: int) -> int:
        """The model's window widened by ``extra`` tokens, within its position embeddings."""
        positions = getattr(getattr(self.model[0], "auto_model", None), "config", None)
        limit = int(getattr(positions, "max_position_embeddings", self.max_length) or self.max_length)
        return min(self.max_length + extra, max(limit, self.max_length))

    def _header(self, chunk: Chunk, header: Header) -> str:
        """The document title (and the chunk's section) cut to :data:`HEADER_TOKENS` tokens, or ''. A title that
        is only the loaders' fallback (the file name's stem, a JSONL record's id) is left out: it names the
        document without saying what it is about."""
        if header == "none":
            return ""
        parts = [informative_title(chunk.document.uri, chunk.document.title)]
        if header == "title_section" and chunk.section and chunk.section.strip() != parts[0]:
            parts.append(chunk.section.strip())
        text = " - ".join(p for p in parts if p)
        if not text:
            return ""
        ids = self.tokenizer(
            text, add_special_tokens=False, truncation=True, max_length=HEADER_TOKENS, return_offsets_mapping=True
        )
        return text[: ids["offset_mapping"][-1][1]] if ids["offset_mapping"] else ""

    def _forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if self.onnx is not None:
            return self.onnx.forward(features)
        inputs = {k: v.to(self.model.device) for k, v in features.items()}
        with torch.inference_mode():
            out = self.model.forward(inputs)
        sentence = torch.nn.functional.normalize(out["sentence_embedding"].float(), dim=-1)
        return sentence, out["token_embeddings"]


def load_encoder(
    name: str = DEFAULT_MODEL,
    *,
    device: DeviceName = "auto",
    precision: Precision = "auto",
    backend: Backend = "auto",
) -> EncoderModel:
    """A shared, loaded encoder: ingest and query components in one process use the same weights."""
    key = (name, device, precision, backend)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = EncoderModel(name, device=device, precision=precision, backend=backend)
        return _CACHE[key]


class _EncoderComponent(Component):
    record_in_store: ClassVar[bool] = False
    param_attributes: ClassVar[dict[str, str]] = {"model": "model_name"}

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: DeviceName = "auto",
        precision: Precision = "auto",
        backend: Backend = "auto",
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        resolve_model_path(model)  # fail at build time, naming the path, not at the first run
        self.model_name, self.device, self.precision, self.batch_size = model, device, precision, batch_size
        self.backend = backend
        self._encoder: EncoderModel | None = None
        self._checked_store: object | None = None

    @property
    def encoder(self) -> EncoderModel:
        if self._encoder is None:
            self._encoder = load_encoder(
                self.model_name, device=self.device, precision=self.precision, backend=self.backend
            )
        return self._encoder

    @property
    def model_id(self) -> str:
        return model_id(self.model_name)

    def _check_store(self) -> None:
        """The store records its encoder on first ingest and refuses any other one afterwards."""
        store = getattr(self, "context", None) and self.context.store
        if store is not None and self._checked_store is not store:
            store.check_encoder(self.model_id, self.encoder.dimension, record=self.record_in_store)
            self._checked_store = store


class SentenceTransformersEncoder(_EncoderComponent):
    """Encodes chunks: a normalized vector per chunk and a float16 vector per sentence (``sentence_vectors``:
    ``late``, from the chunk's own pass, or ``independent``, each sentence encoded alone)."""

    inputs = {"chunks": Socket(list[Chunk])}
    outputs = {"chunks": Socket(list[Chunk])}
    record_in_store = True

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: DeviceName = "auto",
        precision: Precision = "auto",
        backend: Backend = "auto",
        batch_size: int = 32,
        sentence_vectors: SentenceVectors = "late",
        header: Header = "none",
    ) -> None:
        super().__init__(model=model, device=device, precision=precision, backend=backend, batch_size=batch_size)
        if sentence_vectors not in ("late", "independent"):
            raise ValueError(f"sentence_vectors must be 'late' or 'independent', not {sentence_vectors!r}")
        if header not in ("none", "title", "title_section"):
            raise ValueError(f"header must be 'none', 'title' or 'title_section', not {header!r}")
        self.sentence_vectors: SentenceVectors = sentence_vectors
        self.header: Header = header

    def run(self, *, chunks: list[Chunk]) -> dict[str, Any]:
        if chunks:
            self._check_store()
            self.encoder.encode_chunks(
                chunks, batch_size=self.batch_size, sentence_vectors=self.sentence_vectors, header=self.header
            )
        return {"chunks": chunks}


class QueryEncoder(_EncoderComponent):
    """Encodes a question into the same space as the stored chunks."""

    inputs = {"query": Socket(str)}
    outputs = {"query_vector": Socket(Vector), "query": Socket(str)}

    def run(self, *, query: str) -> dict[str, Any]:
        self._check_store()
        return {"query_vector": self.encoder.encode_queries([query])[0], "query": query}
