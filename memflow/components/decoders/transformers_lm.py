"""A local Hugging Face model directory as the decoder's language model (causal or sequence-to-sequence).

``model`` is a directory holding a model and its tokenizer (``config.json``, weights, tokenizer files);
``AutoModelForSeq2SeqLM`` loads encoder-decoder models and ``AutoModelForCausalLM`` the rest. The prompt is
rendered with the tokenizer's chat template when it has one, else as plain text. It runs on the encoder's
device logic (:func:`memflow.models.pick_device`): CUDA in half precision, else MPS, else the CPU. Files are
read locally only; nothing downloads. transformers is a dependency of sentence-transformers, so no extra is
needed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from memflow.components.decoders.prompting import ChatMessage, Completion, GenerativeDecoder, Mode
from memflow.errors import MemflowError, MissingDependencyError
from memflow.models import DeviceName, pick_device, pick_dtype, quiet_loading

__all__ = ["TransformersDecoder", "TransformersModel"]

Kind = Literal["auto", "causal", "seq2seq"]
Precision = Literal["auto", "float32", "float16"]


class TransformersModel:
    """A Hugging Face model and its tokenizer, loaded from a local directory."""

    def __init__(
        self,
        path: str | Path,
        *,
        kind: Kind = "auto",
        device: DeviceName = "auto",
        precision: Precision = "auto",
        context_tokens: int | None = None,
    ) -> None:
        try:
            import torch  # noqa: F401  (transformers needs it; fail here with a clear message)
            from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError("transformers", extra="llm", purpose="decoders.transformers") from exc
        directory = Path(path).expanduser()
        if not (directory / "config.json").is_file():
            raise MemflowError(
                f"no Hugging Face model in {directory} (config.json is missing; memflow never downloads models)"
            )
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
        self.seq2seq = kind == "seq2seq" or (kind == "auto" and bool(getattr(config, "is_encoder_decoder", False)))
        self.device = pick_device(device)
        dtype = pick_dtype(self.device, precision)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        loader: Any = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        with quiet_loading():
            self.model: Any = loader.from_pretrained(directory, local_files_only=True, dtype=dtype)
        self.model.to(self.device).eval()
        self.name = directory.name
        self.path = directory.resolve()
        self.context_tokens = context_tokens or self._window(config)
        self.chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    def __repr__(self) -> str:
        kind = "seq2seq" if self.seq2seq else "causal"
        return f"<TransformersModel {self.name} ({kind}) on {self.device}, {self.context_tokens} tokens>"

    def _window(self, config: Any) -> int:
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self.tokenizer, "model_max_length", None)
        return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 512

    # -- tokens -----------------------------------------------------------------------------------

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text: the chat template when the tokenizer has one, else the messages as plain text."""
        if self.chat_template:
            return str(self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))
        text = "\n\n".join(m["content"] for m in messages)
        return text if self.seq2seq else text + "\n\nAnswer:"

    def _encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        # A chat template writes its own special tokens; plain text gets the tokenizer's (BOS, EOS...).
        ids = self.tokenizer(self.render(messages), add_special_tokens=not self.chat_template)["input_ids"]
        return [int(i) for i in ids]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self._encode(messages))

    # -- generation -------------------------------------------------------------------------------

    def _generate_kwargs(self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float) -> dict[str, Any]:
        import torch

        ids = self._encode(messages)
        if len(ids) + (0 if self.seq2seq else max_tokens) > self.context_tokens:
            raise MemflowError(
                f"the prompt ({len(ids)} tokens) and max_tokens={max_tokens} exceed {self.name}'s "
                f"{self.context_tokens}-token window"
            )
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": max_tokens,
            "pad_token_id": pad,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            kwargs.update(do_sample=False)
        return kwargs

    def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Completion:
        import torch

        kwargs = self._generate_kwargs(messages, max_tokens, temperature)
        prompt_length = int(kwargs["input_ids"].shape[1])
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        seconds = time.perf_counter() - started
        new = output[0] if self.seq2seq else output[0][prompt_length:]
        tokens = [int(t) for t in new]
        special = set(self.tokenizer.all_special_ids)
        generated = [t for t in tokens if t not in special]
        eos = self.tokenizer.eos_token_id
        finish = "stop" if eos is not None and eos in tokens else "length" if len(tokens) >= max_tokens else "stop"
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return Completion(
            text=text,
            prompt_tokens=prompt_length,
            completion_tokens=len(generated),
            finish_reason=finish,
            seconds=seconds,
        )

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        kwargs = self._generate_kwargs(messages, max_tokens, temperature)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=not self.seq2seq, timeout=600, skip_special_tokens=True
        )
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs, streamer=streamer)
            except BaseException as exc:  # handed to the consuming thread
                failure.append(exc)
                streamer.end()  # type: ignore[no-untyped-call]

        worker = threading.Thread(target=work, name="memflow-transformers-stream", daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if failure:
            raise MemflowError(f"{self.name} failed while streaming: {failure[0]}") from failure[0]


_LOADED: dict[tuple[str, str, str, str, int | None], TransformersModel] = {}
_LOCK = threading.Lock()


def load_transformers(
    path: str,
    *,
    kind: Kind = "auto",
    device: DeviceName = "auto",
    precision: Precision = "auto",
    context_tokens: int | None = None,
) -> TransformersModel:
    """A loaded model, shared by every caller with the same directory and settings."""
    key = (str(Path(path).expanduser().resolve()), kind, device, precision, context_tokens)
    with _LOCK:
        if key not in _LOADED:
            if len(_LOADED) >= 2:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = TransformersModel(
                path, kind=kind, device=device, precision=precision, context_tokens=context_tokens
            )
        return _LOADED[key]


class TransformersDecoder(GenerativeDecoder):
    """Answers with a local Hugging Face model, citing the memory's evidence as [n].

    ``model``: the model directory; ``kind``: ``auto`` (from its config), ``causal`` or ``seq2seq``;
    ``device``/``precision`` as for the encoder; ``context_tokens``: the model's window (0 = from its
    config). See :class:`GenerativeDecoder` for the rest.
    """

    param_attributes = {"model": "model_path"}  # ``model`` is the loaded chat model

    def __init__(
        self,
        *,
        model: str,
        kind: Kind = "auto",
        device: DeviceName = "auto",
        precision: Precision = "auto",
        context_tokens: int = 0,
        budget: int = 1024,
        max_tokens: int = 128,
        temperature: float = 0.0,
        mode: Mode = "auto",
        summary_share: float = 0.25,
        max_items: int = 16,
        hops: int = 2,
        scale: float = 20.0,
    ) -> None:
        if context_tokens < 0:
            raise ValueError("context_tokens must be >= 0 (0 = from the model's config)")
        super().__init__(
            budget=budget,
            max_tokens=max_tokens,
            temperature=temperature,
            mode=mode,
            summary_share=summary_share,
            max_items=max_items,
            hops=hops,
            scale=scale,
        )
        self.model_path, self.kind, self.device, self.precision = model, kind, device, precision
        self.context_tokens = context_tokens

    def load_model(self) -> TransformersModel:
        return load_transformers(
            self.model_path,
            kind=self.kind,
            device=self.device,
            precision=self.precision,
            context_tokens=self.context_tokens or None,
        )
