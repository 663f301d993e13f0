"""A chunker plugin: one chunk per paragraph (text between blank lines), short paragraphs merged.

memflow finds it through the entry point in this folder's pyproject.toml once the package is installed
(`pip install ./examples/paragraph_chunker`); a pipeline then names it `chunkers.paragraphs`.
"""

from __future__ import annotations

import re
from typing import Any

from memflow import Chunk, Component, Document, Sentence, Socket
from memflow.components.chunkers.sentence_split import split_sentences
from memflow.models import load_tokenizer

BLANK_LINES = re.compile(r"\n\s*\n")


class ParagraphChunker(Component):
    """Splits each document at blank lines and packs whole paragraphs into chunks of at most ``max_tokens``
    (counted with the encoder's tokenizer). A paragraph longer than that stays one chunk, of which the encoder
    reads its first window: the built-in chunkers.sentences splits such text, this example does not."""

    inputs = {"documents": Socket(list[Document], doc="documents to chunk")}
    outputs = {"chunks": Socket(list[Chunk], doc="chunks, document by document")}

    def __init__(self, *, max_tokens: int = 256, tokenizer: str = "default") -> None:
        if max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer  # kept under its own name: params() reads it back from here
        self._tokens = load_tokenizer(tokenizer)

    def run(self, *, documents: list[Document]) -> dict[str, Any]:
        return {"chunks": [chunk for document in documents for chunk in self.chunk(document)]}

    def chunk(self, document: Document) -> list[Chunk]:
        spans = []  # (start, end, tokens) of the chunks being packed
        for start, end in self._paragraphs(document.text):
            tokens = len(self._tokens.encode(document.text[start:end], add_special_tokens=False).ids)
            if spans and spans[-1][2] + tokens <= self.max_tokens:
                spans[-1] = (spans[-1][0], end, spans[-1][2] + tokens)
            else:
                spans.append((start, end, tokens))
        return [
            Chunk(
                document=document,
                ordinal=ordinal,
                start=start,
                end=end,
                text=document.text[start:end],
                token_count=tokens,
                sentences=[Sentence(s, e, document.text[s:e]) for s, e in split_sentences(document.text, start, end)],
                section=document.section_at(start),
            )
            for ordinal, (start, end, tokens) in enumerate(spans)
        ]

    @staticmethod
    def _paragraphs(text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for gap in [*BLANK_LINES.finditer(text), None]:
            end = gap.start() if gap else len(text)
            piece = text[start:end]
            if piece.strip():
                lead = len(piece) - len(piece.lstrip())
                spans.append((start + lead, start + len(piece.rstrip())))
            start = gap.end() if gap else len(text)
        return spans
