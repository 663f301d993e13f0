"""What the HTTP API accepts: one pydantic model per request body, strict about names and bounds, so a bad
request is a 422 naming its field before any work is done."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SearchRequest",
    "AskRequest",
    "RecordIn",
    "AddRequest",
    "DeleteRequest",
    "IngestRequest",
    "MAX_K",
    "MAX_TEXT",
]

#: The most hits a request may ask for (a memory-sized answer, not a dump of the store).
MAX_K = 1000
#: The longest question or query, in characters.
MAX_TEXT = 10_000


class _Strict(BaseModel):
    # Unknown fields are a mistake worth naming (a typo of "where" would otherwise search unfiltered).
    model_config = ConfigDict(extra="forbid", strict=True)


class SearchRequest(_Strict):
    query: str = Field(min_length=1, max_length=MAX_TEXT)
    k: int = Field(default=10, ge=1, le=MAX_K)
    where: dict[str, Any] | None = None
    collection: str | None = Field(default=None, min_length=1, max_length=128)
    pipeline: str | None = Field(default=None, min_length=1, max_length=200)


class AskRequest(_Strict):
    question: str = Field(min_length=1, max_length=MAX_TEXT)
    k: int | None = Field(default=None, ge=1, le=MAX_K)
    where: dict[str, Any] | None = None
    collection: str | None = Field(default=None, min_length=1, max_length=128)
    pipeline: str | None = Field(default=None, min_length=1, max_length=200)
    stream: bool = False


class RecordIn(_Strict):
    text: str
    id: str | None = Field(default=None, min_length=1, max_length=1024)
    title: str | None = None
    metadata: dict[str, Any] | None = None


class AddRequest(_Strict):
    records: list[RecordIn] = Field(min_length=1, max_length=10_000)
    collection: str | None = Field(default=None, min_length=1, max_length=128)


class IngestRequest(_Strict):
    paths: list[str] = Field(min_length=1, max_length=1000)
    collection: str | None = Field(default=None, min_length=1, max_length=128)
    prune: bool = False


class DeleteRequest(_Strict):
    ids: list[str] | None = Field(default=None, max_length=100_000)
    where: dict[str, Any] | None = None
    collection: str | None = Field(default=None, min_length=1, max_length=128)
