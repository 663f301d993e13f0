"""--prune forgets exactly what is gone; links never smuggle in files from outside the given folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from memflow import Memory
from memflow.components.base import RunContext
from memflow.ingest import prune_missing

RECORDS = [
    '{"id": "a", "text": "Apples grow on trees in orchards."}',
    '{"id": "b", "text": "Bananas grow in tropical plantations."}',
    '{"id": "c", "text": "Cherries ripen early in the summer."}',
]


def _uris(memory: Memory) -> set[str]:
    return {Path(d.uri).name for d in memory.documents()}


def test_prune_forgets_deleted_files_and_removed_records_only(tmp_path: Path, pg_essays: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("sun", "nft", "todo"):
        shutil.copy(pg_essays / f"{name}.txt", corpus / f"{name}.txt")
    (corpus / "fruit.jsonl").write_text("\n".join(RECORDS) + "\n", encoding="utf-8")
    (corpus / "veg.jsonl").write_text('{"id": "x", "text": "Carrots are roots."}\n', encoding="utf-8")
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("Stored from another folder, which --prune on corpus must not touch.", encoding="utf-8")
    with Memory(tmp_path / "store") as memory:
        memory.ingest([str(corpus), str(outside)])
        assert len(_uris(memory)) == 3 + 3 + 1 + 1
        (corpus / "nft.txt").unlink()
        (corpus / "fruit.jsonl").write_text(RECORDS[0] + "\n" + RECORDS[2] + "\n", encoding="utf-8")
        (corpus / "veg.jsonl").write_text('{"id": "x", "text": broken\n', encoding="utf-8")
        report = memory.ingest([str(corpus)], prune=True)
        assert sorted(Path(u).name for u in report.pruned) == ["fruit.jsonl#b", "nft.txt"]
        assert _uris(memory) == {
            "sun.txt",
            "todo.txt",
            "fruit.jsonl#a",
            "fruit.jsonl#c",
            "veg.jsonl#x",
            "elsewhere.txt",
        }
        stats = memory.stats()
        assert stats.chunks == stats.vectors
        without = memory.ingest([str(corpus)])
        assert without.pruned == []


def test_links_to_files_outside_the_root_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "private" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("A private note that must stay out of the memory.", encoding="utf-8")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "public.txt").write_text("A public note about gardening.", encoding="utf-8")
    (corpus / "inner.txt").symlink_to(corpus / "public.txt")
    (corpus / "leak.txt").symlink_to(secret)
    with Memory(tmp_path / "store") as memory:
        report = memory.ingest([str(corpus)])
        assert _uris(memory) == {"public.txt"}
        assert any("leak.txt" in p.source and "outside" in p.reason for p in report.problems)


def test_prune_under_the_filesystem_root_reaches_every_file_and_no_record(tmp_path: Path) -> None:
    """A root of "/" holds every path (a containment test by ``root + "/"`` would find none under "//")."""
    note = tmp_path / "note.txt"
    note.write_text("A note that is deleted after it was ingested.", encoding="utf-8")
    with Memory(tmp_path / "store") as memory:
        memory.ingest([str(note)])
        memory.add(["A record, which has no file to lose."], ids=["record"])
        note.unlink()
        context = RunContext(store=memory.store, collection="default")
        assert prune_missing(memory.store, ["/"], [], context) == [str(note)]
        assert [d.uri for d in memory.documents()] == ["record"]
