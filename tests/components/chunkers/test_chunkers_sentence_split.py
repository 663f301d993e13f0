"""The sentence splitter: rules, exact spans, and linear time on inputs built to trip regexes."""

from __future__ import annotations

import time

import pytest

from memflow.components.chunkers.sentence_split import iter_sentences, split_sentences
from memflow.types import Document
from tests.components.chunkers.checks import nonspace_mask


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith went home. He slept.", ["Mr. Smith went home.", "He slept."]),
        (
            "Mrs. Jones and Dr. Who met St. Peter. Then Prof. X left.",
            ["Mrs. Jones and Dr. Who met St. Peter.", "Then Prof. X left."],
        ),
        # "etc." is taken as an abbreviation even where it ends a sentence: a missed split costs less than
        # a wrong one inside a sentence.
        (
            "Use tools, e.g. Python, i.e. Snakes etc. They work.",
            ["Use tools, e.g. Python, i.e. Snakes etc. They work."],
        ),
        (
            "Apple vs. Microsoft was big. See Fig. 3 and No. 5. Done.",
            ["Apple vs. Microsoft was big.", "See Fig. 3 and No. 5.", "Done."],
        ),
        (
            "The U.S. Army is big. Acme Inc. Sells things.",
            ["The U.S. Army is big.", "Acme Inc. Sells things."],
        ),
        ("Sammy Davis Jr. Was there. Sr. Ana too.", ["Sammy Davis Jr. Was there.", "Sr. Ana too."]),
        (
            "We met at 3 p.m. Then ate. At 9 a.m. Tomorrow.",
            ["We met at 3 p.m. Then ate.", "At 9 a.m. Tomorrow."],
        ),
        (
            "J. K. Rowling wrote it. George R. R. Martin too.",
            ["J. K. Rowling wrote it.", "George R. R. Martin too."],
        ),
        ("Pi is 3.14 roughly. E is 2.718. Ok.", ["Pi is 3.14 roughly.", "E is 2.718.", "Ok."]),
        ("It costs $4.50. The answer is no. Then go.", ["It costs $4.50.", "The answer is no.", "Then go."]),
        (
            "Wait... and then it happened. Wow... Then nothing.",
            ["Wait... and then it happened.", "Wow...", "Then nothing."],
        ),
        ("So\u2026 it goes\u2026 On and on.", ["So\u2026 it goes\u2026", "On and on."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("She asked \u201cwhy?\u201d Nobody knew.", ["She asked \u201cwhy?\u201d", "Nobody knew."]),
        ("(This is an aside.) The main text.", ["(This is an aside.)", "The main text."]),
        ('It ended. "Next," he said.', ["It ended.", '"Next," he said.']),
        ("Really? Yes! No.", ["Really?", "Yes!", "No."]),
        (
            "We sat in the sun. Then we ate a fig. St. Ives is far.",
            ["We sat in the sun.", "Then we ate a fig.", "St. Ives is far."],
        ),
        ("Is it? yes it is.", ["Is it? yes it is."]),
        ("Chapter 12. The end.", ["Chapter 12.", "The end."]),
        ("Dots.... Many. Then!!! More?!", ["Dots....", "Many.", "Then!!!", "More?!"]),
        # Glued sentences, as HTML-to-text extraction leaves them (the PG essays are full of these).
        (
            "it's broken.The way Apple runs it is bad.So there.",
            ["it's broken.", "The way Apple runs it is bad.", "So there."],
        ),
        ("Read the docs.)Thanks to all.", ["Read the docs.)", "Thanks to all."]),
        (
            "Call java.util.List or www.Example.com or e.g.This or U.S.Army.",
            ["Call java.util.List or www.Example.com or e.g.This or U.S.Army."],
        ),
        ("line one\nline two. Next one", ["line one\nline two.", "Next one"]),
        ("Title\n\nFirst para. Second.\n \n\nThird", ["Title", "First para.", "Second.", "Third"]),
        (
            "Items:\n- one\n- two\n* three\n1. four\n2) five",
            ["Items:", "- one", "- two", "* three", "1. four", "2) five"],
        ),
        ("这是第一句。这是第二句！好吗？", ["这是第一句。", "这是第二句！", "好吗？"]),
        ("   padded sentence.   ", ["padded sentence."]),
        ("no terminator at all", ["no terminator at all"]),
        ("", []),
        (" \n\t ", []),
    ],
)
def test_rules(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_range_restricts_and_offsets_stay_absolute() -> None:
    text = "Skip this. Keep one. Keep two. Skip that."
    start = text.index("Keep one")
    end = text.index(" Skip that")
    spans = split_sentences(text, start, end)
    assert [text[s:e] for s, e in spans] == ["Keep one.", "Keep two."]
    assert spans[0][0] == start
    assert list(iter_sentences(text, start, end)) == spans
    assert split_sentences(text, 5, 5) == []
    assert split_sentences(text, 0, 10_000) == split_sentences(text)


def assert_exact_partition(text: str, spans: list[tuple[int, int]]) -> None:
    position = 0
    mask = nonspace_mask(text)
    covered = 0
    for start, end in spans:
        assert position <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()
        assert text[position:start].strip() == ""
        covered += int(mask[start:end].sum())
        position = end
    assert text[position:].strip() == ""
    assert covered == int(mask.sum())


def test_pg_essays_partition_exactly(pg_documents: list[Document]) -> None:
    total = 0
    for document in pg_documents:
        spans = split_sentences(document.text)
        assert_exact_partition(document.text, spans)
        total += len(spans)
    assert 6000 < total < 8000  # 644 kB of prose: about one sentence per 95 characters


def test_pg_glued_sentences_are_split(pg_documents: list[Document]) -> None:
    apple = next(d for d in pg_documents if d.uri.endswith("apple.txt"))
    found = sentences(apple.text)
    assert (
        "The way Apple runs the App Store has harmed their reputation with\nprogrammers more than "
        "anything else they've ever done." in found
    )
    assert "Their fundamental problem is\nthat they don't understand software." in found


@pytest.mark.parametrize(
    "piece",
    ["Mr. ", ".", " ", "\n \n", "a. ", "x.", "ab.Cd", "\u2026 ", "\n- ", "abcdefghij"],
)
def test_linear_time_on_pathological_input(piece: str) -> None:
    text = piece * (1_000_000 // len(piece))
    began = time.perf_counter()
    spans = split_sentences(text)
    elapsed = time.perf_counter() - began
    # Quadratic behaviour on 1 MB would take hours; linear takes a second or two at worst.
    assert elapsed < 10, f"{elapsed:.1f}s for {piece!r}"
    assert_exact_partition(text, spans)


def test_many_megabytes_without_newlines(pg_documents: list[Document]) -> None:
    prose = " ".join(d.text for d in pg_documents).replace("\n", " ")
    text = prose * 5  # about 3.2 MB on one line
    began = time.perf_counter()
    spans = split_sentences(text)
    elapsed = time.perf_counter() - began
    assert elapsed < 10, f"{elapsed:.1f}s for {len(text)} characters"
    assert len(spans) > 5 * 6000
    assert_exact_partition(text, spans)
