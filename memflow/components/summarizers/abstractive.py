"""The abstractive recurrent summary: a written running summary of each document, kept by a language model.

In one pass over a document's chunks, in reading order: ``summary_t = LLM(summary_{t-1}, chunk_t)``. The
summary can never exceed ``max_tokens`` tokens of the model's own tokenizer: the model is asked for at most
that many, the result is measured, and a summary that still overruns is re-asked once to be shortened and
then cut at the last whole sentence (or word) that fits. A passage too long for the model's window
beside the summary is cut to fit it.

Each step is stored in its own transaction (:meth:`Store.save_written_summary`), replacing the previous
summary only when it commits: an interrupted update (an error, a crash, Ctrl-C) leaves the last complete
summary in place, with the number of chunks it covers, and the next run over the same document continues
from there. The summary sits next to the extractive state (``summarizers.centrality``) and is deleted
with its document. In the ingest pipeline it follows the writer, which gives documents their ids::

    abstract: {type: summarizers.abstractive, params: {backend: llama_cpp, model: smollm2, max_tokens: 128}}
    write.chunks -> abstract.chunks
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from memflow.components.base import Component, Socket
from memflow.components.decoders.prompting import ChatMessage, ChatModel, truncate_to_tokens
from memflow.errors import MemflowError
from memflow.models import DeviceName
from memflow.types import Chunk, WrittenSummary

if TYPE_CHECKING:
    from memflow.storage.store import Store

__all__ = ["AbstractiveSummarizer", "Backend", "load_chat_model"]

Backend = Literal["llama_cpp", "transformers", "openai"]

SYSTEM = "You keep a short running summary of a long document as you read it part by part."


class _ChunkLike(Protocol):
    @property
    def ordinal(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def text(self) -> str: ...


def load_chat_model(
    backend: Backend,
    *,
    model: str,
    context_tokens: int,
    threads: int = 0,
    device: DeviceName = "auto",
    base_url: str = "http://127.0.0.1:8080/v1",
) -> ChatModel:
    """A chat model from any of the decoders' backends (llama.cpp, transformers, OpenAI-compatible HTTP)."""
    if backend == "llama_cpp":
        from memflow.components.decoders.llama_cpp import default_threads, load_llama, resolve_gguf

        return load_llama(resolve_gguf(model), context_tokens, threads or default_threads())
    if backend == "transformers":
        from memflow.components.decoders.transformers_lm import load_transformers

        return load_transformers(model, device=device, context_tokens=context_tokens or None)
    from memflow.components.decoders.openai_compat import OpenAIModel

    return OpenAIModel(base_url=base_url, model=model, context_tokens=context_tokens)


def _messages(previous: str, passage: str, words: int) -> list[ChatMessage]:
    prior = previous if previous else "(nothing yet: this is the start of the document)"
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"Summary so far:\n{prior}\n\nNext part of the document:\n{passage}\n\n"
            f"Write the updated summary of the document so far, covering the next part "
            f"too, in at most {words} words. Reply with the summary only.",
        },
    ]


def _shorten_messages(text: str, words: int) -> list[ChatMessage]:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"Shorten this summary to at most {words} words. Reply with the summary only.\n\n{text}",
        },
    ]


def _whole_sentences(text: str) -> str:
    """``text`` cut after its last complete sentence (a generation stopped at max_tokens ends mid-sentence)."""
    match = re.search(r"^.*[.!?][\"')\]]*(?=\s|$)", text, flags=re.DOTALL)
    return match.group(0).strip() if match else text.strip()


