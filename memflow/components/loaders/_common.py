"""What every loader shares: the component sockets, safe file reading, decoding, and reporting.

A loader turns files into :class:`~memflow.types.Document` records. ``load_file`` is the plain API (it
raises :class:`~memflow.errors.InputError` naming the file); ``run`` is the pipeline API, which reports
each bad file on the run's context and carries on with the others.
"""

from __future__ import annotations

import codecs
import datetime as dt
import functools
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, ClassVar

from memflow.components.base import Component, RunContext, Socket
from memflow.errors import InputError, MemflowError
from memflow.types import Document

__all__ = [
    "ErrorHandler",
    "Loader",
    "SingleDocumentLoader",
    "SkippedInput",
    "TextBuilder",
    "context_of",
    "decode_bytes",
    "load_reporting",
    "normalize_newlines",
    "open_regular",
    "read_bytes",
    "report",
    "resolve_path",
    "sha256_hex",
]

ErrorHandler = Callable[[InputError], None]

log = logging.getLogger("memflow")

# Enough to tell text from binary without reading a whole file twice (the same window git uses).
_SNIFF_BYTES = 8192

# Longest first, so that a UTF-32-LE BOM is not taken for a UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class SkippedInput(InputError):
    """A file with nothing to ingest (empty, binary): not broken, so reported with kind ``skipped``."""


def context_of(component: Component) -> RunContext:
    """The component's run context; a loader used outside a pipeline gets a private one on first use."""
    ctx: RunContext | None = getattr(component, "context", None)
    if ctx is None:
        ctx = RunContext()
        component.context = ctx
    return ctx


def report(ctx: RunContext, error: InputError) -> None:
    ctx.report(
        error.path, error.reason, kind="skipped" if isinstance(error, SkippedInput) else "failed", line=error.line
    )


def os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def resolve_path(path: str | Path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, on Python < 3.13
        raise InputError(path, f"cannot resolve path: {exc}") from exc


def open_regular(path: Path) -> IO[bytes]:
    """Open a regular file for binary reading, refusing directories, FIFOs and devices.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting forever for a writer; it has no
    effect on regular files, which are the only ones we go on to read.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(path, os_reason(exc)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(path, "is a directory")
        if not stat.S_ISREG(mode):
            raise InputError(path, "not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path) -> bytes:
    with open_regular(path) as fh:
        try:
            return fh.read()
        except OSError as exc:
            raise InputError(path, os_reason(exc)) from exc


def modified_time(path: Path) -> str | None:
    """When the file was last modified, as an ISO 8601 UTC timestamp (None if it cannot be read)."""
    try:
        seconds = path.stat().st_mtime
    except OSError:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).isoformat(timespec="seconds")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalize_newlines(text: str) -> str:
    """``\\r\\n`` and lone ``\\r`` become ``\\n``, so offsets do not depend on the writer's platform."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _codec_name(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(
    raw: bytes, path: str | Path, *, encoding: str | None = None, declared: str | None = None
) -> tuple[str, str]:
    """Decode a text file: ``(text, encoding used)``; newlines are not normalized here.

    ``encoding`` forces a codec. Otherwise: a BOM wins, then the ``declared`` codec (an HTML meta charset),
    then strict UTF-8, then charset-normalizer's detection. NUL bytes in the first 8 KiB mark a binary
    file (which is why UTF-16/32 files need a BOM to be read). Raises SkippedInput for binary files.
    """
    if encoding is not None:
        codec = _codec_name(encoding)
        if codec is None:
            raise InputError(path, f"unknown encoding {encoding!r}")
        try:
            return raw.decode(codec).removeprefix("\ufeff"), codec
        except UnicodeDecodeError as exc:
            raise InputError(path, f"cannot decode as {codec}: {exc.reason} at byte {exc.start}") from exc
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(codec), codec
            except UnicodeDecodeError as exc:
                raise InputError(path, f"invalid {codec} after its byte-order mark: {exc.reason}") from exc
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise SkippedInput(path, "binary file (NUL bytes), skipped")
    if declared is not None:
        codec = _codec_name(declared)
        # A declared UTF-16/32 without a BOM is a mislabel (the NUL check above has passed).
        if codec is not None and not codec.startswith(("utf-16", "utf-32")):
            try:
                return raw.decode(codec), codec
            except UnicodeDecodeError:
                pass  # the declaration is wrong; fall back to UTF-8 and detection
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    detected = _detect(raw)
    if detected is None:
        raise SkippedInput(path, "binary file or unknown encoding, skipped")
    return detected


# How much more "chaos" (charset-normalizer's mess score, 0..1) we accept to get windows-1252 instead.
_CP1252_TOLERANCE = 0.05


