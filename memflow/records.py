"""Records: texts an application adds to its memory by id, with metadata, checked and made into Documents.

A record is stored as a document whose URI is its id. Adding an id again with other text, title or
metadata replaces the stored record (its chunks, vectors, lexical entries and summary state); adding it
unchanged is skipped. Without ids, a record's id is a digest of its text, title and metadata, so adding the
same record twice stores it once.

Everything is checked before anything is written: ids and metadata of the wrong type or length, metadata
that JSON cannot hold, empty texts and duplicate ids are refused with a :class:`RecordError` naming the
argument (``texts[3]``, ``metadata[1]['when']``), and the store is left as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memflow.errors import InputError, RecordError
from memflow.metadata import json_metadata
from memflow.types import DEFAULT_COLLECTION, Document

__all__ = ["Record", "RecordInput", "MetadataInput", "record_documents", "records_from_jsonl", "MAX_ID_LENGTH"]

#: The longest id the store keeps (its document URI column).
MAX_ID_LENGTH = 2048

#: One thing to add: a text, a mapping ``{"text", "id"?, "title"?, "metadata"?}`` (the JSONL record form)
#: or a :class:`Document` (its ``uri`` is the id).
RecordInput = str | Mapping[str, Any] | Document
MetadataInput = Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None

_RECORD_KEYS = {"text", "id", "_id", "title", "metadata"}


@dataclass(frozen=True, slots=True)
class Record:
    """A stored document read back by id: its text, title, metadata, how many chunks it was cut into, and
    its collection."""

    id: str
    text: str
    title: str
    metadata: dict[str, Any]
    chunks: int
    collection: str = DEFAULT_COLLECTION


def _checked_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{where} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(f"{where} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise RecordError(f"{where} is {len(value)} characters long; ids are at most {MAX_ID_LENGTH}")
    return value


def _per_record(value: Any, count: int, name: str, *, single: type | tuple[type, ...]) -> list[Any]:
    """``value`` spread over ``count`` records: one value for all, or a sequence of exactly ``count``."""
    if value is None:
        return [None] * count
    if isinstance(value, single):
        return [value] * count
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise RecordError(f"{name} must be a list with one entry per text, got {type(value).__name__}")
    if len(value) != count:
        raise RecordError(f"{name} has {len(value)} entries for {count} text{'s' if count != 1 else ''}")
    return list(value)


def _digest(text: str, title: str, metadata: Mapping[str, Any]) -> str:
    canonical = json.dumps([text, title, metadata], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record_documents(
    texts: RecordInput | Iterable[RecordInput],
    *,
    ids: str | Sequence[str] | None = None,
    metadata: MetadataInput = None,
) -> list[Document]:
    """The Documents that adding ``texts`` stores, checked (see the module docstring).

    ``ids`` gives one id per text (a single string when adding one text); ``metadata`` is one dict for every
    text or a list with one dict (or None) per text, merged over a mapping record's own ``metadata``.
    Raises RecordError, naming the argument, before anything is made."""
    items: list[Any] = [texts] if isinstance(texts, str | Mapping | Document) else list(texts)
    if not items:
        raise RecordError("texts is empty: give a text or a list of texts")
    if isinstance(ids, str):
        ids = [ids]
    given_ids = _per_record(ids, len(items), "ids", single=())
    given_meta = _per_record(metadata, len(items), "metadata", single=Mapping)
    documents: list[Document] = []
    seen: dict[str, int] = {}
    for n, (item, record_id, extra) in enumerate(zip(items, given_ids, given_meta, strict=True)):
        where = f"texts[{n}]"
        own: Mapping[str, Any] = {}
        text: Any
        own_id: Any
        title: Any = ""
        sections = []
        if isinstance(item, Document):
            text, own_id, title, sections = item.text, item.uri, item.title, list(item.sections)
            own = json_metadata(item.metadata, where=f"{where}.metadata")
        elif isinstance(item, Mapping):
            unknown = sorted(str(k) for k in item if k not in _RECORD_KEYS)
            if unknown:
                raise RecordError(f"{where}: unknown field {unknown[0]!r}; a record has text, id, title, metadata")
            text, own_id = item.get("text"), item.get("id", item.get("_id"))
            title = item.get("title") or ""
            if not isinstance(title, str):
                raise RecordError(f"{where}['title'] must be a string, got {type(title).__name__}")
            own = json_metadata(item.get("metadata") or {}, where=f"{where}['metadata']")
        elif isinstance(item, str):
            text, own_id = item, None
        else:
            raise RecordError(f"{where} must be a string or a record dict, got {type(item).__name__}")
        if not isinstance(text, str):
            raise RecordError(f"{where}: the text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise RecordError(f"{where} is empty (nothing to store)")
        if own_id is not None and record_id is not None and own_id != record_id:
            raise RecordError(f"{where} has id {own_id!r} and ids[{n}] is {record_id!r}; give one")
        meta = dict(own)
        if extra is not None:
            where_meta = "metadata" if isinstance(metadata, Mapping) else f"metadata[{n}]"
            meta.update(json_metadata(extra, where=where_meta))
        digest = _digest(text, title, meta)
        if record_id is not None:
            doc_id = _checked_id(record_id, f"ids[{n}]")
        elif own_id is not None:
            doc_id = _checked_id(own_id, f"{where}['id']")
        else:
            doc_id = digest[:16]
        if doc_id in seen:
            raise RecordError(f"{where}: id {doc_id!r} is also texts[{seen[doc_id]}]'s; ids must be unique in one add")
        seen[doc_id] = n
        documents.append(
            Document(uri=doc_id, text=text, content_hash=digest, title=title, metadata=meta, sections=sections)
        )
    return documents


def records_from_jsonl(lines: Iterable[str], *, source: str) -> list[dict[str, Any]]:
    """The records of a JSONL stream (one object a line, blank lines skipped), each a mapping for
    :func:`record_documents`; a line that is not a valid record is an InputError naming ``source:line``."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(source, f"not valid JSON ({error.msg})", line=number) from None
        if not isinstance(record, dict):
            raise InputError(source, f"a record must be a JSON object, got {type(record).__name__}", line=number)
        try:
            record_documents(record)
        except RecordError as error:
            raise InputError(source, str(error).replace("texts[0]", "the record"), line=number) from None
        records.append(record)
    return records


def checked_collection(name: str) -> str:
    """``name`` if it can name a collection (a non-empty string of at most 128 characters)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise RecordError(f"collection must be a non-empty string of at most 128 characters, got {name!r}")
    return name
