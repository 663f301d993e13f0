"""Any OpenAI-compatible chat-completions server as the decoder's language model (vLLM, llama.cpp's server,
Ollama, a hosted API), over HTTP with httpx.

The API key comes from the ``api_key`` param, else ``$MEMFLOW_OPENAI_API_KEY``, else ``$OPENAI_API_KEY``; no
key at all is fine for local servers. It is sent only in the ``Authorization`` header: it is never stored
in the store, logged, shown in ``params()`` or a repr, or put in an error message. Requests time out
(``timeout`` seconds to read, ``connect_timeout`` to connect) and are retried ``retries`` times on 429, on
5xx and on connection errors, waiting ``backoff`` seconds, doubling each time up to ``max_backoff`` (or what
the server's ``Retry-After`` asks, within that cap). A streamed answer is retried only before its first
byte; after that a failure is an error.

Token counting (``tokenizer``): the server's own tokenizer through its ``/tokenize`` endpoint (llama.cpp's
server and vLLM have one; ``server``), a local ``tokenizer.json`` (a path), or ``bytes``: the UTF-8 length,
an upper bound on the token count of byte-level tokenizers, so a budget it enforces holds for any model.
``auto`` uses the server's when it answers, else ``bytes``. Chat-template overhead, which a remote server
does not reveal, is allowed for at ``template_tokens`` per message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from memflow.components.decoders.prompting import ChatMessage, Completion, GenerativeDecoder, Mode
from memflow.errors import MemflowError, MissingDependencyError

__all__ = ["OpenAIDecoder", "OpenAIModel", "API_KEY_VARIABLES"]

log = logging.getLogger("memflow")

API_KEY_VARIABLES = ("MEMFLOW_OPENAI_API_KEY", "OPENAI_API_KEY")
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _api_key(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    for variable in API_KEY_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return value
    return None


class OpenAIModel:
    """A chat model behind an OpenAI-compatible HTTP API (see the module docstring)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        tokenizer: str = "auto",
        context_tokens: int = 8192,
        template_tokens: int = 8,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError("httpx", extra="openai", purpose="decoders.openai") from exc
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.context_tokens = context_tokens
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.template_tokens = template_tokens
        headers = {"Content-Type": "application/json"}
        key = _api_key(api_key)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout))
        self._tokenizer_mode = tokenizer
        self._local: Any = None
        if tokenizer not in ("auto", "server", "bytes"):
            from tokenizers import Tokenizer

            path = Path(tokenizer).expanduser()
            path = path / "tokenizer.json" if path.is_dir() else path
            if not path.is_file():
                raise MemflowError(f"tokenizer file not found: {path}")
            self._local = Tokenizer.from_file(str(path))
        self.requests = 0  # HTTP requests sent (retries included), for tests and benchmarks

    def __repr__(self) -> str:
        return f"<OpenAIModel {self.name} at {self.base_url}>"

    def close(self) -> None:
        self._client.close()

    # -- HTTP with retries ------------------------------------------------------------------------

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = float(self.backoff * (2**attempt))
        if retry_after:
            with contextlib.suppress(ValueError):  # an HTTP date instead of seconds: keep our own backoff
                delay = float(retry_after)
        return max(0.0, min(self.max_backoff, delay))

    def _error(self, response: Any) -> MemflowError:
        try:
            body = response.json()
            error = body.get("error", body) if isinstance(body, dict) else body
            message = error.get("message", error) if isinstance(error, dict) else error
        except (ValueError, json.JSONDecodeError):
            message = response.text[:200]
        return MemflowError(f"{self.base_url} answered HTTP {response.status_code}: {message}")

    def _send(self, path: str, body: dict[str, Any], *, stream: bool = False) -> Any:
        """POST with retries; returns the response (open and unread when ``stream``)."""
        import httpx

        url = self.base_url + path
        attempt = 0
        while True:
            self.requests += 1
            try:
                request = self._client.build_request("POST", url, json=body)
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise MemflowError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
                wait = self._delay(attempt, None)
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                    response.close()
                if response.status_code not in _RETRY_STATUS or attempt >= self.retries:
                    raise self._error(response)
                wait = self._delay(attempt, response.headers.get("retry-after"))
                log.info("%s answered HTTP %s; retrying in %.2f s", url, response.status_code, wait)
            time.sleep(wait)
            attempt += 1

    # -- tokens -----------------------------------------------------------------------------------

    def _server_count(self, text: str) -> int | None:
        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        try:
            response = self._client.post(
                root + "/tokenize", json={"content": text, "prompt": text, "model": self.name, "add_special": False}
            )
        except Exception:
            return None
        if response.status_code != 200:
            return None
        data = response.json()
        if isinstance(data.get("count"), int):
            return int(data["count"])
        tokens = data.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        if self._local is not None:
            return len(self._local.encode(text, add_special_tokens=False).ids)
        if self._tokenizer_mode in ("auto", "server"):
            count = self._server_count(text)
            if count is not None:
                self._tokenizer_mode = "server"
                return count
            if self._tokenizer_mode == "server":
                raise MemflowError(
                    f"{self.base_url} has no usable /tokenize endpoint; use tokenizer: bytes or a tokenizer.json path"
                )
            log.warning("%s has no /tokenize endpoint: counting UTF-8 bytes, an upper bound on tokens", self.base_url)
            self._tokenizer_mode = "bytes"
        return len(text.encode("utf-8"))

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(self.count_tokens(m["content"]) + self.template_tokens for m in messages) + self.template_tokens

    # -- generation -------------------------------------------------------------------------------

    def _body(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
        }
        if temperature == 0:
            body["seed"] = 0
        return body

    def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Completion:
        started = time.perf_counter()
        response = self._send("/chat/completions", self._body(messages, max_tokens, temperature, stream=False))
        try:
            data = response.json()
            choice = data["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise MemflowError(f"{self.base_url} returned a malformed chat completion: {exc}") from exc
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
            seconds=time.perf_counter() - started,
        )

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Iterator[str]:
        """The answer's pieces from the server's server-sent events (``data: {...}`` lines, ``data: [DONE]``)."""
        response = self._send(
            "/chat/completions", self._body(messages, max_tokens, temperature, stream=True), stream=True
        )
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return
                try:
                    event = json.loads(payload)
                except json.JSONDecodeError as exc:
                    raise MemflowError(f"{self.base_url} streamed a malformed event: {payload[:80]!r}") from exc
                if "error" in event:
                    error = event["error"]
                    raise MemflowError(
                        f"{self.base_url} failed while streaming: "
                        f"{error.get('message', error) if isinstance(error, dict) else error}"
                    )
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
        finally:
            response.close()


