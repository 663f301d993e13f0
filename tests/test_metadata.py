"""Metadata end to end: what loaders find and what add is given, on every Hit, Citation and --json."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from memflow import Memory, RecordError
from memflow.cli.main import cli
from memflow.metadata import json_metadata, lenient_metadata


def test_strict_and_lenient_conversion() -> None:
    value = {"when": dt.datetime(2024, 1, 2, 3, 4, 5), "nested": {"day": dt.date(2024, 1, 2)}, "n": [1, 2.5]}
    assert json_metadata(value) == {"when": "2024-01-02T03:04:05", "nested": {"day": "2024-01-02"}, "n": [1, 2.5]}
    with pytest.raises(RecordError, match=r"metadata\['nested'\]\['x'\]: a bytes cannot be stored"):
        json_metadata({"nested": {"x": b"raw"}})
    odd = {"keep": "yes", 3: "int key", "nan": float("nan"), "nested": {"ok": 1, "bad": {1, 2}}}
    assert lenient_metadata(odd) == {"keep": "yes", "nested": {"ok": 1}}


ESSAY_NOTE = """\
---
title: Founder visas
author: Paul Graham
date: 2009-04-01
tags: [startups, immigration]
---

# Founder visas

The US should let founders in. A founder visa would let the government increase the number of startups
at no cost: the founders bring their own money, and startups create jobs.
"""


def test_metadata_reaches_hits_citations_and_json_and_survives_re_ingest(tmp_path: Path) -> None:
    note = tmp_path / "visa.md"
    note.write_text(ESSAY_NOTE, encoding="utf-8")
    store = tmp_path / "store"
    with Memory(store) as memory:
        memory.ingest([str(note)])
        memory.add(
            "Alice applied for a founder visa in March and got it in June.",
            ids="alice-visa",
            metadata={"user": "alice", "when": dt.date(2024, 6, 1)},
        )
        hits = {h.document: h for h in memory.search("founder visa", k=5)}
        file_meta = hits[str(note.resolve())].metadata
        assert {k: file_meta[k] for k in ("title", "author", "date", "tags", "loader")} == {
            "title": "Founder visas",
            "author": "Paul Graham",
            "date": "2009-04-01",
            "tags": ["startups", "immigration"],
            "loader": "markdown",
        }
        assert file_meta["modified"] == dt.datetime.fromtimestamp(note.stat().st_mtime, tz=dt.timezone.utc).isoformat(
            timespec="seconds"
        )
        assert hits["alice-visa"].metadata == {"user": "alice", "when": "2024-06-01"}
        answer = memory.ask("What could the government do to increase the number of startups at no cost?")
        assert answer.citations and all(c.metadata for c in answer.citations)
        for evidence in answer.evidence:
            expected = memory.get(evidence.citation.document)
            assert expected is not None and dict(evidence.citation.metadata) == expected.metadata
        assert hits["alice-visa"].citation.metadata == {"user": "alice", "when": "2024-06-01"}

    result = CliRunner().invoke(cli, ["search", "founder visa", "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    by_document = {h["document"]: h for h in json.loads(result.stdout)}
    assert by_document["alice-visa"]["metadata"] == {"user": "alice", "when": "2024-06-01"}
    result = CliRunner().invoke(cli, ["ask", "Who got a founder visa?", "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    assert all("metadata" in c and c["metadata"] for c in json.loads(result.stdout)["citations"])

    # Re-ingest: an untouched file keeps its metadata; a changed one gets its new front matter.
    os.utime(note, (1_700_000_000, 1_700_000_000))
    with Memory(store) as memory:
        report = memory.ingest([str(note)])
        assert report.unchanged == [str(note.resolve())]
        kept = memory.get(str(note.resolve()))
        assert kept is not None and kept.metadata["author"] == "Paul Graham"
        note.write_text(ESSAY_NOTE.replace("author: Paul Graham", "author: PG"), encoding="utf-8")
        memory.ingest([str(note)])
        changed = memory.get(str(note.resolve()))
        assert changed is not None and changed.metadata["author"] == "PG"
        assert {h.metadata.get("author") for h in memory.search("founder visa", k=5)} >= {"PG"}
