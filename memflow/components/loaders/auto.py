"""The auto loader: files and directory trees in, each file read by the loader its extension names.

Directories are walked depth-first in sorted name order (so ingestion order is reproducible), skipping
hidden entries (names starting with ``.``) and files of other types. Symlinked files are loaded;
symlinked directories are not entered unless ``follow_symlinks=True``, and then a directory already
visited (by its real path) is not entered again, so a link to a parent cannot loop. A file named
explicitly is always considered, even if hidden; if its type is not supported it is reported as
skipped. The same file reached twice (named twice, or through a link) is loaded once.

:meth:`AutoLoader.iter_files` yields the files without reading them, so a caller can stream a large
corpus through a pipeline in batches of paths.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from memflow.components.loaders._common import (
    ErrorHandler,
    Loader,
    SkippedInput,
    context_of,
    load_reporting,
    os_reason,
)
from memflow.components.loaders.html import HTMLLoader
from memflow.components.loaders.jsonl import JSONLLoader
from memflow.components.loaders.markdown import MarkdownLoader
from memflow.components.loaders.pdf import PDFLoader
from memflow.components.loaders.text import TextLoader
from memflow.errors import InputError, MissingDependencyError
from memflow.types import Document

__all__ = ["AutoLoader", "LOADERS_BY_EXTENSION", "is_within"]

log = logging.getLogger("memflow")

LOADERS_BY_EXTENSION: dict[str, type[Loader]] = {
    ".txt": TextLoader,
    ".text": TextLoader,
    ".md": MarkdownLoader,
    ".markdown": MarkdownLoader,
    ".html": HTMLLoader,
    ".htm": HTMLLoader,
    ".pdf": PDFLoader,
    ".jsonl": JSONLLoader,
}


def is_within(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or lies under it (both as given: resolve them first)."""
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _normalize_extension(ext: str) -> str:
    ext = ext.strip().lower()
    return ext if ext.startswith(".") else f".{ext}"


