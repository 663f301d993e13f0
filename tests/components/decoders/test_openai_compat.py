"""decoders.openai against a real OpenAI-compatible HTTP server started by the test on 127.0.0.1.

The server (the standard library's http.server in a thread) speaks the chat-completions protocol, JSON and
server-sent events, plus llama.cpp's /tokenize (one token per whitespace-separated word); each test scripts
what it answers, including a 429 and a 500 before a success.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memflow import Memory
from memflow.answering import drain
from memflow.cli.main import cli
from memflow.components.base import RunContext
from memflow.components.decoders.openai_compat import OpenAIDecoder
from memflow.components.summarizers.centrality import CentralitySummarizer
from memflow.errors import MemflowError
from memflow.storage.store import Store
from memflow.testing import check_component, make_chunks, make_document
from memflow.types import Chunk, Hit

KEY = "sk-test-7f3a9c-never-log-me"
TEXT = (
    "Founders from abroad need a startup visa. Startup investors can vouch for real startups. "
    "The market decides who counts as a startup. Cats purr when they are content. Dogs bark at night."
)


@dataclass
class Script:
    """What the server answers next (a list of (status, body) for chat completions) and what it saw."""

    replies: list[tuple[int, str]] = field(default_factory=list)
    stream: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    tokenize: bool = True


def _completion(text: str) -> str:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split())},
        }
    )


@pytest.fixture()
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

        def _send(
            self, status: int, body: str, content_type: str = "application/json", headers: dict[str, str] | None = None
        ) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/tokenize":
                if not script.tokenize:
                    self._send(404, '{"error": "not found"}')
                    return
                self._send(200, json.dumps({"tokens": list(range(len(body["content"].split())))}))
                return
            assert self.path == "/v1/chat/completions", self.path
            script.requests.append(body)
            script.headers.append(dict(self.headers))
            if body.get("stream"):
                events = (
                    "".join(
                        f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': piece}}]})}\n\n"
                        for piece in script.stream
                    )
                    + "data: [DONE]\n\n"
                )
                self._send(200, events, "text/event-stream")
                return
            status, reply = script.replies.pop(0)
            extra = {"Retry-After": "0"} if status == 429 else None
            self._send(status, reply if status == 200 else json.dumps({"error": {"message": reply}}), headers=extra)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def small(tmp_path: Path) -> tuple[Store, list[Hit], list[Chunk]]:
    """A store holding TEXT, one sentence a chunk, with vectors chosen at random (the attention's answer is
    then known: the sentence whose vector is the query)."""
    store = Store(tmp_path / "store")
    store.check_encoder("test", 8, record=True)
    store.check_index("Flat")
    document = make_document(TEXT, uri="/essays/visa.txt", title="Visa")
    spans = [(m.start(), m.end()) for m in re.finditer(r"[^.]+\.", TEXT)]
    spans = [(s + (TEXT[s] == " "), e) for s, e in spans]
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


def _decoder(base_url: str, store: Store, **params: Any) -> OpenAIDecoder:
    decoder = OpenAIDecoder(base_url=base_url, model="test-model", backoff=0.01, **params)
    decoder.bind(RunContext(store=store))
    return decoder


def test_cited_numbers_map_to_document_chunk_and_span(
    server: tuple[str, Script], small: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, script = server
    store, hits, chunks = small
    monkeypatch.setenv("MEMFLOW_OPENAI_API_KEY", KEY)
    script.replies = [(200, _completion("Founders need a startup visa [1]; investors vouch [2]. Also [1]."))]
    decoder = _decoder(base_url, store, summary_share=0.0)
    context = decoder.prompt_context("What do founders need?", chunks[0].vector, hits)  # type: ignore[arg-type]
    answer = decoder.run(query="What do founders need?", query_vector=chunks[0].vector, hits=hits)["answer"]
    assert answer.generated and answer.labels == [1, 2]
    assert answer.citations == [context.items[0].citation, context.items[1].citation]
    first = answer.citations[0]
    assert TEXT[first.start : first.end] == "Founders from abroad need a startup visa."
    assert first.chunk_id == chunks[0].id and first.document == "/essays/visa.txt"
    assert not any("cited none" in n for n in answer.notes)
    sent = script.requests[0]
    assert sent["model"] == "test-model" and sent["temperature"] == 0.0 and not sent["stream"]
    assert "[1] Founders from abroad need a startup visa." in sent["messages"][1]["content"]
    assert script.headers[0]["Authorization"] == f"Bearer {KEY}"


def test_a_number_never_given_is_no_citation_and_the_answer_says_so(server: tuple[str, Script], small: Any) -> None:
    base_url, script = server
    store, hits, chunks = small
    script.replies = [(200, _completion("Visas [9].")), (200, _completion("The moon is made of green cheese."))]
    decoder = _decoder(base_url, store)
    wrong = decoder.run(query="visa?", query_vector=chunks[0].vector, hits=hits)["answer"]
    assert wrong.citations == [] and wrong.labels == []
    assert any("[9], which it was not given" in n for n in wrong.notes)
    assert any("rests on no citation" in n for n in wrong.notes)
    unsupported = decoder.run(query="visa?", query_vector=chunks[0].vector, hits=hits)["answer"]
    assert unsupported.citations == [] and unsupported.text == "The moon is made of green cheese."
    assert any("rests on no citation" in n for n in unsupported.notes)


def test_an_answer_that_cites_nothing_is_attributed_to_the_items_it_repeats(
    server: tuple[str, Script], small: Any
) -> None:
    base_url, script = server
    store, hits, chunks = small
    script.replies = [
        (200, _completion("Founders from abroad need a visa. Startup investors can vouch for real startups, too."))
    ]
    script.stream = ["Founders from abroad ", "need a visa."]
    decoder = _decoder(base_url, store, summary_share=0.0)
    context = decoder.prompt_context("What do founders need?", chunks[0].vector, hits)  # type: ignore[arg-type]
    by_text = {item.text: item for item in context.items}
    answer = decoder.run(query="What do founders need?", query_vector=chunks[0].vector, hits=hits)["answer"]
    visa = by_text["Founders from abroad need a startup visa."]
    assert answer.citations[0] == visa.citation and answer.labels[0] == visa.label
    assert len(answer.citations) == 2 and "vouch" in TEXT[answer.citations[1].start : answer.citations[1].end]
    assert any("attributed by memflow" in n for n in answer.notes)
    assert not any("rests on no citation" in n for n in answer.notes)
    # the same for a streamed answer: the last item carries the attributed citations
    streamed = drain(decoder.stream(query="What do founders need?", query_vector=chunks[0].vector, hits=hits), None)
    assert streamed.citations == [visa.citation] and any("attributed by memflow" in n for n in streamed.notes)


def test_nothing_retrieved_means_the_model_is_not_asked(server: tuple[str, Script], small: Any) -> None:
    base_url, script = server
    store, _, chunks = small
    answer = _decoder(base_url, store).run(query="visa?", query_vector=chunks[0].vector, hits=[])["answer"]
    assert answer.text == "" and not answer.generated and answer.citations == [] and script.requests == []
    assert "the model was not asked" in answer.notes[0]


@pytest.mark.parametrize("status", [429, 500])
def test_retries_with_backoff_then_succeeds(server: tuple[str, Script], small: Any, status: int) -> None:
    base_url, script = server
    store, hits, chunks = small
    script.replies = [(status, "busy"), (200, _completion("Visa [1]."))]
    decoder = _decoder(base_url, store)
    answer = decoder.run(query="visa?", query_vector=chunks[0].vector, hits=hits)["answer"]
    assert answer.labels == [1] and len(script.requests) == 2
    assert script.requests[0] == script.requests[1]


def test_client_errors_are_not_retried_and_exhausted_retries_fail(server: tuple[str, Script], small: Any) -> None:
    base_url, script = server
    store, hits, chunks = small
    script.replies = [(400, "bad request: no such model")]
    decoder = _decoder(base_url, store, retries=2)
    with pytest.raises(MemflowError, match="HTTP 400: bad request: no such model"):
        decoder.run(query="visa?", query_vector=chunks[0].vector, hits=hits)
    assert len(script.requests) == 1
    script.replies = [(503, "down")] * 3
    with pytest.raises(MemflowError, match="HTTP 503"):
        decoder.run(query="visa?", query_vector=chunks[0].vector, hits=hits)
    assert len(script.requests) == 1 + 3


def test_unreachable_server_is_a_clear_error(small: Any) -> None:
    store, hits, chunks = small
    decoder = _decoder("http://127.0.0.1:9/v1", store, retries=1, connect_timeout=0.5, tokenizer="bytes")
    with pytest.raises(MemflowError, match="cannot reach http://127.0.0.1:9/v1/chat/completions"):
        decoder.run(query="visa?", query_vector=chunks[0].vector, hits=hits)


def test_streaming_yields_pieces_then_the_cited_answer(server: tuple[str, Script], small: Any) -> None:
    base_url, script = server
    store, hits, chunks = small
    script.stream = ["Founders ", "need a ", "visa ", "[1]", "."]
    decoder = _decoder(base_url, store)
    pieces: list[str] = []
    answer = drain(decoder.stream(query="visa?", query_vector=chunks[0].vector, hits=hits), pieces.append)
    assert pieces == script.stream
    assert answer.text == "Founders need a visa [1]." and answer.labels == [1]
    assert script.requests[0]["stream"] is True


def test_prompt_stays_within_the_budget_by_the_servers_tokenizer(server: tuple[str, Script], small: Any) -> None:
    base_url, script = server
    store, hits, chunks = small
    script.replies = [(200, _completion("ok [1]"))] * 2
    for tokenizer, budget in (("server", 110), ("bytes", 450)):
        decoder = _decoder(base_url, store, tokenizer=tokenizer, budget=budget)
        context = decoder.prompt_context("What do founders need?", chunks[0].vector, hits)  # type: ignore[arg-type]
        assert 0 < len(context.items) < len(TEXT.split(". "))  # the budget left some of the evidence out
        assert context.left_out > 0
        assert context.prompt_tokens <= budget
        decoder.run(query="What do founders need?", query_vector=chunks[0].vector, hits=hits)
        sent = script.requests[-1]["messages"]
        if tokenizer == "server":  # what the server counts, plus the template allowance per message
            assert sum(len(m["content"].split()) + 8 for m in sent) + 8 <= budget
        else:
            assert sum(len(m["content"].encode()) + 8 for m in sent) + 8 <= budget


def test_tokenizer_auto_falls_back_to_bytes_without_a_tokenize_endpoint(server: tuple[str, Script], small: Any) -> None:
    base_url, script = server
    store, hits, chunks = small
    script.tokenize = False
    decoder = _decoder(base_url, store, budget=500)
    context = decoder.prompt_context("What do founders need?", chunks[0].vector, hits)  # type: ignore[arg-type]
    assert context.items
    assert context.prompt_tokens == sum(len(m["content"].encode()) + 8 for m in context.messages) + 8 <= 500


def test_the_api_key_is_never_shown_stored_or_logged(
    server: tuple[str, Script], small: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base_url, script = server
    store, hits, chunks = small
    script.replies = [(429, "slow down"), (200, _completion("Visa [1]."))]
    caplog.set_level(logging.DEBUG)
    decoder = _decoder(base_url, store, api_key=KEY)
    decoder.run(query="visa?", query_vector=chunks[0].vector, hits=hits)
    assert script.headers[-1]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(decoder) and KEY not in repr(decoder.model) and KEY not in str(decoder.params())
    assert KEY not in caplog.text
    store.close()
    for path in Path(store.directory).rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    check_component(OpenAIDecoder, params={"api_key": KEY})


def test_parameters_are_checked() -> None:
    for bad in ({"retries": -1}, {"timeout": 0.0}, {"base_url": "ftp://x"}, {"budget": 8}, {"summary_share": 2.0}):
        with pytest.raises(ValueError):
            OpenAIDecoder(**bad)  # type: ignore[arg-type]


def test_cli_streams_a_generated_answer_over_the_essays(
    server: tuple[str, Script], essay_memory: Memory, tmp_path: Path
) -> None:
    base_url, script = server
    script.stream = ["A new class of ", "visa for startup founders ", "[1]."]
    pipeline = tmp_path / "ask-openai.yaml"
    pipeline.write_text(
        "name: ask-openai\ncomponents:\n  embed: {type: encoders.query}\n  retrieve: {type: retrievers.dense}\n"
        f"  decode: {{type: decoders.openai, params: {{base_url: '{base_url}', model: m, budget: 300}}}}\n"
        "connections:\n  - embed.query_vector -> retrieve.query_vector\n  - embed.query_vector -> decode.query_vector\n"
        "  - embed.query -> decode.query\n  - retrieve.hits -> decode.hits\n",
        encoding="utf-8",
    )
    question = "What could the government do to increase the number of startups?"
    store = str(essay_memory.store.directory)
    result = CliRunner().invoke(cli, ["ask", question, "--stream", "--pipeline", str(pipeline), "--store", store])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("A new class of visa for startup founders [1].\n")
    assert "Citations:\n  [1] " in result.output and "foundervisa.txt" in result.output
    prompt = script.requests[0]["messages"][1]["content"]
    assert "[1] The single biggest thing the government could do" in prompt
