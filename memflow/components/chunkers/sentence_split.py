"""A fast, dependency-free sentence segmenter that returns exact character spans.

Why our own: pysbd and blingfire have had no release since 2021, and nltk's punkt needs a separate data
download (memflow never downloads anything at run time). Chunking needs spans, not strings, so that
``document.text[start:end]`` is the sentence exactly; a small rule set over compiled regexes gives that and
runs in linear time on any input.

Every boundary this module emits lies right after punctuation or at a newline. The encoder's (BERT)
pre-tokenizer always separates words there, so counting a sentence's tokens from a tokenization of the
whole document gives the same number as tokenizing the sentence alone -- the chunkers rely on that.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator

__all__ = ["split_sentences", "iter_sentences", "ABBREVIATIONS"]

_TERMINATORS = ".!?\u2026"  # . ! ? and the ellipsis character
_CLOSERS = "\"')]}\u2019\u201d\u00bb\u203a"  # " ' ) ] } and the typographic closing quotes
_OPENERS = "\"'([{\u2018\u201c\u00ab\u2039"

# Lower-case forms, without the final period; a period after one of these never ends a sentence.
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "jr", "sr", "inc", "ltd", "corp", "bros", "vs", "etc", "al", "cf",
        "approx", "dept", "govt", "univ", "assn", "viz", "capt", "sgt", "figs", "eqs", "refs", "vols",
    }
)  # fmt: skip
# Abbreviations only when capitalised: in lower case each is also a common word that can end a sentence
# ("a fig.", "the co-op's rep.").
_TITLE_ABBREVIATIONS = frozenset(
    {
        "st", "co", "fig", "eq", "ref", "vol", "ch", "sec", "ed", "eds", "gen", "gov", "sen", "rep", "col",
        "lt", "mt", "ave", "rd", "blvd", "jan", "feb", "apr", "aug", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip
# These are abbreviations only before a number ("No. 5", "pp. 12"); "the answer is no. Then" ends a sentence.
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "p", "pp", "art", "para", "op"})

_CLOSE_CLASS = re.escape(_CLOSERS)
# Three scans, each a pattern that begins with a character class or a literal so the regex engine skips
# ahead in C; an alternation of them, or a leading look-behind, makes the engine try every position in
# Python-visible steps and runs several times slower. The look-behind after the first terminator makes a
# run of terminators match only from its first character, so a long run of dots with no space after it
# is not re-scanned from every position (which would be quadratic).
_TERM = re.compile(
    rf"[{_TERMINATORS}](?<![{_TERMINATORS}]{{2}})(?P<run>[{_TERMINATORS}]*)[{_CLOSE_CLASS}]*"
    # followed by space and something other than a lower-case ASCII letter, or glued to a capitalised word
    r"(?=\s+[^\sa-z]|[A-Z\u00c0-\u00d6\u00d8-\u00de][a-z\u00df-\u00f6\u00f8-\u00ff])"
)
# A blank line, or a newline before a list item ("- ", "* ", "\u2022 ", "1. ", "2) ").
_LINE = re.compile(r"\n(?:[^\S\n]*\n)+|\n(?=[^\S\n]*(?:[-*\u2022\u2023\u25e6\u2013]|\d{1,3}[.)])[^\S\n])")
# Chinese and Japanese full stops need no space after them.
_CJK_STOPS = "\u3002\uff01\uff1f"
_CJK = re.compile(rf"[{_CJK_STOPS}](?<![{_CJK_STOPS}]{{2}})[{_CJK_STOPS}]*[{_CLOSE_CLASS}\u300d\u300f\uff09]*")
_NONSPACE = re.compile(r"\S")
# A word before a glued period ("broken.The way"): code and URLs carry these, prose does not.
_NOT_PROSE = re.compile(r"[./\\@:_=<>#0-9]")
_DOTTED = re.compile(r"[^\s.!?/@:]*[./@:]\w")
_WORD_WINDOW = 40


def _word_before(text: str, pos: int, lo: int) -> str:
    """The whitespace-delimited word that ends at ``pos``, without leading quotes or brackets."""
    window = text[max(lo, pos - _WORD_WINDOW) : pos]
    if not window or window[-1].isspace():
        return ""
    return window.rsplit(None, 1)[-1].lstrip(_OPENERS)


def _is_abbreviation(word: str, following: str) -> bool:
    lowered = word.lower()
    if lowered in ABBREVIATIONS or (lowered in _TITLE_ABBREVIATIONS and word[0].isupper()):
        return True
    if lowered in _NUMBER_ABBREVIATIONS and following.isdigit():
        return True
    if len(word) == 1 and word.isupper():  # an initial: "J. K. Rowling"
        return True
    # Dotted forms: e.g, i.e, U.S, a.m, Ph.D -- every part one or two letters.
    parts = word.split(".")
    return len(parts) > 1 and all(0 < len(part) <= 2 and part.isalpha() for part in parts)


def _starts_sentence(char: str) -> bool:
    return char.isupper() or char.istitle() or char.isdigit() or char in _OPENERS


def _ends_sentence(text: str, match: re.Match[str], lo: int, hi: int) -> bool:
    """Whether the terminators in ``match`` end a sentence (the boundary is ``match.end()``)."""
    after = match.end()
    if after >= hi:
        return False  # the end of the range closes the sentence anyway
    run_start = match.start()
    following = text[after]
    if following.isspace():
        nonspace = _NONSPACE.search(text, after, hi)
        if nonspace is None:
            return False
        following = text[nonspace.start()]
        if not _starts_sentence(following):
            return False  # "wait... and then", "3 p.m. tomorrow"
    else:
        # Text extracted from HTML often loses the space between sentences ("broken.The way Apple").
        # The pattern let through only a capitalised word; split after a lower-case prose word, never
        # inside code, numbers or URLs.
        word = _word_before(text, run_start, lo)
        if len(word) < 2 or not word[-1].islower() or not word[-2].isalpha() or _NOT_PROSE.search(word):
            return False
        if _DOTTED.match(text, after, min(hi, after + _WORD_WINDOW)):
            return False  # "www.Example.com", "one.Two.Three": a name with dots, not two sentences
    if text[run_start] == "." and not match.group("run"):
        word = _word_before(text, run_start, lo)
        if word and _is_abbreviation(word, following):
            return False
    return True


def _term_cuts(text: str, lo: int, hi: int) -> Iterator[int]:
    for match in _TERM.finditer(text, lo, hi):
        if _ends_sentence(text, match, lo, hi):
            yield match.end()


def _line_cuts(text: str, lo: int, hi: int) -> Iterator[int]:
    for match in _LINE.finditer(text, lo, hi):
        yield match.start()


def _cjk_cuts(text: str, lo: int, hi: int) -> Iterator[int]:
    for match in _CJK.finditer(text, lo, hi):
        yield match.end()


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    first = _NONSPACE.search(text, start, end)
    if first is None:
        return None
    start = first.start()
    # The copy is at most one segment long, and segments do not overlap, so this stays linear.
    return start, start + len(text[start:end].rstrip())


def iter_sentences(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` spans of the sentences in ``text[start:end]``, in order.

    Spans are offsets into ``text``, never include surrounding whitespace, never overlap, and together
    hold every non-whitespace character of the range.
    """
    hi = len(text) if end is None else min(end, len(text))
    lo = max(0, start)
    segment = lo
    cuts = heapq.merge(_term_cuts(text, lo, hi), _line_cuts(text, lo, hi), _cjk_cuts(text, lo, hi))
    for cut in cuts:
        if cut <= segment:
            continue
        span = _strip(text, segment, cut)
        if span is not None:
            yield span
        segment = cut
    if segment < hi:
        span = _strip(text, segment, hi)
        if span is not None:
            yield span


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of the sentences in ``text[start:end]``: ``text[s:e]`` is a sentence."""
    return list(iter_sentences(text, start, end))
