"""The plain-text loader on the real essays and on files written to exercise decoding and skipping."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from memflow.components.base import RunContext
from memflow.components.loaders._common import SkippedInput
from memflow.components.loaders.text import TextLoader
from memflow.errors import InputError

FRENCH = "Le cœur a ses raisons que la raison ne connaît point. Élève, où êtes-vous allé? Déjà l'été à Noël."
GERMAN = "Größere Übungen für Müller: Straße, Grüße und schöne Bücher. Mädchen gehen über die Brücke."


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_every_pg_essay_loads_as_one_document_with_a_stable_hash(pg_essays: Path) -> None:
    files = sorted(pg_essays.glob("*.txt"))
    assert len(files) >= 40
    loader = TextLoader()
    documents = loader.run(paths=[str(f) for f in files])["documents"]
    assert loader.context.problems == []
    assert [d.uri for d in documents] == [str(f.resolve()) for f in files]
    for path, doc in zip(files, documents, strict=True):
        raw = path.read_bytes()
        assert doc.text.strip()
        assert doc.text == raw.decode("utf-8").replace("\r\n", "\n")
        assert doc.content_hash == hashlib.sha256(raw).hexdigest()
        assert doc.title == path.stem
        assert doc.metadata["loader"] == "text"
        assert doc.metadata["path"] == str(path.resolve())
    again = TextLoader().run(paths=[str(f) for f in files])["documents"]
    assert [d.content_hash for d in again] == [d.content_hash for d in documents]


def test_line_endings_are_normalized_and_a_utf8_bom_dropped(tmp_path: Path) -> None:
    path = _write(tmp_path / "crlf.txt", b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    (doc,) = TextLoader().load_file(path)
    assert doc.text == "one\ntwo\nthree\n"
    assert doc.metadata["encoding"] == "utf-8"


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("latin-1", f"{FRENCH.replace('œ', 'oe')} {GERMAN}"),
        ("cp1252", f"“Smart quotes” — and ‘single’ ones… {FRENCH}"),
        ("cp1252", "He said “hello” — twice… café"),
    ],
)
def test_legacy_western_encodings_are_detected(tmp_path: Path, encoding: str, text: str) -> None:
    path = _write(tmp_path / "legacy.txt", text.encode(encoding))
    (doc,) = TextLoader().load_file(path)
    assert doc.text == text
    assert doc.metadata["encoding"] == "cp1252"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_a_bom_are_decoded(tmp_path: Path, codec: str) -> None:
    text = f"{GERMAN}\r\n{FRENCH}\n日本語も。"
    raw = ("\ufeff" + text).encode(codec) if codec.endswith("-be") else text.encode(codec)
    (doc,) = TextLoader().load_file(_write(tmp_path / f"{codec}.txt", raw))
    assert doc.text == text.replace("\r\n", "\n")
    assert doc.content_hash == hashlib.sha256(raw).hexdigest()


def test_cyrillic_cp1251_is_not_taken_for_western(tmp_path: Path) -> None:
    text = "Все счастливые семьи похожи друг на друга, каждая несчастливая семья несчастлива по-своему."
    (doc,) = TextLoader().load_file(_write(tmp_path / "ru.txt", text.encode("cp1251")))
    assert doc.text == text


def test_a_forced_encoding_overrides_detection(tmp_path: Path) -> None:
    path = _write(tmp_path / "forced.txt", "naïve".encode("latin-1"))
    (doc,) = TextLoader(encoding="latin-1").load_file(path)
    assert doc.text == "naïve"
    with pytest.raises(InputError, match="cannot decode as utf-8"):
        TextLoader(encoding="utf-8").load_file(path)


def test_binary_file_is_skipped_with_a_report_naming_it(tmp_path: Path) -> None:
    binary = _write(tmp_path / "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    good = _write(tmp_path / "good.txt", b"fine text")
    with pytest.raises(SkippedInput, match="binary") as err:
        TextLoader().load_file(binary)
    assert err.value.path == str(binary)

    loader = TextLoader()
    documents = loader.run(paths=[str(binary), str(good)])["documents"]
    assert [d.text for d in documents] == ["fine text"]
    (problem,) = loader.context.problems
    assert problem.source == str(binary)
    assert "binary" in problem.reason
    assert problem.kind == "skipped"


@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n  "])
def test_empty_and_whitespace_files_are_reported(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "empty.txt", content)
    loader = TextLoader()
    assert loader.run(paths=[str(path)])["documents"] == []
    (problem,) = loader.context.problems
    assert (problem.source, problem.reason) == (str(path), "empty file")


def test_missing_file_directory_and_fifo_are_errors_not_hangs(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    directory = tmp_path / "dir.txt"
    directory.mkdir()
    missing = tmp_path / "missing.txt"
    ctx = RunContext()
    loader = TextLoader()
    loader.bind(ctx)
    assert loader.run(paths=[str(fifo), str(directory), str(missing)])["documents"] == []
    assert [(p.source, p.reason) for p in ctx.problems] == [
        (str(fifo), "not a regular file"),
        (str(directory), "is a directory"),
        (str(missing), "no such file or directory"),
    ]


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path / "secret.txt", b"hidden")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running with privileges that ignore file permissions (root)")
        loader = TextLoader()
        assert loader.run(paths=[str(path)])["documents"] == []
        (problem,) = loader.context.problems
        assert (problem.source, problem.reason) == (str(path), "permission denied")
    finally:
        path.chmod(0o644)


def test_uri_is_the_resolved_path_and_params_are_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "a.txt", b"alpha")
    (tmp_path / "link.txt").symlink_to(tmp_path / "a.txt")
    monkeypatch.chdir(tmp_path)
    (doc,) = TextLoader().load_file("link.txt")
    assert doc.uri == str((tmp_path / "a.txt").resolve())
    assert TextLoader(encoding="cp1252").params() == {"encoding": "cp1252"}