class AbstractiveSummarizer(Component):
    """Keeps each document's written running summary in the store; chunks pass through unchanged.

    ``backend`` and ``model`` choose the language model (``llama_cpp`` with ``smollm2`` or a GGUF path,
    ``transformers`` with a model directory, ``openai`` with a model name at ``base_url``); ``max_tokens``
    is the summary's hard budget; ``context_tokens`` the model's window; ``threads`` for llama.cpp (0 =
    half the cores); ``resume`` continues an interrupted summary instead of starting over.
    """

    inputs = {"chunks": Socket(list[Chunk], doc="stored chunks (from storage.writer: their documents exist)")}
    outputs = {"chunks": Socket(list[Chunk]), "summaries": Socket(list[WrittenSummary])}
    param_attributes = {"model": "model_name"}  # ``model`` is the loaded chat model

    def __init__(
        self,
        *,
        backend: Backend = "llama_cpp",
        model: str = "smollm2",
        max_tokens: int = 128,
        context_tokens: int = 2048,
        threads: int = 0,
        device: DeviceName = "auto",
        base_url: str = "http://127.0.0.1:8080/v1",
        temperature: float = 0.0,
        resume: bool = True,
    ) -> None:
        if max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if context_tokens < 4 * max_tokens:
            raise ValueError("context_tokens must be at least 4 * max_tokens (summary, passage and answer)")
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        self.backend, self.model_name, self.max_tokens = backend, model, max_tokens
        self.context_tokens, self.threads, self.device, self.base_url = context_tokens, threads, device, base_url
        self.temperature, self.resume = temperature, resume
        self._model: ChatModel | None = None

    @property
    def model(self) -> ChatModel:
        if self._model is None:
            self._model = load_chat_model(
                self.backend,
                model=self.model_name,
                context_tokens=self.context_tokens,
                threads=self.threads,
                device=self.device,
                base_url=self.base_url,
            )
        return self._model

    # -- one step of the recurrence ---------------------------------------------------------------

    def fit(self, text: str) -> str:
        """``text`` within the budget, by the model's tokenizer: as is, else re-asked shorter, else cut."""
        model, budget = self.model, self.max_tokens
        text = text.strip()
        if model.count_tokens(text) <= budget:
            return text
        words = max(4, budget // 2)
        shorter = model.complete(
            _shorten_messages(text, words), max_tokens=budget, temperature=self.temperature
        ).text.strip()
        if shorter and model.count_tokens(shorter) <= budget:
            return shorter
        return truncate_to_tokens(model, shorter or text, budget)

    def step(self, previous: str, passage: str) -> str:
        """summary_t = LLM(summary_{t-1}, chunk_t), at most ``max_tokens`` tokens."""
        model, budget = self.model, self.max_tokens
        words = max(4, int(budget * 0.6))
        room = model.context_tokens - budget - model.prompt_tokens(_messages(previous, "", words))
        if room < 16:
            raise MemflowError(
                f"{model.name}'s {model.context_tokens}-token window cannot hold a summary of "
                f"{budget} tokens and a passage: raise context_tokens or lower max_tokens"
            )
        passage = " ".join(passage.split())
        messages = _messages(previous, passage, words)
        if model.prompt_tokens(messages) > model.context_tokens - budget:
            passage = truncate_to_tokens(model, passage, room - 8)
            messages = _messages(previous, passage, words)
            while model.prompt_tokens(messages) > model.context_tokens - budget and passage:
                passage = truncate_to_tokens(model, passage, max(0, model.count_tokens(passage) - 16))
                messages = _messages(previous, passage, words)
        completion = model.complete(messages, max_tokens=budget, temperature=self.temperature)
        text = completion.text.strip()
        if completion.finish_reason == "length":
            text = _whole_sentences(text)
        if not text:
            return previous  # the model wrote nothing: keep what we had
        return self.fit(text)

    # -- documents --------------------------------------------------------------------------------

    def summarize(self, store: Store, document_id: int, uri: str, chunks: Sequence[_ChunkLike]) -> WrittenSummary:
        """Fold ``chunks`` (one document's, any order) into its stored summary, saving after every step."""
        stored = store.written_summaries([document_id]).get(document_id)
        ordered = sorted(chunks, key=lambda c: c.ordinal)
        start = 0
        summary = WrittenSummary(uri, "", 0, self.max_tokens, 0, 0, self.model.name)
        if stored is not None and self.resume and stored.model == self.model.name and stored.budget == self.max_tokens:
            summary = stored
            start = stored.chunks_seen
        for chunk in ordered:
            if chunk.ordinal < start:
                continue
            text = self.step(summary.text, chunk.text)
            summary = WrittenSummary(
                uri,
                text,
                self.model.count_tokens(text),
                self.max_tokens,
                chunk.ordinal + 1,
                max(summary.read_until, chunk.end),
                self.model.name,
            )
            store.save_written_summary(document_id, summary)
        return summary

    def summarize_stored(self, store: Store, document: str) -> WrittenSummary:
        """Write (or continue) the summary of a document already in ``store``, from its stored chunks."""
        found = store.find_document(document)
        if found is None:
            raise MemflowError(f"no document {document!r} in store {store.directory}")
        ids = store.chunk_ids([(found.id, ordinal) for ordinal in range(found.chunk_count)])
        chunks = store.chunks([ids[(found.id, o)] for o in range(found.chunk_count) if (found.id, o) in ids])
        return self.summarize(store, found.id, found.uri, chunks)

    def run(self, *, chunks: list[Chunk]) -> dict[str, Any]:
        store = self.context.require_store("summarizers.abstractive")
        groups: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            groups.setdefault(chunk.document.uri, []).append(chunk)
        summaries: list[WrittenSummary] = []
        for uri, group in groups.items():
            found = store.find_document(uri, collection=self.context.collection)
            if found is None:
                raise MemflowError(f"summarizers.abstractive: {uri} is not in the store; place it after storage.writer")
            summaries.append(self.summarize(store, found.id, uri, group))
        return {"chunks": chunks, "summaries": summaries}
