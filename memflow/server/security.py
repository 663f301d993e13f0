"""The server's guards, as plain ASGI middleware in front of every route: a bearer token compared in constant
time, and a cap on request body size enforced while the body streams in (a missing or lying Content-Length
buys nothing)."""

from __future__ import annotations

import ipaddress
import json
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TokenGuard", "BodyLimit", "is_loopback", "check_exposure", "OPEN_PATHS", "MIN_TOKEN"]

#: The shortest bearer token a server accepts.
MIN_TOKEN = 16

#: Paths served without a token: a load balancer's liveness probe learns nothing else.
OPEN_PATHS = frozenset({"/healthz"})


async def _reply(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


class TokenGuard:
    """401 for any request but :data:`OPEN_PATHS` without ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not secrets.compare_digest(given, self._expected):
            challenge = [(b"www-authenticate", b'Bearer realm="memflow"')]
            await _reply(send, 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)", challenge)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a request body over ``max_bytes``: refused up front by its Content-Length, else as soon as the
    streamed body passes the limit. The body is read here, within the limit, before the app sees it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over the server's limit of {self.max_bytes} bytes (--max-body)"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _reply(send, 413, message)
            return
        parts: list[bytes] = []
        seen = 0
        while True:
            received = await receive()
            if received["type"] == "http.disconnect":
                return
            part = received.get("body", b"")
            seen += len(part)
            if seen > self.max_bytes:
                await _reply(send, 413, message)
                return
            parts.append(part)
            if not received.get("more_body", False):
                break
        body = b"".join(parts)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # what comes after the body: the client's disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse, before anything is opened, to listen off loopback without a token, or with a short one."""
    from memflow.errors import MemflowError

    if not is_loopback(host) and not token:
        raise MemflowError(f"refusing to serve on {host} without a token: give --token (or MEMFLOW_TOKEN)")
    if token is not None and len(token) < MIN_TOKEN:
        raise MemflowError(
            f"--token must be at least {MIN_TOKEN} characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