class AutoLoader(Loader):
    """Files and directories, dispatched by extension to the text, Markdown, HTML, PDF and JSONL loaders.

    ``follow_symlinks`` enters symlinked directories while walking; ``extensions`` (e.g. ``[".md"]``)
    restricts the file types loaded. ``max_bytes`` refuses single-document files larger than that (0: no
    limit): one 50 MB document is ~12M tokens, hours of encoding on a CPU, and far more often a log, a dump
    or minified data than prose; a user who means it raises the limit. JSONL is read record by record and
    has no file limit.
    """

    # ``self.extensions`` is the normalized set the loader filters by; the parameter is reported as given.
    param_attributes = {"extensions": "requested_extensions"}

    def __init__(
        self, *, follow_symlinks: bool = False, extensions: list[str] | None = None, max_bytes: int = 32 * 2**20
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be 0 (no limit) or positive")
        self.follow_symlinks = follow_symlinks
        self.max_bytes = max_bytes
        self.requested_extensions = list(extensions) if extensions is not None else None
        if extensions is None:
            self.extensions = frozenset(LOADERS_BY_EXTENSION)
        else:
            self.extensions = frozenset(_normalize_extension(e) for e in extensions)
            unknown = sorted(self.extensions - set(LOADERS_BY_EXTENSION))
            if unknown:
                raise ValueError(
                    f"unsupported extensions {unknown}; supported: {', '.join(sorted(LOADERS_BY_EXTENSION))}"
                )
        self._loaders: dict[type[Loader], Loader] = {}

    def loader_for(self, path: str | Path) -> Loader | None:
        """The loader for ``path``'s extension, or None if its type is not loaded."""
        ext = Path(path).suffix.lower()
        if ext not in self.extensions:
            return None
        cls = LOADERS_BY_EXTENSION[ext]
        if cls not in self._loaders:
            self._loaders[cls] = cls()
        return self._loaders[cls]

    def unsupported_reason(self, path: str | Path) -> str:
        ext = Path(path).suffix.lower()
        if ext in LOADERS_BY_EXTENSION:
            return f"file type {ext!r} is not among the selected extensions"
        return f"unsupported file type {ext or '(no extension)'!r}"

    def load_file(self, path: str | Path, *, on_error: ErrorHandler | None = None) -> list[Document]:
        loader = self.loader_for(path)
        if loader is None:
            raise SkippedInput(path, self.unsupported_reason(path))
        if self.max_bytes and not isinstance(loader, JSONLLoader):
            try:
                size = os.stat(path).st_size
            except OSError:
                size = 0  # the loader itself reports why it cannot read the file
            if size > self.max_bytes:
                raise InputError(
                    path,
                    f"file is {size / 2**20:.1f} MiB, over loaders.auto max_bytes "
                    f"({self.max_bytes / 2**20:.0f} MiB); raise max_bytes to ingest it",
                )
        return loader.load_file(path, on_error=on_error)

    def run(self, *, paths: list[str]) -> dict[str, Any]:
        ctx = context_of(self)
        documents: list[Document] = []
        for path in self.iter_files(paths):
            try:
                documents.extend(load_reporting(self, path, ctx))
            except MissingDependencyError as exc:
                # Without the optional extra only these files are lost; the rest of the corpus still loads.
                ctx.report(str(path), str(exc), kind="skipped")
        return {"documents": documents}

    def iter_files(self, paths: Iterable[str | Path] | str | Path) -> Iterator[Path]:
        """The loadable files under ``paths`` (files or directories), in order, each once.

        What cannot be used — a missing path, an unreadable directory, a file of an unsupported type
        named explicitly — is reported on the run context rather than raised.
        """
        ctx = context_of(self)
        if isinstance(paths, (str, Path)):
            paths = [paths]
        yielded: set[str] = set()
        visited_dirs: set[str] = set()

        def once(path: Path) -> Iterator[Path]:
            real = os.path.realpath(path)
            if real not in yielded:
                yielded.add(real)
                yield path

        for given in paths:
            path = Path(given).expanduser()
            if path.is_dir():
                for found in self._walk(path, visited_dirs):
                    yield from once(found)
            elif path.is_file():
                if self.loader_for(path) is None:
                    ctx.report(str(path), self.unsupported_reason(path), kind="skipped")
                else:
                    yield from once(path)
            elif path.is_symlink():
                ctx.report(str(path), "broken symbolic link")
            elif os.path.lexists(path):
                ctx.report(str(path), "not a regular file", kind="skipped")
            else:
                ctx.report(str(path), "no such file or directory")

    def _walk(self, root: Path, visited: set[str]) -> Iterator[Path]:
        ctx = context_of(self)
        # An explicit stack of sorted listings: no recursion limit on deep trees, and pre-order sorted output.
        stack: list[Iterator[os.DirEntry[str]]] = []

        def enter(directory: Path | str) -> None:
            real = os.path.realpath(directory)
            if real in visited:
                log.debug("%s: already visited (a symlink loop or a path named twice), skipped", directory)
                return
            visited.add(real)
            try:
                with os.scandir(directory) as it:
                    entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            except OSError as exc:
                ctx.report(str(directory), os_reason(exc))
                return
            stack.append(iter(entries))

        root_real = os.path.realpath(root)
        enter(root)
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                continue
            try:
                is_link = entry.is_symlink()
                if entry.is_dir(follow_symlinks=self.follow_symlinks):
                    enter(entry.path)
                elif entry.is_file():
                    if self.loader_for(entry.name) is None:
                        continue
                    if is_link and not self.follow_symlinks and not is_within(os.path.realpath(entry.path), root_real):
                        # A link must not smuggle in a file from outside the folder the user named.
                        ctx.report(
                            entry.path,
                            f"symbolic link to a file outside {root} (set follow_symlinks to load it)",
                            kind="skipped",
                        )
                        continue
                    yield Path(entry.path)
                elif is_link and not os.path.exists(entry.path) and self.loader_for(entry.name) is not None:
                    ctx.report(entry.path, "broken symbolic link")
            except OSError as exc:
                ctx.report(entry.path, os_reason(exc))
