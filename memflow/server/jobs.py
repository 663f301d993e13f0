"""Ingest jobs: POST /ingest queues one and answers at once with its id; one worker thread runs the jobs in
the order they came (a store has one writer), each through ``Memory.ingest``, and GET /jobs/{id} reports its
progress (files listed and done, batch by batch) and, once finished, the ingest report as ``memflow ingest
--json`` prints it. Searches meanwhile see every committed batch.

What a request may name is confined to the ``--ingest-root`` directories the server was started with: paths
are resolved (symlinks followed) and refused when they, or any file found under them, lie outside every root.
Uploaded files are kept under the store directory (``uploads/<digest>/<name>``), so the same file uploaded
again is unchanged and skipped. The last :data:`KEEP_JOBS` jobs are kept, and journaled in the store directory
(:data:`JOURNAL`) so that a restarted server still answers for them: a job that was queued or running when the
server stopped is reported failed, its committed batches standing (submit it again to finish: unchanged files
are skipped).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from memflow.components.base import RunContext
from memflow.components.loaders.auto import is_within
from memflow.ingest import IngestReport, list_files
from memflow.memory import Memory
from memflow.serialize import to_jsonable
from memflow.server.errors import FieldError

__all__ = ["Job", "Jobs", "confined_paths", "save_upload", "KEEP_JOBS", "UPLOADS", "JOURNAL"]

log = logging.getLogger("memflow.server")

#: How many finished jobs the server remembers.
KEEP_JOBS = 100
#: Where uploaded files are kept, under the store directory.
UPLOADS = "uploads"
#: The jobs' journal, under the store directory: a JSON line per change of a job's state (the last one wins).
JOURNAL = "jobs.jsonl"
#: How many lines the journal takes before it is rewritten with one line per job kept.
JOURNAL_LINES = 10 * KEEP_JOBS
#: What a job that a stopped server never finished says after the restart.
INTERRUPTED = (
    "interrupted: the server stopped before this job finished; the batches it committed stand; "
    "submit it again to finish (unchanged files are skipped)"
)

JobState = Literal["queued", "running", "done", "failed"]


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


@dataclass(slots=True)
class Job:
    id: str
    paths: list[str]
    collection: str | None
    prune: bool
    state: JobState = "queued"
    files: int = 0
    files_done: int = 0
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        def seconds(text: str | None) -> float | None:
            return None if text is None else datetime.fromisoformat(text).timestamp()

        return cls(
            id=str(data["id"]),
            paths=[str(p) for p in data["paths"]],
            collection=data.get("collection"),
            prune=bool(data.get("prune")),
            state=data["state"],
            files=int(data.get("files") or 0),
            files_done=int(data.get("files_done") or 0),
            submitted=seconds(data.get("submitted")) or 0.0,
            started=seconds(data.get("started")),
            finished=seconds(data.get("finished")),
            report=data.get("report"),
            error=data.get("error"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "paths": self.paths,
            "collection": self.collection,
            "prune": self.prune,
            "files": self.files,
            "files_done": self.files_done,
            "submitted": _iso(self.submitted),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "report": self.report,
            "error": self.error,
        }


class Jobs:
    """The server's ingest queue over ``memory``: :meth:`submit` queues, one worker thread runs."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        # no journal on a store this process cannot write: its jobs then live in memory only
        self._journal = None if memory.store.read_only else memory.store.directory / JOURNAL
        self._appended = 0
        self._recover()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="memflow-ingest-jobs", daemon=True)
        self._worker.start()

    def submit(self, paths: list[str], *, files: int, collection: str | None, prune: bool) -> Job:
        job = Job(id=uuid.uuid4().hex, paths=paths, collection=collection, prune=prune, files=files)
        with self._lock:
            self._jobs[job.id] = job
            finished = [j.id for j in self._jobs.values() if j.state in ("done", "failed")]
            for old in finished[: max(0, len(self._jobs) - KEEP_JOBS)]:
                del self._jobs[old]
        self._record(job)
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._worker.join(timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.state, job.started = "running", time.time()
            self._record(job)

            def progress(done: int, _: IngestReport, job: Job = job) -> None:
                job.files_done = done

            try:
                report = self.memory.ingest(job.paths, collection=job.collection, prune=job.prune, on_batch=progress)
            except Exception as exc:  # a job's failure is its report, never the worker's end
                job.error = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
                job.state = "failed"
            else:
                job.report = to_jsonable(report)
                job.files, job.files_done = report.files, report.files
                job.state = "done"
            job.finished = time.time()
            self._record(job)

    # -- the journal ----------------------------------------------------------------------------------

    def _record(self, job: Job) -> None:
        """Append the job's state to the journal. A journal that cannot be written costs the restart its
        memory of jobs, never the job."""
        if self._journal is None:
            return
        line = json.dumps(job.to_json(), ensure_ascii=False) + "\n"
        with self._lock:
            self._appended += 1
            if self._appended > JOURNAL_LINES:  # a long-running server's journal stays small
                self._rewrite()
                return
            try:
                with open(self._journal, "a", encoding="utf-8") as journal:
                    journal.write(line)
            except OSError as exc:
                log.warning("cannot write the jobs journal %s: %s", self._journal, exc.strerror or exc)

    def _rewrite(self) -> None:
        """Replace the journal (atomically) with one line per job kept."""
        assert self._journal is not None
        self._appended = 0
        compact = self._journal.with_name(f".{JOURNAL}.{os.getpid()}.tmp")
        try:
            lines = "".join(json.dumps(j.to_json(), ensure_ascii=False) + "\n" for j in self._jobs.values())
            compact.write_text(lines, encoding="utf-8")
            compact.replace(self._journal)
        except OSError as exc:
            with contextlib.suppress(OSError):
                compact.unlink()
            log.warning("cannot rewrite the jobs journal %s: %s", self._journal, exc.strerror or exc)

    def _recover(self) -> None:
        """The jobs an earlier server journaled (the last :data:`KEEP_JOBS`); those it never finished are
        failed as interrupted. The journal is rewritten with only them."""
        if self._journal is None or not self._journal.exists():
            return
        found: OrderedDict[str, Job] = OrderedDict()
        try:
            lines = self._journal.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            log.warning("cannot read the jobs journal %s: %s", self._journal, exc.strerror or exc)
            return
        for line in lines:
            try:
                job = Job.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            found.pop(job.id, None)
            found[job.id] = job
        for job in list(found.values())[-KEEP_JOBS:]:
            if job.state in ("queued", "running"):
                job.state, job.error, job.finished = "failed", INTERRUPTED, job.finished or time.time()
            self._jobs[job.id] = job
        self._rewrite()


def _inside(path: str, roots: tuple[Path, ...]) -> bool:
    return any(is_within(path, str(root)) for root in roots)


def confined_paths(memory: Memory, given: list[str], roots: tuple[Path, ...]) -> tuple[list[str], int]:
    """``given`` paths resolved under ``roots`` (relative ones against each root in turn), and how many
    files the ingest pipeline's loader lists under them. Raises FieldError (422) naming the first path that
    is missing or lies, or holds a file that lies, outside every root."""
    if not roots:
        raise FieldError("paths", "this server reads no server-side paths (start it with --ingest-root DIR)")
    real_roots = tuple(Path(os.path.realpath(root)) for root in roots)
    resolved: list[str] = []
    for n, text in enumerate(given):
        where = f"paths[{n}]"
        if not text.strip() or "\x00" in text:
            raise FieldError(where, "is empty or not a path")
        candidates = [Path(text)] if os.path.isabs(text) else [root / text for root in real_roots]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise FieldError(where, f"{text!r} does not exist under the ingest roots")
        real = os.path.realpath(found)
        if not _inside(real, real_roots):
            raise FieldError(where, f"{text!r} is outside the ingest roots")
        resolved.append(real)
    files = list_files(memory.pipeline("ingest"), resolved, RunContext(store=memory.store))
    for file in files:
        if not _inside(os.path.realpath(file), real_roots):
            raise FieldError("paths", f"{file} links outside the ingest roots")
    return resolved, len(files)


def save_upload(memory: Memory, name: str | None, content: bytes) -> str:
    """Keep an uploaded file under the store's ``uploads/<digest>/<name>``; returns its path."""
    base = os.path.basename((name or "").replace("\\", "/"))
    if base in ("", ".", "..") or "\x00" in base:
        raise FieldError("files", f"an uploaded file needs a file name, got {name!r}")
    digest = hashlib.sha256(content).hexdigest()[:16]
    folder = memory.store.directory / UPLOADS / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / base
    if not path.exists():
        partial = path.with_name(f".{base}.partial")
        partial.write_bytes(content)
        partial.replace(path)
    return str(path)
