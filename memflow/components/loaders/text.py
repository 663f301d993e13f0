"""The plain-text loader: one document per ``.txt`` file.

Bytes are decoded as UTF-8 (a BOM is honored and dropped), else by charset-normalizer's detection.
The text is kept as decoded except that ``\\r\\n`` and lone ``\\r`` line endings become ``\\n``, so span
offsets are the same whichever platform wrote the file. Binary and empty files are skipped.
"""

from __future__ import annotations

from pathlib import Path

from memflow.components.loaders._common import (
    SingleDocumentLoader,
    SkippedInput,
    decode_bytes,
    normalize_newlines,
    sha256_hex,
)
from memflow.types import Document

__all__ = ["TextLoader"]


class TextLoader(SingleDocumentLoader):
    """Plain text files. ``encoding`` forces a codec instead of BOM/UTF-8/detection."""

    def __init__(self, *, encoding: str | None = None) -> None:
        self.encoding = encoding

    def load_bytes(self, raw: bytes, path: Path) -> Document:
        text, encoding = decode_bytes(raw, path, encoding=self.encoding)
        text = normalize_newlines(text)
        if not text.strip():
            raise SkippedInput(path, "empty file")
        return Document(
            uri=str(path),
            text=text,
            content_hash=sha256_hex(raw),
            title=path.stem,
            metadata={"path": str(path), "loader": "text", "encoding": encoding},
        )