class OpenAIDecoder(GenerativeDecoder):
    """Answers with a model behind an OpenAI-compatible chat-completions API, citing the evidence as [n].

    ``base_url`` ends with the API version (e.g. ``http://127.0.0.1:8080/v1``); ``model`` is the name the
    server knows; ``api_key`` (prefer the environment: see the module docstring) is never shown or stored.
    """

    param_attributes = {"model": "model_name"}  # ``model`` is the loaded chat model
    secret_params = frozenset({"api_key"})

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1:8080/v1",
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        tokenizer: Literal["auto", "server", "bytes"] | str = "auto",
        context_tokens: int = 8192,
        template_tokens: int = 8,
        budget: int = 2048,
        max_tokens: int = 256,
        temperature: float = 0.0,
        mode: Mode = "auto",
        summary_share: float = 0.25,
        max_items: int = 16,
        hops: int = 2,
        scale: float = 20.0,
    ) -> None:
        if retries < 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must be >= 0")
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
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
        self.__api_key = api_key  # name-mangled and never in params(): the key must not travel anywhere else
        self.base_url, self.model_name, self.timeout, self.connect_timeout = base_url, model, timeout, connect_timeout
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.tokenizer, self.context_tokens, self.template_tokens = tokenizer, context_tokens, template_tokens

    def __repr__(self) -> str:
        return f"<OpenAIDecoder {self.model_name} at {self.base_url}>"

    def load_model(self) -> OpenAIModel:
        return OpenAIModel(
            api_key=self.__api_key,
            base_url=self.base_url,
            model=self.model_name,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            retries=self.retries,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            tokenizer=self.tokenizer,
            context_tokens=self.context_tokens,
            template_tokens=self.template_tokens,
        )
