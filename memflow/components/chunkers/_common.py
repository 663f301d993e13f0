"""Helpers the chunkers share: tokenizer access, section lookup, span trimming, parameter checks."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING

from memflow.models import load_tokenizer
from memflow.types import Document

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["TokenCounter", "section_lookup", "strip_span", "require_int"]

_NONSPACE = re.compile(r"\S")


class TokenCounter:
    """The encoder's tokenizer, loaded on first use, with the number of special tokens it adds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tokenizer: Tokenizer | None = None
        self._specials = -1

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            tokenizer = load_tokenizer(self.name)
            # [CLS] and [SEP] for BERT-style encoders: they take room in the model's window too.
            self._specials = len(tokenizer.encode("", add_special_tokens=True).ids)
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def specials(self) -> int:
        self.tokenizer  # noqa: B018 - loading sets the count
        return self._specials

    def count(self, text: str) -> int:
        """Content tokens of ``text`` (without the special tokens)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


def section_lookup(document: Document) -> Callable[[int], str | None]:
    """A fast equivalent of ``document.section_at`` for many offsets (bisect instead of a scan)."""
    sections = document.sections
    starts = [section.start for section in sections]
    if any(later < earlier for earlier, later in zip(starts, starts[1:], strict=False)):
        return document.section_at  # unsorted sections: keep the document's own semantics

    def lookup(offset: int) -> str | None:
        index = bisect_right(starts, offset) - 1
        return sections[index].title if index >= 0 else None

    return lookup


def strip_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(start, end)`` narrowed to exclude surrounding whitespace; None when only whitespace is left."""
    first = _NONSPACE.search(text, start, end)
    if first is None:
        return None
    start = first.start()
    return start, start + len(text[start:end].rstrip())


def require_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value
