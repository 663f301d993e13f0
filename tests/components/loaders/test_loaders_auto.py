"""The auto loader: walking trees (sorted, hidden skipped, symlink loops), dispatch, and what it reports."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memflow.components import registry
from memflow.components.base import RunContext
from memflow.components.loaders.auto import AutoLoader
from memflow.components.loaders.html import HTMLLoader
from memflow.components.loaders.jsonl import JSONLLoader
from memflow.components.loaders.markdown import MarkdownLoader
from memflow.components.loaders.pdf import PDFLoader
from memflow.components.loaders.text import TextLoader
from memflow.errors import InputError

MakePdf = Callable[..., bytes]  # the make_pdf fixture (conftest.build_pdf)


@pytest.fixture
def tree(tmp_path: Path, make_pdf: MakePdf) -> Path:
    root = tmp_path / "corpus"
    files = {
        "b.txt": b"plain text b",
        "a.md": b"# Heading A\n\nmarkdown body",
        "sub/c.html": b"<h1>C</h1><p>html body</p>",
        "sub/deeper/d.jsonl": b'{"id": "d1", "text": "line one"}\n{"id": "d2", "text": "line two"}\n',
        "sub/e.pdf": make_pdf([["pdf body"]]),
        "sub/notes.TXT": b"upper-case extension",
        "sub/image.png": b"\x89PNG\x00\x00",
        "sub/data.csv": b"a,b\n1,2\n",
        ".hidden.txt": b"hidden file",
        ".git/config.txt": b"hidden dir",
        "sub/.cache/x.md": b"# hidden",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_walk_is_sorted_recursive_and_skips_hidden_and_unknown_types(tree: Path) -> None:
    loader = AutoLoader()
    files = list(loader.iter_files([tree]))
    assert _rel(files, tree) == [
        "a.md",
        "b.txt",
        "sub/c.html",
        "sub/deeper/d.jsonl",
        "sub/e.pdf",
        "sub/notes.TXT",
    ]
    assert loader.context.problems == []


def test_run_dispatches_by_extension(tree: Path) -> None:
    loader = AutoLoader()
    documents = loader.run(paths=[str(tree)])["documents"]
    assert loader.context.problems == []
    by_loader = [(Path(d.metadata["path"]).name, d.metadata["loader"]) for d in documents]
    assert by_loader == [
        ("a.md", "markdown"),
        ("b.txt", "text"),
        ("c.html", "html"),
        ("d.jsonl", "jsonl"),
        ("d.jsonl", "jsonl"),
        ("e.pdf", "pdf"),
        ("notes.TXT", "text"),
    ]
    texts = [d.text for d in documents]
    assert texts == [
        "Heading A\n\nmarkdown body",
        "plain text b",
        "html body",  # the main content; trafilatura takes the page's one heading as its title
        "line one",
        "line two",
        "pdf body",
        "upper-case extension",
    ]


def test_extensions_restrict_what_is_loaded(tree: Path) -> None:
    loader = AutoLoader(extensions=["md", ".HTML"])
    assert _rel(list(loader.iter_files([tree])), tree) == ["a.md", "sub/c.html"]
    assert loader.params() == {"follow_symlinks": False, "extensions": ["md", ".HTML"], "max_bytes": 32 * 2**20}
    with pytest.raises(ValueError, match=r"unsupported extensions \['\.docx'\]"):
        AutoLoader(extensions=[".docx"])
    loader.load_file(tree / "a.md")
    with pytest.raises(InputError, match="'.txt' is not among the selected extensions"):
        loader.load_file(tree / "b.txt")


def test_explicit_files_hidden_or_unsupported(tree: Path) -> None:
    loader = AutoLoader()
    hidden, png = tree / ".hidden.txt", tree / "sub" / "image.png"
    assert list(loader.iter_files([hidden, png, str(tree / "b.txt")])) == [hidden, tree / "b.txt"]
    (problem,) = loader.context.problems
    assert (problem.source, problem.kind) == (str(png), "skipped")
    assert "unsupported file type '.png'" in problem.reason


def test_a_symlink_loop_does_not_hang(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tree / "sub" / "loop").symlink_to(tree, target_is_directory=True)
    (tree / "sub" / "self").symlink_to(tree / "sub", target_is_directory=True)
    listed: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: str) -> Any:
        # A walk that loops would list directories forever: fail instead of hanging the suite.
        listed.append(path)
        assert len(listed) < 50, "the walk is looping"
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    expected = ["a.md", "b.txt", "sub/c.html", "sub/deeper/d.jsonl", "sub/e.pdf", "sub/notes.TXT"]
    assert _rel(list(AutoLoader().iter_files([tree])), tree) == expected
    following = AutoLoader(follow_symlinks=True)
    assert _rel(list(following.iter_files([tree])), tree) == expected
    assert following.context.problems == []


def test_follow_symlinks_enters_linked_directories_once(tmp_path: Path, tree: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "z.txt").write_text("outside text")
    (tree / "linked").symlink_to(outside, target_is_directory=True)
    (tree / "again").symlink_to(outside, target_is_directory=True)
    (tree / "b-copy.txt").symlink_to(tree / "b.txt")
    assert "linked/z.txt" not in _rel(list(AutoLoader().iter_files([tree])), tree)
    files = _rel(list(AutoLoader(follow_symlinks=True).iter_files([tree])), tree)
    # b.txt is b-copy.txt (a link, sorted first) so it comes once; "linked" is "again", entered already.
    assert files == ["a.md", "again/z.txt", "b-copy.txt", "sub/c.html", "sub/deeper/d.jsonl", "sub/e.pdf",
                     "sub/notes.TXT"]  # fmt: skip


def test_missing_paths_broken_links_and_special_files_are_reported(tmp_path: Path, tree: Path) -> None:
    missing = tmp_path / "nope"
    broken = tree / "broken.md"
    broken.symlink_to(tmp_path / "gone.md")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    ctx = RunContext()
    loader = AutoLoader()
    loader.bind(ctx)
    documents = loader.run(paths=[str(missing), str(tree), str(fifo)])["documents"]
    assert len(documents) == 7
    assert [(p.source, p.reason) for p in ctx.problems] == [
        (str(missing), "no such file or directory"),
        (str(broken), "broken symbolic link"),
        (str(fifo), "not a regular file"),
    ]


def test_bad_files_are_reported_and_the_rest_loads(tree: Path) -> None:
    (tree / "sub" / "empty.txt").write_bytes(b"")
    (tree / "sub" / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (tree / "sub" / "bad.pdf").write_bytes(b"%PDF-1.4\ntruncated")
    (tree / "sub" / "deeper" / "d.jsonl").write_text('{"id": "ok", "text": "fine"}\n{broken\n')
    loader = AutoLoader()
    documents = loader.run(paths=[str(tree)])["documents"]
    assert len(documents) == 6
    sources = {Path(p.source).name: p.kind for p in loader.context.problems}
    assert sources == {
        "bad.pdf": "failed",
        "binary.txt": "skipped",
        "d.jsonl:2": "failed",
        "empty.txt": "skipped",
    }


def test_unreadable_directory_and_file_are_reported(tree: Path) -> None:
    locked_dir, locked_file = tree / "sub" / "deeper", tree / "b.txt"
    locked_dir.chmod(0)
    locked_file.chmod(0)
    try:
        if os.access(locked_file, os.R_OK):
            pytest.skip("running with privileges that ignore file permissions (root)")
        loader = AutoLoader()
        documents = loader.run(paths=[str(tree)])["documents"]
        assert "d.jsonl" not in {Path(d.metadata["path"]).name for d in documents}
        reasons = {Path(p.source).name: p.reason for p in loader.context.problems}
        assert reasons == {"deeper": "permission denied", "b.txt": "permission denied"}
    finally:
        locked_dir.chmod(0o755)
        locked_file.chmod(0o644)


def test_missing_pypdf_skips_only_the_pdfs(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pypdf", None)
    loader = AutoLoader()
    documents = loader.run(paths=[str(tree)])["documents"]
    assert len(documents) == 6
    (problem,) = loader.context.problems
    assert problem.source.endswith("e.pdf") and "memflow[pdf]" in problem.reason


def test_an_unexpected_parser_failure_is_reported_not_raised(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: HTMLLoader, raw: bytes, path: Path) -> None:
        raise RecursionError("parser bug")

    monkeypatch.setattr(HTMLLoader, "load_bytes", broken)
    loader = AutoLoader()
    documents = loader.run(paths=[str(tree)])["documents"]
    assert len(documents) == 6
    (problem,) = loader.context.problems
    assert problem.source.endswith("c.html")
    assert problem.reason == "unexpected error: RecursionError: parser bug"


def test_pg_essays_walk(pg_essays: Path, tmp_path: Path) -> None:
    # A copy, so a symlink can be added; the shared data stay read-only.
    corpus = tmp_path / "essays"
    shutil.copytree(pg_essays, corpus)
    (corpus / "up").symlink_to(tmp_path, target_is_directory=True)
    loader = AutoLoader(follow_symlinks=True)
    documents = loader.run(paths=[str(corpus)])["documents"]
    assert [Path(d.uri).name for d in documents] == sorted(p.name for p in pg_essays.glob("*.txt"))
    assert loader.context.problems == []


def test_loaders_are_registered_components() -> None:
    expected = {
        "loaders.auto": AutoLoader,
        "loaders.text": TextLoader,
        "loaders.markdown": MarkdownLoader,
        "loaders.html": HTMLLoader,
        "loaders.pdf": PDFLoader,
        "loaders.jsonl": JSONLLoader,
    }
    for name, cls in expected.items():
        assert registry.resolve(name) is cls
        assert set(cls.inputs) == {"paths"} and set(cls.outputs) == {"documents"}
