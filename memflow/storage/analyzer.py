"""The lexical analysis: how a text becomes index terms, for the BM25 index and everything that compares
words with it (rerankers, answer attribution). Lower-cased word characters, possessive "'s" removed,
Lucene's English stop words dropped, stemmed with the Snowball English stemmer (PyStemmer): what Lucene's
EnglishAnalyzer does, which BEIR's BM25 baselines use. No SQL here, so a component can tokenize without the
store's modules."""

from __future__ import annotations

import re
import threading
from typing import Any

from memflow.errors import MemflowError

__all__ = ["tokenize", "STOP_WORDS", "TOKENIZER", "MAX_TERM"]

#: Names the analysis; a store records it, and one indexed with another is re-indexed on first use.
TOKENIZER = "lower-possessive-lucene33-snowball_en/1"
#: The longest term kept (a longer one is no word a question will hold).
MAX_TERM = 64

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (what BEIR's Anserini/Pyserini BM25 runs drop).
STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    }
)
_POSSESSIVE = re.compile(r"['\u2019]s\b")
_WORD = re.compile(r"[^\W_]+")


_local = threading.local()


def _stemmer() -> Any:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:  # PyStemmer objects are not thread-safe: one per thread
        try:
            import Stemmer
        except ImportError as exc:
            raise MemflowError(
                "the lexical (BM25) index needs PyStemmer, a memflow dependency: "
                "pip install PyStemmer (or reinstall memflow)"
            ) from exc
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def tokenize(text: str) -> list[str]:
    """Index terms of ``text``: lower-cased words, no possessives, no stop words, stemmed."""
    words = [w for w in _WORD.findall(_POSSESSIVE.sub("", text.lower())) if w not in STOP_WORDS]
    return [t for t in _stemmer().stemWords(words) if len(t) <= MAX_TERM]
