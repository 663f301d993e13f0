"""What a generative decoder's language model sees, and how its answer maps back to the memory.

A generative decoder first runs the built-in attention decoder (:class:`AttentionDecoder`) over the
retrieved sentences and the summary states of their documents; the memory, not the model, decides what is
relevant. It then packs a prompt under a hard token budget, counted with the model's own tokenizer
(chat template included):

1. the summary state of the document the attention weighs most: its written (abstractive) summary, if the
   store holds one, and its extractive summary sentences;
2. the retrieved evidence, highest attention weight first;

each item labelled ``[n]``, and asks the model to cite ``[n]``. A question about a whole document ("what is
this essay about?") gives the summary state the whole budget; a question about a detail gives it at most
``summary_share`` of it, so the retrieved memory fills the rest. Every ``[n]`` in the answer maps back to
the document, chunk and character span of item n; a number the model was never given maps to nothing and
the answer says so in ``notes`` (it never invents a citation). An answer that cites nothing is attributed:
each of its sentences is cited to the item that holds most of its words, where that item holds at least
half of them (and three at least), and ``notes`` says the citations are memflow's, not the model's.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from memflow.components.base import Component, RunContext, Socket
from memflow.components.decoders.attention import AttentionDecoder
from memflow.errors import MemflowError
from memflow.types import Answer, Citation, Evidence, Hit, Vector

__all__ = [
    "ChatMessage",
    "ChatModel",
    "Completion",
    "ContextItem",
    "PromptContext",
    "GenerativeDecoder",
    "Mode",
    "about_whole_document",
    "parse_citations",
    "truncate_to_tokens",
]

ChatMessage = dict[str, str]
Mode = Literal["auto", "document", "detail"]

SYSTEM_PROMPT = (
    "You answer questions using only the numbered context you are given. After each statement, cite the "
    "context it comes from by its number in square brackets, like [1]. If the context does not answer the "
    "question, say so."
)

# "What is this essay about?", "summarize the article", "the main point of the post"...: a question about a
# document as a whole, answered from its summary state rather than from retrieved details.
_WHOLE_DOCUMENT = re.compile(
    r"\b(?:what(?:\s+is|\s+was|'s|’s)\s+(?:this|the|that)\s+(?:[\w'’-]+\s+){0,6}?about\b"
    r"|what(?:\s+is|\s+are|\s+was|'s|’s)\s+(?:this|the|that)\s+(?:\w+\s+){0,2}"
    r"(?:essay|document|article|text|book|paper|piece|post|chapter|report|story|talk)(?:'s)?\s+"
    r"(?:main\s+)?(?:point|idea|argument|thesis|message|theme)s?\b"
    r"|summar(?:y|ize|ise|ies)\b|main\s+(?:point|idea|argument|theme|message|thesis|takeaway)s?\b"
    r"|gist\b|overview\b|in\s+a\s+nutshell\b|tl;?dr\b)",
    re.IGNORECASE,
)
_CITATION = re.compile(r"\[\s*(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]")


def about_whole_document(question: str) -> bool:
    """Whether ``question`` asks about a document as a whole (its topic, gist or summary)."""
    return _WHOLE_DOCUMENT.search(question) is not None


#: An answer sentence is attributed to a context item holding at least this share of its terms, and at least
#: ATTRIBUTION_MIN_TERMS of them (terms as the lexical index makes them: stemmed, without stop words).
ATTRIBUTION_MIN_SHARE = 0.5
ATTRIBUTION_MIN_TERMS = 3
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def attribute(text: str, items: Sequence[ContextItem]) -> list[int]:
    """The labels of the items ``text``'s sentences repeat, in order of first use, without repeats: each
    sentence goes to the item sharing the most of its terms, if that is enough (see ATTRIBUTION_MIN_*)."""
    from memflow.storage.analyzer import tokenize

    item_terms = [(item.label, set(tokenize(item.text))) for item in items]
    labels: list[int] = []
    for sentence in _SENTENCE_END.split(text):
        terms = set(tokenize(sentence))
        if len(terms) < ATTRIBUTION_MIN_TERMS or not item_terms:
            continue
        label, shared = max(((lb, len(terms & held)) for lb, held in item_terms), key=lambda pair: pair[1])
        if shared >= ATTRIBUTION_MIN_TERMS and shared >= ATTRIBUTION_MIN_SHARE * len(terms) and label not in labels:
            labels.append(label)
    return labels


def parse_citations(text: str) -> list[int]:
    """The ``[n]`` labels in ``text`` (also ``[1, 2]``), in order of first mention, without repeats."""
    labels: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            label = int(part)
            if label not in labels:
                labels.append(label)
    return labels


@dataclass(frozen=True, slots=True)
class Completion:
    """One generation: its text, token counts (when the backend reports them) and why it stopped."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    seconds: float | None = None