def _detect(raw: bytes) -> tuple[str, str] | None:
    from charset_normalizer import from_bytes

    # Real UTF-16/32 text without a BOM has NUL bytes and was refused as binary before we got here, so
    # such a guess is always wrong (detection offers it for short inputs with an even length).
    matches = [m for m in from_bytes(raw) if not m.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        return None
    # On short Western-European texts detection often ranks a Central/Baltic sibling (cp1250, cp1257)
    # first by a hair, turning é into č; windows-1252 (a superset of latin-1's printable range) is by far
    # the likelier legacy encoding, so it wins whenever it scores about as well.
    best = matches[0]
    for match in matches:
        # Codecs that decode the bytes identically are merged into one match (``could_be_from_charset``).
        if "cp1252" in match.could_be_from_charset and match.chaos <= best.chaos + _CP1252_TOLERANCE:
            return str(match), "cp1252"
    return str(best), best.encoding


class TextBuilder:
    """Builds extracted text block by block, so that offsets (e.g. of headings) are known as it grows.

    ``brk(n)`` asks for ``n`` newlines before the next text (the largest request wins, and newlines the
    text already ends with count); ``write(s, space=True)`` puts a single space before ``s`` when no
    break is pending, for inline text whose source had whitespace there.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._pending = 0
        self._trailing_newlines = 0
        self._capture: list[str] | None = None
        self._capture_start: int | None = None

    def __len__(self) -> int:
        return self._length

    @property
    def pending(self) -> int:
        """Newlines requested before the next text."""
        return self._pending

    @property
    def at_line_start(self) -> bool:
        return self._length == 0 or self._trailing_newlines > 0 or self._pending > 0

    def brk(self, newlines: int) -> None:
        self._pending = max(self._pending, newlines)

    def write(self, s: str, *, space: bool = False) -> int:
        """Append ``s`` (after any pending break or space); returns the offset where ``s`` starts."""
        if not s:
            return self._length
        sep = ""
        if self._length:
            if self._pending > self._trailing_newlines:
                sep = "\n" * (self._pending - self._trailing_newlines)
            elif space and not self.at_line_start:
                sep = " "
        self._pending = 0
        start = self._length + len(sep)
        if self._capture is not None:
            if self._capture_start is None:
                self._capture_start = start
            else:
                self._capture.append(sep)
            self._capture.append(s)
        self._parts.append(sep + s)
        self._length = start + len(s)
        stripped = s.rstrip("\n")
        if stripped:
            self._trailing_newlines = len(s) - len(stripped)
        else:
            self._trailing_newlines += len(s) + len(sep)
        return start

    def begin_capture(self) -> None:
        self._capture, self._capture_start = [], None

    def end_capture(self) -> tuple[int, str] | None:
        """``(start, text)`` written since ``begin_capture``, or None if nothing was."""
        captured, start = self._capture, self._capture_start
        self._capture, self._capture_start = None, None
        if captured is None or start is None:
            return None
        return start, "".join(captured)

    def text(self) -> str:
        return "".join(self._parts)


class Loader(Component):
    """Base of the file loaders: ``paths`` in, ``documents`` out."""

    inputs: ClassVar[Mapping[str, Socket]] = {
        "paths": Socket(list[str], doc="files to load"),
    }
    outputs: ClassVar[Mapping[str, Socket]] = {
        "documents": Socket(list[Document], doc="one document per file (per line for JSONL)"),
    }

    def load_file(self, path: str | Path, *, on_error: ErrorHandler | None = None) -> list[Document]:
        """The documents in one file. Raises InputError naming the file; ``on_error`` receives problems
        that spoil only part of a file (a JSONL line) so the rest still loads — without it they raise."""
        raise NotImplementedError

    # The pipeline calls run() with the declared input sockets as keywords; the narrower signature is the
    # component contract, which the base class's ``**inputs`` cannot express.
    def run(self, *, paths: list[str]) -> dict[str, Any]:
        ctx = context_of(self)
        documents: list[Document] = []
        for path in paths:
            documents.extend(load_reporting(self, path, ctx))
        return {"documents": documents}


def load_reporting(loader: Loader, path: str | Path, ctx: RunContext) -> list[Document]:
    """``loader.load_file(path)``, with every problem of the file reported on ``ctx`` instead of raised."""
    try:
        return loader.load_file(path, on_error=functools.partial(report, ctx))
    except InputError as error:
        report(ctx, error)
    except MemflowError:
        raise  # a setup problem (e.g. a missing optional dependency), not this file's
    except Exception as exc:
        # A parser tripping over one odd file must not abort the ingest of a whole corpus.
        log.debug("unexpected error loading %s", path, exc_info=True)
        ctx.report(str(path), f"unexpected error: {type(exc).__name__}: {exc}")
    return []


class SingleDocumentLoader(Loader):
    """A loader that makes one document of each file's bytes."""

    def load_file(self, path: str | Path, *, on_error: ErrorHandler | None = None) -> list[Document]:
        resolved = resolve_path(path)
        document = self.load_bytes(read_bytes(resolved), resolved)
        modified = modified_time(resolved)
        if modified is not None:
            document.metadata.setdefault("modified", modified)
        return [document]

    def load_bytes(self, raw: bytes, path: Path) -> Document:
        """The document for ``raw``, the bytes of the file at ``path`` (an absolute, resolved path)."""
        raise NotImplementedError
