"""The JSONL loader: one document per line of a ``.jsonl`` file (UTF-8, as JSON Lines requires).

Each line is an object ``{"id" or "_id", "text", "title"?, "metadata"?}`` — the BEIR corpus format
loads as is. A document's ``uri`` is ``<resolved path>#<id>``; a line without an id takes its line
number as id (positional, so it changes if lines move). Its text is the ``text`` field alone (the title
is kept in ``title``, not prepended), its ``content_hash`` is the sha256 of the line, and its metadata
is the record's other fields and its ``metadata`` object (which wins over a field of the same name), plus
``path``, ``loader``, ``id``, ``line`` and the file's ``modified`` time. A bad line is
reported with its line number and the other lines still load; blank lines are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memflow.components.loaders._common import (
    ErrorHandler,
    Loader,
    SkippedInput,
    modified_time,
    normalize_newlines,
    open_regular,
    os_reason,
    resolve_path,
    sha256_hex,
)
from memflow.errors import InputError
from memflow.types import Document

__all__ = ["JSONLLoader"]


class JSONLLoader(Loader):
    """JSON Lines files. ``id_field`` (default: ``_id`` then ``id``), ``text_field`` and ``title_field``
    name the fields to read, for corpora that spell them differently."""

    def __init__(self, *, id_field: str | None = None, text_field: str = "text", title_field: str = "title") -> None:
        self.id_field = id_field
        self.text_field = text_field
        self.title_field = title_field

    def load_file(self, path: str | Path, *, on_error: ErrorHandler | None = None) -> list[Document]:
        return list(self.iter_documents(path, on_error=on_error))

    def iter_documents(self, path: str | Path, *, on_error: ErrorHandler | None = None) -> Iterator[Document]:
        """The file's documents, read line by line (a large corpus file is never held whole).

        A bad line goes to ``on_error`` (an InputError with ``line`` set) and loading goes on; without
        ``on_error`` it is raised. A file that cannot be opened or read raises InputError.
        """
        resolved = resolve_path(path)
        modified = modified_time(resolved)
        seen: dict[str, int] = {}
        content = False
        with open_regular(resolved) as fh:
            number = 0
            while True:
                try:
                    raw = fh.readline()
                except OSError as exc:
                    raise InputError(resolved, os_reason(exc), line=number + 1) from exc
                if not raw:
                    break
                number += 1
                line = raw.rstrip(b"\r\n")
                if number == 1:
                    line = line.removeprefix(b"\xef\xbb\xbf")
                if not line.strip():
                    continue
                content = True
                try:
                    document = self._parse_line(line, resolved, number, seen, modified)
                except InputError as error:
                    if on_error is None:
                        raise
                    on_error(error)
                    continue
                yield document
        if not content:
            raise SkippedInput(resolved, "empty file")

    def _parse_line(
        self, line: bytes, path: Path, number: int, seen: dict[str, int], modified: str | None = None
    ) -> Document:
        def bad(reason: str) -> InputError:
            return InputError(path, reason, line=number)

        try:
            record = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise bad(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
        except json.JSONDecodeError as exc:
            raise bad(f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
        if not isinstance(record, dict):
            raise bad(f"expected a JSON object, got {type(record).__name__}")

        id_fields = (self.id_field,) if self.id_field else ("_id", "id")
        raw_id = next((record[f] for f in id_fields if record.get(f) is not None), None)
        if raw_id is None:
            doc_id = str(number)
        elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip():
            doc_id = str(raw_id).strip()
        else:
            raise bad(f"id must be a non-empty string or an integer, got {raw_id!r}")
        if doc_id in seen:
            raise bad(f"duplicate id {doc_id!r} (first on line {seen[doc_id]})")

        if self.text_field not in record:
            raise bad(f"missing {self.text_field!r} field")
        text = record[self.text_field]
        if not isinstance(text, str):
            raise bad(f"{self.text_field!r} must be a string, got {type(text).__name__}")
        title = record.get(self.title_field)
        if title is not None and not isinstance(title, str):
            raise bad(f"{self.title_field!r} must be a string, got {type(title).__name__}")
        extra = record.get("metadata")
        if extra is not None and not isinstance(extra, dict):
            raise bad(f"'metadata' must be an object, got {type(extra).__name__}")
        seen[doc_id] = number
        if not text.strip():
            raise SkippedInput(path, f"empty text (id {doc_id!r})", line=number)

        own = {self.text_field, self.title_field, "metadata", *id_fields}
        metadata: dict[str, Any] = {k: v for k, v in record.items() if k not in own} | dict(extra or {})
        metadata.update(path=str(path), loader="jsonl", id=doc_id, line=number)
        if modified is not None:
            metadata["modified"] = modified
        return Document(
            uri=f"{path}#{doc_id}",
            text=normalize_newlines(text),
            content_hash=sha256_hex(line),
            title=(title or "").strip() or doc_id,
            metadata=metadata,
        )