class ChatModel(Protocol):
    """A loaded language model behind a chat interface: llama.cpp, transformers, or an HTTP server."""

    name: str
    context_tokens: int

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer (no special tokens added)."""
        ...

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of the whole prompt the model will read for ``messages`` (chat template included)."""
        ...

    def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Completion: ...

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Iterator[str]:
        """Yield the answer's text piece by piece as the model writes it."""
        ...


def truncate_to_tokens(model: ChatModel, text: str, budget: int) -> str:
    """The longest prefix of ``text`` within ``budget`` tokens: whole sentences when one fits, else words."""
    text = text.strip()
    if budget <= 0 or not text:
        return ""
    if model.count_tokens(text) <= budget:
        return text
    sentences = re.findall(r"[^.!?]+[.!?]+[\"')\]]*\s*", text)
    kept = ""
    for sentence in sentences:
        if model.count_tokens((kept + sentence).strip()) > budget:
            break
        kept += sentence
    if kept.strip():
        return kept.strip()
    words = text.split()
    low, high = 0, len(words)  # the longest word prefix that fits: binary search on the count
    while low < high:
        middle = (low + high + 1) // 2
        if model.count_tokens(" ".join(words[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


@dataclass(frozen=True, slots=True)
class ContextItem:
    """One labelled item of the prompt: ``[label] text``, with where it comes from."""

    label: int
    text: str
    citation: Citation
    origin: Literal["retrieved", "summary"]
    weight: float
    written: bool = False  # a written (abstractive) summary rather than a sentence of the document
    in_summary: bool = False  # shown in the prompt's summary section (else under evidence)


@dataclass(slots=True)
class PromptContext:
    """Everything the model is given for one question, and how it was chosen."""

    question: str
    mode: Literal["document", "detail"]
    document: str | None
    items: list[ContextItem]
    messages: list[ChatMessage]
    prompt_tokens: int
    budget: int
    left_out: int
    attended: Answer
    notes: list[str] = field(default_factory=list)


def _flat(text: str) -> str:
    return " ".join(text.split())


def render(question: str, items: Sequence[ContextItem], *, mode: str, title: str | None) -> list[ChatMessage]:
    """The chat messages for ``question`` over ``items`` (summary items first, then evidence)."""
    summary = [i for i in items if i.in_summary]
    evidence = [i for i in items if not i.in_summary]
    parts: list[str] = []
    if summary:
        name = f" of {title}" if title else ""
        parts.append(f"Summary{name}:\n" + "\n".join(f"[{i.label}] {i.text}" for i in summary))
    if evidence:
        parts.append("Evidence:\n" + "\n".join(f"[{i.label}] {i.text}" for i in evidence))
    if not parts:
        parts.append("Context: (none)")
    hint = " The question is about the document as a whole: answer from its summary." if mode == "document" else ""
    parts.append(f"Question: {question.strip()}{hint}\nAnswer briefly and cite the numbers you use, like [1].")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(parts)}]


class GenerativeDecoder(Component):
    """Base class of the decoders that have a language model write the answer (see the module docstring).

    Subclasses build their model in :meth:`load_model` (lazily, on first use) and pass the shared
    parameters to ``__init__``: ``budget`` (the most prompt tokens), ``max_tokens`` (the most answer tokens),
    ``temperature`` (0 = greedy, deterministic), ``mode``, ``summary_share``, ``max_items`` and the
    attention's ``hops`` and ``scale``.
    """

    inputs = {"query": Socket(str), "query_vector": Socket(Vector), "hits": Socket(list[Hit])}
    outputs = {"answer": Socket(Answer)}
    # The attention that picks the evidence is the one place these two live.
    param_attributes = {"hops": "attention.hops", "scale": "attention.scale"}

    def __init__(
        self,
        *,
        budget: int,
        max_tokens: int,
        temperature: float,
        mode: Mode,
        summary_share: float,
        max_items: int,
        hops: int,
        scale: float,
    ) -> None:
        if budget < 32:
            raise ValueError("budget must be at least 32 tokens")
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0.0 <= summary_share <= 1.0:
            raise ValueError("summary_share must be in [0, 1]")
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.budget, self.max_tokens, self.temperature = budget, max_tokens, temperature
        self.mode, self.summary_share, self.max_items = mode, summary_share, max_items
        self.attention = AttentionDecoder(hops=hops, scale=scale, max_sentences=1, summaries=True)
        self._model: ChatModel | None = None

    # -- the model ------------------------------------------------------------------------------------

    def load_model(self) -> ChatModel:
        raise NotImplementedError(f"{type(self).__name__} must implement load_model()")

    @property
    def model(self) -> ChatModel:
        if self._model is None:
            self._model = self.load_model()
        return self._model

    def bind(self, context: RunContext) -> None:
        super().bind(context)
        self.attention.bind(context)

    # -- what the model sees --------------------------------------------------------------------------

    def prompt_context(self, query: str, query_vector: Vector, hits: list[Hit]) -> PromptContext:
        """Run the attention, then pack the labelled prompt for ``query`` under the token budget."""
        attended: Answer = self.attention.run(query=query, query_vector=query_vector, hits=hits)["answer"]
        mode: Literal["document", "detail"] = (
            ("document" if about_whole_document(query) else "detail") if self.mode == "auto" else self.mode
        )
        if not attended.evidence:
            return PromptContext(query, mode, None, [], [], 0, 0, 0, attended)
        model = self.model
        budget = min(self.budget, model.context_tokens - self.max_tokens)
        document, title = self._top_document(attended.evidence)
        candidates = self._summary_items(document, title, attended.evidence, mode)
        summary_keys = {(c.citation.start, c.citation.end, c.citation.document) for c in candidates}
        evidence = [
            e for e in attended.evidence if (e.citation.start, e.citation.end, e.citation.document) not in summary_keys
        ]
        base = model.prompt_tokens(render(query, [], mode=mode, title=title))
        if base > budget:
            raise MemflowError(
                f"the question alone needs {base} prompt tokens; the budget is {budget} "
                f"({model.name}): raise the decoder's budget or ask a shorter question"
            )
        summary_budget = budget - base if mode == "document" else int(self.summary_share * (budget - base))
        items: list[ContextItem] = []
        used = base + 8  # section headings and separators
        left_out = 0
        for pool, limit in ((candidates, min(budget, used + summary_budget)), (evidence, budget)):
            for entry in pool:
                item = (
                    entry
                    if isinstance(entry, ContextItem)
                    else ContextItem(0, _flat(entry.text), entry.citation, entry.origin, entry.weight)
                )
                if len(items) >= self.max_items:
                    left_out += 1
                    continue
                cost = model.count_tokens(f"[{len(items) + 1}] {item.text}\n")
                if used + cost > limit:
                    left_out += 1
                    continue
                used += cost
                items.append(
                    ContextItem(
                        len(items) + 1,
                        item.text,
                        item.citation,
                        item.origin,
                        item.weight,
                        item.written,
                        item.in_summary,
                    )
                )
        # The per-item counts are close but tokenizers do not add up exactly: measure the real prompt and
        # drop the lowest-weighted items until it fits. The budget is never exceeded.
        messages = render(query, items, mode=mode, title=title)
        tokens = model.prompt_tokens(messages)
        while tokens > budget and items:
            items.pop()
            left_out += 1
            messages = render(query, items, mode=mode, title=title)
            tokens = model.prompt_tokens(messages)
        notes = []
        if mode == "document" and document is not None:
            notes.append(f"a question about a whole document: the model read the summary state of {document}")
        return PromptContext(query, mode, document, items, messages, tokens, budget, left_out, attended, notes)

    @staticmethod
    def _top_document(evidence: list[Evidence]) -> tuple[str | None, str | None]:
        weights: dict[str, float] = {}
        titles: dict[str, str] = {}
        for e in evidence:
            weights[e.citation.document] = weights.get(e.citation.document, 0.0) + e.weight
            titles.setdefault(e.citation.document, e.citation.title)
        if not weights:
            return None, None
        top = max(weights, key=lambda d: weights[d])
        return top, titles[top] or top.rsplit("/", 1)[-1]

    def _summary_items(
        self, document: str | None, title: str | None, evidence: list[Evidence], mode: str
    ) -> list[ContextItem]:
        """The summary state of ``document``: its written summary (if stored), then, for a whole-document
        question, its extractive summary sentences in reading order (else only as the attention ranks them)."""
        if document is None or (mode == "detail" and self.summary_share == 0):
            return []
        items: list[ContextItem] = []
        written = _written_summary(self.context, document)
        if written is not None:
            items.append(written)
        if mode == "document":
            weights = {(e.citation.document, e.citation.start, e.citation.end): e.weight for e in evidence}
            items += [
                ContextItem(
                    0,
                    _flat(text),
                    citation,
                    "summary",
                    weights.get((citation.document, citation.start, citation.end), 0.0),
                    in_summary=True,
                )
                for text, citation in _summary_slots(self.context, document)
            ]
        return items

    # -- the answer -----------------------------------------------------------------------------------

    def answer(self, context: PromptContext, text: str, *, finish_reason: str | None = None) -> Answer:
        """The Answer for the model's ``text``: each valid ``[n]`` mapped to item n's citation."""
        by_label = {item.label: item for item in context.items}
        labels = parse_citations(text)
        valid = [n for n in labels if n in by_label]
        invalid = [n for n in labels if n not in by_label]
        notes = list(context.notes)
        if invalid:
            given = f"[1]-[{len(context.items)}]" if context.items else "nothing"
            notes.append(
                f"the model cited {', '.join(f'[{n}]' for n in invalid)}, which it was not given "
                f"(it was given {given}); no citation is made for them"
            )
        if not valid and text.strip():
            valid = attribute(text, context.items)
            if valid:
                notes.append(
                    "the model cited none of the context it was given: the citations are the context items whose "
                    "words its answer repeats (attributed by memflow, not cited by the model)"
                )
        if not valid:
            notes.append("the model cited none of the context it was given: this answer rests on no citation")
        if not text.strip():
            notes.append("the model wrote no answer")
        if finish_reason == "length":
            notes.append(f"the answer was cut at max_tokens={self.max_tokens}")
        attended = context.attended
        return Answer(
            question=context.question,
            text=text.strip(),
            citations=[by_label[n].citation for n in valid],
            evidence=attended.evidence,
            attention=attended.attention,
            hits=attended.hits,
            generated=True,
            labels=valid,
            notes=notes,
        )

    def _empty(self, query: str, context: PromptContext) -> Answer:
        return Answer(
            question=query,
            text="",
            citations=[],
            evidence=[],
            attention=[],
            hits=context.attended.hits,
            generated=False,
            notes=["the memory holds nothing relevant; the model was not asked"],
        )

    def run(self, *, query: str, query_vector: Vector, hits: list[Hit]) -> dict[str, Any]:
        context = self.prompt_context(query, np.asarray(query_vector, dtype=np.float32), hits)
        if not context.items:
            return {"answer": self._empty(query, context)}
        completion = self.model.complete(context.messages, max_tokens=self.max_tokens, temperature=self.temperature)
        return {"answer": self.answer(context, completion.text, finish_reason=completion.finish_reason)}

    def stream(self, *, query: str, query_vector: Vector, hits: list[Hit]) -> Generator[str, None, Answer]:
        """Yield the answer's text as the model writes it; the generator's return value is the Answer."""
        context = self.prompt_context(query, np.asarray(query_vector, dtype=np.float32), hits)
        if not context.items:
            return self._empty(query, context)
        pieces: list[str] = []
        for piece in self.model.stream(context.messages, max_tokens=self.max_tokens, temperature=self.temperature):
            pieces.append(piece)
            yield piece
        return self.answer(context, "".join(pieces))


def _summary_slots(context: RunContext, document: str) -> list[tuple[str, Citation]]:
    """The extractive summary state of ``document``, in reading order: (sentence, citation) pairs. Read from
    the store, since the attention lists a summary sentence that was also retrieved as retrieved."""
    store = context.store
    found = store.find_document(document, collection=context.collection) if store is not None else None
    if store is None or found is None:
        return []
    state = store.summary_states([found.id]).get(found.id)
    if state is None:
        return []
    chunk_ids = store.chunk_ids([(found.id, slot.chunk_ordinal) for slot in state.slots])
    return [
        (
            slot.text,
            Citation(
                found.uri,
                found.title,
                chunk_ids[(found.id, slot.chunk_ordinal)],
                slot.chunk_ordinal,
                slot.start,
                slot.end,
                found.metadata,
                found.collection,
            ),
        )
        for slot in sorted(state.slots, key=lambda s: s.start)
        if (found.id, slot.chunk_ordinal) in chunk_ids
    ]


def _written_summary(context: RunContext, document: str) -> ContextItem | None:
    """The stored written summary of ``document`` as a context item citing the span it has read."""
    store = context.store
    if store is None:
        return None
    found = store.find_document(document, collection=context.collection)
    if found is None:
        return None
    summary = store.written_summaries([found.id]).get(found.id)
    if summary is None or not summary.text.strip():
        return None
    first = store.chunk_ids([(found.id, 0)]).get((found.id, 0))
    if first is None:
        return None
    citation = Citation(found.uri, found.title, first, 0, 0, summary.read_until, found.metadata, found.collection)
    return ContextItem(0, _flat(summary.text), citation, "summary", 1.0, written=True, in_summary=True)
