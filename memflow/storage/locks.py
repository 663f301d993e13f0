"""The single-writer lock of a store.

One writer at a time, any number of readers. Two locks guard two things:

- the store directory's ``LOCK`` file (filelock) guards the FAISS file, which lives on this machine;
- on PostgreSQL, a session-level advisory lock (``pg_advisory_lock``) guards the SQL store itself, which
  writers on other machines, each with their own store directory, share. Its key is derived from the
  database and schema, so two memories in different schemas of one database never block each other.

SQLite needs only the file lock: its database file is in the store directory. Both locks are re-entrant
within one process (a nested ``with store.writer()`` is free), and both are released when the process
dies, so a killed writer never leaves a store locked. Within a process, one thread at a time holds it.

The advisory lock lives as long as its connection: a connection lost mid-ingest (a server restart, an
operator's ``pg_terminate_backend``) is a lost lock, so each write transaction calls :meth:`confirm` before
it commits, and a writer that no longer holds the lock stops instead of writing beside another one.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from memflow.errors import StoreError, StoreLockedError

__all__ = ["WriterLock"]

#: How often a waiting writer asks PostgreSQL again.
_POLL_S = 0.1


class WriterLock:
    def __init__(self, directory: Path, engine: Engine, *, file_name: str = "LOCK") -> None:
        self.directory = directory
        self.path = directory / file_name
        self.engine = engine
        self._file = FileLock(str(self.path))
        self._connection: Any = None
        self._key: int | None = None
        self._depth = 0
        # Threads of this process take turns too (a served store writes from request threads): the thread
        # holding the lock may take it again; another waits as another process would.
        self._threads = threading.RLock()

    @property
    def is_locked(self) -> bool:
        """Whether this process (any of its threads) holds the lock."""
        return self._depth > 0

    def acquire(self, *, timeout: float) -> None:
        if not self._threads.acquire(timeout=max(timeout, 0.0)):
            raise self._locked(timeout, f"{self.path} (held by another thread of this process)")
        if self._depth > 0:
            self._depth += 1
            return
        deadline = time.monotonic() + timeout
        try:
            try:
                self._file.acquire(timeout=timeout)
            except Timeout:
                raise self._locked(timeout, str(self.path)) from None
            except OSError as exc:  # the lock file cannot be created or opened here
                raise StoreError(
                    f"store {self.directory}: cannot take its writer lock {self.path} ({exc.strerror or exc}); "
                    "it must be a file this user can create and write"
                ) from exc
            try:
                if self.engine.dialect.name == "postgresql":
                    self._acquire_advisory(deadline, timeout)
            except BaseException:
                self._file.release()
                raise
        except BaseException:
            self._threads.release()
            raise
        self._depth = 1

    def release(self) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth > 0:
            self._threads.release()
            return
        try:
            if self._connection is not None:
                try:
                    self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
                    self._connection.commit()
                except SQLAlchemyError:
                    pass  # the connection is gone, and the session-level lock went with it
                finally:
                    self._connection.close()
                    self._connection = None
        finally:
            try:
                self._file.release()
            finally:
                self._threads.release()

    def confirm(self) -> None:
        """Raise StoreError if this process held the PostgreSQL advisory lock and its connection is lost
        (then so is the lock). Nothing to check on SQLite, or while the lock is not held."""
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except SQLAlchemyError as exc:
            reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(
                f"store {self.directory}: lost the connection to its database that held the writer lock "
                f"({reason}): that write was not kept; run it again once the database is reachable"
            ) from exc

    def _acquire_advisory(self, deadline: float, timeout: float) -> None:
        connection = self.engine.connect()
        try:
            # hashtext gives a stable int4 per (database, schema): the same store seen from any machine.
            key = int(
                connection.execute(
                    text("SELECT hashtext('memflow-writer:' || current_database() || ':' || current_schema())")
                ).scalar_one()
            )
            while True:
                got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
                connection.commit()  # the advisory lock is session-level: it outlives this transaction
                if got:
                    break
                if time.monotonic() >= deadline:
                    raise self._locked(timeout, "a PostgreSQL advisory lock")
                time.sleep(_POLL_S)
        except BaseException:
            connection.close()
            raise
        self._connection, self._key = connection, key

    def _locked(self, timeout: float, what: str) -> StoreLockedError:
        return StoreLockedError(
            f"store {self.directory} is being written by another process (waited {timeout:g} s for {what})"
        )
