"""memflow serve is safe by default, each case against a real server process: a bearer token on every route
but /healthz, a refusal to listen off loopback without one, and bad input answered with a 4xx JSON error that
names the field (never a 500, never a traceback)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memflow.testing import running_server

TOKEN = "security-token-0123456789"
MAX_BODY = 50_000

ROUTES = [
    ("POST", "/search", {"query": "x"}),
    ("POST", "/ask", {"question": "x"}),
    ("POST", "/documents", {"records": [{"text": "x"}]}),
    ("POST", "/documents/delete", {"ids": ["x"]}),
    ("GET", "/documents", None),
    ("GET", "/documents/some-id", None),
    ("GET", "/documents/some-id/summary", None),
    ("DELETE", "/documents/some-id", None),
    ("GET", "/collections", None),
    ("GET", "/stats", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("guarded-store")
    log = tmp_path_factory.mktemp("guarded-log") / "serve.log"
    with running_server(store, "--max-body", str(MAX_BODY), token=TOKEN, log=log) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            text = "The Eiffel Tower is in Paris. It was finished in 1889 for the World's Fair."
            record = {"id": "tower", "text": text, "metadata": {"city": "Paris"}}
            client.post("/documents", json={"records": [record]}).raise_for_status()
        yield base


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_every_route_but_healthz_needs_the_token(url: str, method: str, path: str, body: dict | None) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        answer = httpx.request(method, url + path, json=body, headers=headers)
        assert answer.status_code == 401, (path, headers, answer.text)
        assert "bearer token" in answer.json()["error"]
        assert answer.headers["www-authenticate"].startswith("Bearer")
    allowed = httpx.request(method, url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code != 401


def test_healthz_answers_without_a_token(url: str) -> None:
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}


BAD_INPUT = [
    # (method, path, json body or raw bytes, status, field named)
    ("POST", "/search", b'{"query": "x"', 400, None),
    ("POST", "/search", b"[1, 2]", 422, "body"),
    ("POST", "/search", {"query": 3}, 422, "query"),
    ("POST", "/search", {"query": ""}, 422, "query"),
    ("POST", "/search", {"query": "x", "k": 0}, 422, "k"),
    ("POST", "/search", {"query": "x", "k": 10**9}, 422, "k"),
    ("POST", "/search", {"query": "x", "k": "5"}, 422, "k"),
    ("POST", "/search", {"query": "x", "top_k": 5}, 422, "top_k"),
    ("POST", "/search", {"query": "x", "where": {"city": {"$regex": ".*"}}}, 422, "where"),
    ("POST", "/search", {"query": "x", "where": {"$or": 3}}, 422, "where"),
    ("POST", "/search", {"query": "x", "where": [1]}, 422, "where"),
    ("POST", "/search", {"query": "x", "collection": ""}, 422, "collection"),
    ("POST", "/ask", {"question": "x", "stream": "yes"}, 422, "stream"),
    ("POST", "/documents", {"records": []}, 422, "records"),
    ("POST", "/documents", {"records": [{"id": "a"}]}, 422, "records.0.text"),
    ("POST", "/documents", {"records": [{"text": "x", "metadata": {"a": float("inf")}}]}, 422, "records"),
    ("POST", "/documents", {"records": [{"text": "   "}]}, 422, "records"),
    ("POST", "/documents/delete", {}, 422, None),
    ("GET", "/documents?limit=0", None, 422, "limit"),
    ("GET", "/documents?offset=-1", None, 422, "offset"),
    ("GET", "/documents?where=%7Bbad", None, 422, "where"),
    ("GET", "/documents?where=%5B1%5D", None, 422, "where"),
    ("GET", "/documents/no-such-id", None, 404, None),
    ("DELETE", "/documents/no-such-id", None, 404, None),
    ("GET", "/documents/no-such-id/summary", None, 404, None),
    ("GET", "/no-such-route", None, 404, None),
    ("PUT", "/search", {"query": "x"}, 405, None),
]


@pytest.mark.parametrize("method,path,body,status,field", BAD_INPUT)
def test_bad_input_is_a_4xx_json_error_naming_the_field(
    url: str, method: str, path: str, body: object, status: int, field: str | None
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    if isinstance(body, bytes):
        answer = httpx.request(method, url + path, content=body, headers=headers)
    elif body is None:
        answer = httpx.request(method, url + path, headers=headers)
    else:
        answer = httpx.request(method, url + path, content=_json(body), headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert isinstance(error["error"], str) and "Traceback" not in error["error"] and "\n" not in error["error"]
    if field is not None:
        assert error["field"] == field, error


def _json(body: object) -> bytes:
    import json

    return json.dumps(body).encode()  # allow_nan: a client may send Infinity, which strict JSON has not


def test_a_body_without_json_content_type_is_refused(url: str) -> None:
    answer = httpx.post(url + "/search", content=b'{"query": "x"}', headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]


def test_bodies_over_the_limit_are_refused_by_length_and_while_streaming(url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    before = httpx.get(url + "/stats", headers=headers).json()["documents"]
    big = {"records": [{"text": "word " * (MAX_BODY // 4)}]}
    answer = httpx.post(url + "/documents", json=big, headers=headers)
    assert answer.status_code == 413 and "limit" in answer.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"records": [{"text": "'
        for _ in range(MAX_BODY // 1000 + 2):
            yield b"word " * 200
        yield b'"}]}'

    answer = httpx.post(url + "/documents", content=chunks(), headers=headers)
    assert answer.status_code == 413
    stats = httpx.get(url + "/stats", headers=headers).json()
    assert stats["documents"] == before  # nothing of a refused request was stored


def test_the_stored_record_survives_every_bad_request(url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    record = httpx.get(url + "/documents/tower", headers=headers).json()
    assert record["metadata"] == {"city": "Paris"}
    hits = httpx.post(url + "/search", json={"query": "When was the Eiffel Tower finished?"}, headers=headers)
    assert hits.json()["hits"][0]["document"] == "tower"


def _serve(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "memflow.cli.main", "serve", "--store", str(tmp_path / "s"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=_without_token())


def _without_token() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "MEMFLOW_TOKEN"}


def test_listening_off_loopback_without_a_token_is_refused_at_start(tmp_path: Path) -> None:
    run = _serve("--host", "0.0.0.0", "--port", "1", tmp_path=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "error: refusing to serve on 0.0.0.0 without a token: give --token (or MEMFLOW_TOKEN)"
    )
    assert not (tmp_path / "s").exists()  # refused before anything was opened or created


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    run = _serve("--token", "short", tmp_path=tmp_path)
    assert run.returncode == 1 and "at least 16 characters" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
