"""Storage faults as memflow errors: what SQLite, PostgreSQL, the OS and FAISS raise when a disk fills up
or a write fails, turned into one-line :class:`~memflow.errors.StoreError` messages that name the store and
what to do. A :class:`~memflow.errors.StorageFullError` says the failed write was not kept."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from memflow.errors import MemflowError, StorageFullError, StoreError

__all__ = ["storage_faults", "is_disk_full", "open_fault"]

_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: How SQLite ("database or disk is full"), PostgreSQL (SQLSTATE 53100 "could not extend file") and FAISS
#: (it reports the OS's strerror) say that the disk is full.
_FULL_WORDS = ("database or disk is full", "no space left on device", "could not extend file", "disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    original = getattr(exc, "orig", None)
    if getattr(original, "sqlstate", None) == "53100":  # psycopg's DiskFull
        return True
    text = f"{exc} {original or ''}".lower()
    return any(words in text for words in _FULL_WORDS)


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


@contextlib.contextmanager
def storage_faults(directory: Path, doing: str) -> Iterator[None]:
    """Inside the block, a storage fault while ``doing`` something to the store at ``directory`` raises a
    one-line StoreError (StorageFullError for a full disk); memflow's own errors pass through."""
    try:
        yield
    except MemflowError:
        raise
    except (SQLAlchemyError, OSError, RuntimeError) as exc:
        if is_disk_full(exc):
            raise StorageFullError(
                f"the disk under store {directory} is full while {doing}: nothing of it was kept; "
                "free space and run it again"
            ) from exc
        if getattr(exc, "connection_invalidated", False):  # SQLAlchemy: the dialect saw a disconnect
            raise StoreError(
                f"store {directory}: lost the connection to its database while {doing} ({_first_line(exc)}): "
                "that write was not kept; run it again once the database is reachable"
            ) from exc
        if isinstance(exc, RuntimeError) and "faiss" not in repr(exc).lower() and "Error in" not in str(exc):
            raise  # not a storage fault: a bug to see as it is
        raise StoreError(f"store {directory}: {doing} failed: {_first_line(exc)}") from exc


def open_fault(exc: BaseException, *, directory: Path, url: str) -> StoreError:
    """The one-line error for a store whose database cannot be opened, saying what to do about it."""
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    reason = _first_line(exc)
    lowered = reason.lower()
    if "file is not a database" in lowered or "database disk image is malformed" in lowered:
        return StoreError(
            f"store {directory}: its database {shown} is damaged or not a SQLite file ({reason}); "
            "restore it from a backup, or move it aside to start an empty store there"
        )
    if "readonly" in lowered or "read-only" in lowered or "unable to open database file" in lowered:
        return StoreError(
            f"store {directory}: cannot open {shown} for writing ({reason}); "
            "check that the directory and its files are writable by this user"
        )
    if is_disk_full(exc):
        return StorageFullError(f"the disk under store {directory} is full: the store cannot be opened; free space")
    if "connection refused" in lowered or "could not connect" in lowered or "connection to server" in lowered:
        return StoreError(f"cannot reach the database {shown}: {reason} (is the server running and the URL right?)")
    return StoreError(f"cannot open the store database {shown}: {reason}")
