"""decoders.transformers and the abstractive summary on tiny Hugging Face models built here, from a config and
a word-level tokenizer written to a temporary directory (random weights, nothing downloaded).

These check the plumbing, not the prose: the causal model's weights are set so that it always writes the
token "[2]", which makes what it cites known in advance; the sequence-to-sequence model is left random.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from memflow.answering import drain
from memflow.components.base import RunContext
from memflow.components.decoders.prompting import ChatMessage, Completion, truncate_to_tokens
from memflow.components.decoders.transformers_lm import TransformersDecoder, TransformersModel, load_transformers
from memflow.components.summarizers.abstractive import AbstractiveSummarizer
from memflow.components.summarizers.centrality import CentralitySummarizer
from memflow.errors import MemflowError
from memflow.storage.store import Store
from memflow.testing import check_component, make_chunks, make_document
from memflow.types import Hit

TEXT = (
    "Founders from abroad need a startup visa. Startup investors can vouch for real startups. "
    "The market decides who counts as a startup. Cats purr when they are content. Dogs bark at night."
)
SPECIAL = ["[PAD]", "[UNK]", "<s>", "</s>"]
TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }}: {{ m['content'] }} </s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s> assistant:{% endif %}"
)


def _tokenizer(directory: Path, *, chat_template: bool) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(TEXT.split()) | {f"[{n}]" for n in range(1, 21)} | {"system:", "user:", "assistant:"})
    vocab = {token: i for i, token in enumerate(SPECIAL + words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>"
    )
    if chat_template:
        tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(directory)
    return tokenizer


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer GPT-2 whose final layer norm and tied embedding always pick the token "[2]"."""
    from transformers import GPT2Config, GPT2LMHeadModel

    directory = tmp_path_factory.mktemp("tiny-causal")
    tokenizer = _tokenizer(directory, chat_template=True)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    target = tokenizer.convert_tokens_to_ids("[2]")
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[target] = 0.0
        model.transformer.wte.weight[target, 0] = 10.0
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def seq2seq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer T5 with random weights and no chat template."""
    from transformers import T5Config, T5ForConditionalGeneration

    directory = tmp_path_factory.mktemp("tiny-seq2seq")
    tokenizer = _tokenizer(directory, chat_template=False)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=16,
        d_ff=32,
        d_kv=8,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(directory)
    return directory


@pytest.fixture()
def small(tmp_path: Path) -> tuple[Store, list[Hit], Any]:
    store = Store(tmp_path / "store")
    store.check_encoder("test", 8, record=True)
    store.check_index("Flat")
    document = make_document(TEXT, uri="/essays/visa.txt", title="Visa")
    spans = [(m.start(), m.end()) for m in re.finditer(r"[A-Z][^.]+\.", TEXT)]
    chunks = make_chunks(document, spans, dimension=8, seed=4)
    store.write_documents([(document, chunks, CentralitySummarizer(slots=2).summarize(chunks))])
    hits = [
        Hit(
            chunk_id=c.id or 0,
            document=document.uri,
            title="Visa",
            ordinal=c.ordinal,
            start=c.start,
            end=c.end,
            text=c.text,
            score=0.5,
            rank=i + 1,
        )
        for i, c in enumerate(chunks)
    ]
    return store, hits, chunks


def _decoder(store: Store, model: Path, **params: Any) -> TransformersDecoder:
    decoder = TransformersDecoder(model=str(model), **params)
    decoder.bind(RunContext(store=store))
    return decoder


def test_causal_model_with_chat_template_answers_and_cites(small: Any, causal_dir: Path) -> None:
    store, hits, chunks = small
    decoder = _decoder(store, causal_dir, max_tokens=3, budget=200)
    context = decoder.prompt_context("What do founders need?", chunks[0].vector, hits)
    answer = decoder.run(query="What do founders need?", query_vector=chunks[0].vector, hits=hits)["answer"]
    assert answer.text == "[2] [2] [2]"
    assert answer.generated and answer.labels == [2] and answer.citations == [context.items[1].citation]
    assert TEXT[answer.citations[0].start : answer.citations[0].end] == context.items[1].text
    assert any("cut at max_tokens=3" in note for note in answer.notes)
    model = decoder.model
    assert isinstance(model, TransformersModel) and model.chat_template and not model.seq2seq
    assert model.device == "cpu" and model.context_tokens == 1024  # from the config's n_positions
    rendered = model.render(context.messages)
    assert rendered.startswith("<s> system: ") and rendered.endswith("<s> assistant:")
    assert context.prompt_tokens == len(model.tokenizer(rendered, add_special_tokens=False)["input_ids"]) <= 200


def test_streaming_gives_the_same_answer_as_run(small: Any, causal_dir: Path) -> None:
    store, hits, chunks = small
    decoder = _decoder(store, causal_dir, max_tokens=4, budget=200)
    pieces: list[str] = []
    answer = drain(decoder.stream(query="visa?", query_vector=chunks[0].vector, hits=hits), pieces.append)
    assert len(pieces) >= 2 and "".join(pieces).strip() == answer.text == "[2] [2] [2] [2]"
    assert answer.labels == [2]


def test_the_prompt_never_exceeds_the_budget(small: Any, causal_dir: Path) -> None:
    store, hits, chunks = small
    counts = []
    for budget in (80, 100, 120, 160, 400):
        decoder = _decoder(store, causal_dir, max_tokens=2, budget=budget)
        context = decoder.prompt_context("What do founders need?", chunks[0].vector, hits)
        assert context.prompt_tokens <= budget
        counts.append(len(context.items))
    assert counts == sorted(counts) and counts[0] < counts[-1] == len(chunks)
    with pytest.raises(MemflowError, match="the question alone needs"):
        _decoder(store, causal_dir, budget=40).prompt_context("What do founders need?", chunks[0].vector, hits)


def test_seq2seq_model_without_chat_template(small: Any, seq2seq_dir: Path) -> None:
    store, hits, chunks = small
    decoder = _decoder(store, seq2seq_dir, max_tokens=5, budget=150)
    context = decoder.prompt_context("What do founders need?", chunks[0].vector, hits)
    answer = decoder.run(query="What do founders need?", query_vector=chunks[0].vector, hits=hits)["answer"]
    model = decoder.model
    assert isinstance(model, TransformersModel) and model.seq2seq and not model.chat_template
    assert model.context_tokens == 512  # neither the config nor the tokenizer says: the fallback
    assert context.prompt_tokens == len(model.tokenizer(model.render(context.messages))["input_ids"]) <= 150
    assert answer.generated and len(answer.text.split()) <= 5
    given = {item.label for item in context.items}
    assert set(answer.labels) <= given and len(answer.citations) == len(answer.labels)
    assert answer.labels or any("rests on no citation" in note for note in answer.notes)


def test_missing_model_and_bad_parameters(tmp_path: Path) -> None:
    with pytest.raises(MemflowError, match="config.json is missing"):
        load_transformers(str(tmp_path))
    check_component(TransformersDecoder, params={"model": str(tmp_path)})
    for bad in ({"context_tokens": -1}, {"max_tokens": 0}, {"temperature": -1.0}, {"max_items": 0}):
        with pytest.raises(ValueError):
            TransformersDecoder(model=str(tmp_path), **bad)  # type: ignore[arg-type]


# -- the abstractive summary on the tiny model ------------------------------------------------------------


class Scripted:
    """A real model with scripted failures or replies: raises on call ``fail_at``, or always answers ``reply``."""

    def __init__(self, real: TransformersModel, *, fail_at: int | None = None, reply: str | None = None) -> None:
        self.real, self.fail_at, self.reply, self.calls = real, fail_at, reply, 0
        self.name, self.context_tokens = real.name, real.context_tokens

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    def prompt_tokens(self, messages: list[ChatMessage]) -> int:
        return self.real.prompt_tokens(messages)

    def complete(self, messages: list[ChatMessage], *, max_tokens: int, temperature: float) -> Completion:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt  # an interrupted update, mid-document
        if self.reply is not None:
            return Completion(self.reply, finish_reason="stop")
        return self.real.complete(messages, max_tokens=max_tokens, temperature=temperature)


def _summarizer(causal_dir: Path, **params: Any) -> AbstractiveSummarizer:
    return AbstractiveSummarizer(backend="transformers", model=str(causal_dir), context_tokens=1024, **params)


def test_written_summary_is_stored_within_its_budget_and_survives_an_interruption(small: Any, causal_dir: Path) -> None:
    store, _, chunks = small
    summarizer = _summarizer(causal_dir, max_tokens=8)
    real = summarizer.model
    assert isinstance(real, TransformersModel)
    summarizer._model = Scripted(real, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        summarizer.summarize_stored(store, "/essays/visa.txt")
    document = store.find_document("/essays/visa.txt")
    assert document is not None
    kept = store.written_summaries([document.id])[document.id]
    assert kept.chunks_seen == 2 and kept.read_until == chunks[1].end  # the last complete step, not lost
    assert kept.text == "[2] [2] [2] [2] [2] [2] [2] [2]" and kept.tokens == 8 == kept.budget
    resumed = Scripted(real)
    summarizer._model = resumed
    done = summarizer.summarize_stored(store, "visa.txt")
    assert resumed.calls == len(chunks) - 2  # continued where it stopped
    assert done.chunks_seen == len(chunks) and done.read_until == chunks[-1].end and done.tokens <= 8
    assert store.written_summaries([document.id])[document.id] == done
    store.forget(["/essays/visa.txt"])
    assert store.written_summaries([document.id]) == {}  # deleted with its document


def test_an_overlong_summary_is_reasked_then_cut_to_the_budget(causal_dir: Path) -> None:
    summarizer = _summarizer(causal_dir, max_tokens=8)
    real = summarizer.model
    assert isinstance(real, TransformersModel)
    long = "Founders need a startup visa. Cats purr when they are content. Dogs bark at night. " * 3
    assert real.count_tokens(long) > 8
    assert summarizer.fit(long) == "[2] [2] [2] [2] [2] [2] [2] [2]"  # the re-ask's answer fits
    summarizer._model = Scripted(real, reply=long)  # a model that ignores the request to shorten
    cut = summarizer.fit(long)
    assert cut == "Founders need a startup visa." and real.count_tokens(cut) <= 8
    words = "Founders from abroad need a startup visa now please"
    assert truncate_to_tokens(real, words, 4) == "Founders from abroad need"
    for budget in range(0, 30, 3):
        assert real.count_tokens(truncate_to_tokens(real, long, budget)) <= budget


def test_abstractive_parameters_are_checked() -> None:
    check_component(AbstractiveSummarizer, params={"max_tokens": 64})
    for bad in ({"max_tokens": 4}, {"max_tokens": 600, "context_tokens": 2048}, {"temperature": -0.5}):
        with pytest.raises(ValueError):
            AbstractiveSummarizer(**bad)  # type: ignore[arg-type]
