"""memflow's errors as HTTP answers: one JSON body ``{"error": "...", "field"?: "..."}`` with a status that
says whose fault it is. Bad input is a 4xx naming the field; a store that cannot be written is a 503 (locked,
unreadable), 403 (read-only: reads are served) or 507 (disk full); anything unforeseen is a 500 whose details
stay in the server's log."""

from __future__ import annotations

import errno
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from memflow.errors import (
    MemflowError,
    ReadOnlyStoreError,
    RecordError,
    StorageFullError,
    StoreError,
    StoreLockedError,
)
from memflow.filters import FilterError

__all__ = ["NotFound", "FieldError", "bad_field", "add_error_handlers"]

log = logging.getLogger("memflow.server")

#: errno values that mean the disk (or the user's quota) is full: 507 Insufficient Storage.
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class NotFound(MemflowError):
    """No such document (404)."""


class FieldError(MemflowError, ValueError):
    """A request field (a query parameter) that is malformed (422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def bad_field(field: str, message: str) -> FieldError:
    return FieldError(field, message)


def _error(status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def _validation(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, RequestValidationError)
    content_type = request.headers.get("content-type", "")
    if request.method in ("POST", "PUT", "PATCH") and "json" not in content_type and "multipart" not in content_type:
        # FastAPI reads a body as JSON only when it says it is (a browser page cannot then post to a local
        # server without a CORS preflight)
        return _error(415, f"send the body as JSON with Content-Type: application/json (got {content_type!r})")
    errors = list(exc.errors())
    first: dict[str, Any] = dict(errors[0]) if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        context = first.get("ctx") or {}
        return _error(400, f"malformed JSON body: {context.get('error', first['msg'])}")
    # loc is ("body", "k") or ("query", "limit") or ("body", "records", 0, "text"): name the field users wrote
    loc = [str(part) for part in first.get("loc", ())[1:]]
    name = ".".join(loc) if loc else "body"
    if first.get("type") == "model_attributes_type" or (not loc and first.get("type") == "dict_type"):
        return _error(422, f"the body must be a JSON object: {first['msg']}", field="body")
    return _error(422, f"{name}: {first['msg']}", field=name)


def _memflow(_: Request, exc: Exception) -> Any:
    if isinstance(exc, NotFound):
        return _error(404, str(exc))
    if isinstance(exc, FieldError):
        return _error(422, str(exc), field=exc.field)
    if isinstance(exc, FilterError):
        return _error(422, f"where: {exc}", field="where")
    if isinstance(exc, RecordError):
        return _error(422, str(exc))
    if isinstance(exc, StorageFullError):
        return _error(507, str(exc))
    if isinstance(exc, ReadOnlyStoreError):  # as a read-only index block answers elsewhere: reads go on
        return _error(403, str(exc))
    if isinstance(exc, StoreLockedError):
        return _error(503, str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, StoreError):
        return _error(503, f"the store cannot serve this now: {exc}")
    return _error(400, str(exc))


def _os(_: Request, exc: Exception) -> Any:
    assert isinstance(exc, OSError)
    if exc.errno in _FULL:
        return _error(507, f"the store's disk is full: {exc.strerror}; nothing of this request was kept")
    log.error("storage error: %s", exc)
    return _error(503, f"storage error: {exc.strerror or exc}")


def _http(_: Request, exc: Exception) -> Any:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


def _unexpected(_: Request, exc: Exception) -> Any:
    log.error("request failed", exc_info=exc)
    return _error(500, "internal server error (the server's log has the details)")


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(MemflowError, _memflow)
    app.add_exception_handler(OSError, _os)
    app.add_exception_handler(Exception, _unexpected)
