"""memflow mcp with the MCP SDK's own client against a real subprocess, over stdio (as a desktop agent starts
it, from the README's config) and over streamable HTTP behind the bearer token."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp", reason="memflow mcp needs the mcp extra")

from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from memflow.testing import free_port  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "mcp-token-0123456789abcdef"
TOOLS = {"search", "ask", "add", "forget", "summary", "list_documents", "stats"}


def readme_config(store: Path) -> StdioServerParameters:
    """The stdio server the README's MCP client config describes, pointed at ``store``."""
    block = re.search(r"```json\n(\{\s*\"mcpServers\".*?)\n```", README.read_text(), re.DOTALL)
    assert block, "README.md shows no mcpServers JSON config"
    server = json.loads(block.group(1))["mcpServers"]["memflow"]
    args = [str(store) if arg == "/path/to/storage" else arg for arg in server["args"]]
    assert server["command"] == "memflow" and "mcp" in args
    # the test runs the same command through this interpreter's memflow
    return StdioServerParameters(command=sys.executable, args=["-m", "memflow.cli.main", *args[args.index("mcp") :]])


def call(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def exercise(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40
        assert tool.input_schema["type"] == "object"
    assert tools["search"].input_schema["properties"]["k"]["maximum"] == 100

    assert call(await client.call_tool("search", {"query": "anything"})) == {"hits": []}
    texts = [
        "Alice prefers green tea in the morning and never drinks coffee.",
        "Bob drinks black coffee late at night while he writes.",
        "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.",
    ]
    added = call(await client.call_tool("add", {"texts": texts, "ids": ["alice", "bob", "tower"]}))
    assert added == {"ids": ["alice", "bob", "tower"]}
    await client.call_tool("add", {"texts": ["Alice's cat is called Miso."], "metadata": {"user": "alice"}})

    hits = call(await client.call_tool("search", {"query": "When was the Eiffel Tower finished?", "k": 2}))["hits"]
    assert hits[0]["document"] == "tower" and hits[0]["text"] == texts[2]
    assert {"start", "end", "chunk_id", "metadata"} <= set(hits[0])
    only = call(await client.call_tool("search", {"query": "cat", "where": {"user": "alice"}}))["hits"]
    assert [h["metadata"] for h in only] == [{"user": "alice"}]

    answer = call(await client.call_tool("ask", {"question": "What does Bob drink?"}))
    assert "coffee" in answer["answer"] and answer["citations"][0]["document"] == "bob"

    listed = call(await client.call_tool("list_documents", {"limit": 2}))
    assert listed["total"] == 4 and [d["id"] for d in listed["documents"]] == ["alice", "bob"]
    state = call(await client.call_tool("summary", {"document": "tower"}))
    assert state["sentences"][0]["text"] == texts[2]
    assert call(await client.call_tool("stats", {}))["documents"] == 4

    assert call(await client.call_tool("forget", {"ids": ["bob"]})) == {"deleted": 1}
    after = call(await client.call_tool("search", {"query": "coffee at night", "k": 5}))["hits"]
    assert "bob" not in [h["document"] for h in after]

    refused = await client.call_tool("search", {"query": "x", "k": 0})
    assert refused.is_error
    bad_filter = await client.call_tool("search", {"query": "x", "where": {"user": {"$regex": "a"}}})
    assert bad_filter.is_error and "$regex" in bad_filter.content[0].text
    missing = await client.call_tool("summary", {"document": "no-such-document"})
    assert missing.is_error and "no document" in missing.content[0].text


def test_over_stdio_as_the_readme_config_starts_it(tmp_path: Path) -> None:
    async def run() -> None:
        async with Client(readme_config(tmp_path / "store"), read_timeout_seconds=180) as client:
            await exercise(client)

    anyio.run(run)


@pytest.fixture()
def http_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "memflow.cli.main", "mcp", "--http", "--port", str(port), "--token", TOKEN]
    log = (tmp_path / "mcp.log").open("w+b")
    process = subprocess.Popen([*command, "--store", str(tmp_path / "store")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "mcp.log").read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "memflow mcp --http did not listen in time"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_over_streamable_http_behind_the_token(http_server: str) -> None:
    import httpx2

    async def run() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
            Client(streamable_http_client(http_server, http_client=http)) as client,
        ):
            await exercise(client)

    anyio.run(run)
    refused = httpx2.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401
    wrong = httpx2.post(http_server, json={}, headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert wrong.status_code == 401


def test_beside_the_http_api_in_memflow_serve(tmp_path: Path) -> None:
    """``memflow serve --mcp``: the HTTP API and MCP on one port, one warm memory, one token."""
    import httpx2

    from memflow.testing import running_server

    with running_server(tmp_path / "store", "--mcp", token=TOKEN) as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}

        async def run() -> None:
            async with (
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
                Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
            ):
                await exercise(client)

        anyio.run(run)
        # what the agent stored is the HTTP API's memory too
        found = httpx2.post(f"{url}/search", json={"query": "Eiffel Tower", "k": 1}, headers=headers).json()
        assert found["hits"][0]["document"] == "tower"
        assert httpx2.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401
        assert httpx2.get(f"{url}/healthz").status_code == 200
