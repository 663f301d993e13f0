"""Helpers for testing memflow and plugins built on it.

A plugin author checks a component against memflow's contract with :func:`check_component`, builds records
with :func:`make_document` and :func:`make_chunks`, gets a throwaway store with :func:`temporary_memory`, and
a real ``memflow serve`` process to talk to with :func:`running_server`.
Nothing here mocks memflow: the helpers build real records and real stores.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import socket as sockets_module
import subprocess
import sys
import tempfile
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from memflow.components.base import Component, RunContext, Socket, constructor_parameters
from memflow.memory import Memory
from memflow.pipeline.graph import run_problems
from memflow.types import Chunk, Document, Sentence

__all__ = ["check_component", "make_document", "make_chunks", "temporary_memory", "running_server", "free_port"]


def make_document(text: str, *, uri: str = "memory://test", title: str = "") -> Document:
    """A Document with a real content hash."""
    return Document(uri=uri, text=text, content_hash=hashlib.sha256(text.encode()).hexdigest(), title=title)


def make_chunks(
    document: Document, spans: list[tuple[int, int]], *, dimension: int = 384, seed: int = 0
) -> list[Chunk]:
    """Chunks over ``spans`` of ``document`` with one sentence each and random unit vectors (for storage
    tests that do not need an encoder)."""
    rng = np.random.default_rng(seed)
    chunks = []
    for ordinal, (start, end) in enumerate(spans):
        vector = rng.standard_normal(dimension).astype(np.float32)
        vector /= np.linalg.norm(vector)
        chunks.append(
            Chunk(
                document=document,
                ordinal=ordinal,
                start=start,
                end=end,
                text=document.text[start:end],
                token_count=max(1, len(document.text[start:end].split())),
                sentences=[Sentence(start, end, document.text[start:end])],
                vector=vector,
                sentence_vectors=vector.reshape(1, -1).astype(np.float16),
            )
        )
    return chunks


@contextlib.contextmanager
def temporary_memory(**kwargs: Any) -> Iterator[Memory]:
    """A Memory over a fresh store directory that is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="memflow-test-") as directory, Memory(Path(directory), **kwargs) as memory:
        yield memory


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with sockets_module.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_server(
    store: str | Path,
    *args: str,
    token: str | None = None,
    port: int | None = None,
    startup_timeout: float = 180.0,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """A ``memflow serve --store STORE ARGS...`` process on 127.0.0.1, its base URL yielded once /healthz
    answers (the server is warm then), stopped afterwards. Its output goes to ``log`` (else discarded);
    a server that exits before it answers raises RuntimeError with the log's end. ``env`` adds environment
    variables (``MEMFLOW_LOCK_TIMEOUT``, say)."""
    port = port or free_port()
    command = [sys.executable, "-m", "memflow.cli.main", "serve", "--store", str(store), "--port", str(port), *args]
    environment = {key: value for key, value in os.environ.items() if key != "MEMFLOW_TOKEN"}
    if token is not None:
        environment["MEMFLOW_TOKEN"] = token
    environment.update(env or {})
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(open(log, "w+b")) if log is not None else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if process.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
                    raise RuntimeError(f"memflow serve exited with status {process.returncode}: {tail}")
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"memflow serve did not answer /healthz within {startup_timeout:.0f} s")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def check_component(
    cls: type[Component],
    *,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    context: RunContext | None = None,
) -> dict[str, Any]:
    """Check ``cls`` against the component contract and, given ``inputs``, run it once.

    Checks: it subclasses Component; sockets are Socket instances with types; every constructor parameter
    is keyword-only and annotated, and kept where :meth:`Component.params` reads it back; ``run``'s
    parameters match the input sockets as a pipeline requires (see
    :func:`memflow.pipeline.graph.run_problems`); ``run`` returns every declared output. Returns the run's
    outputs (empty without ``inputs``).
    """
    assert isinstance(cls, type) and issubclass(cls, Component), f"{cls!r} must subclass memflow.Component"
    for kind, sockets in (("input", cls.inputs), ("output", cls.outputs)):
        for name, socket in sockets.items():
            assert isinstance(socket, Socket), f"{cls.__name__}.{kind} {name!r} must be a Socket"
            assert socket.type is not None, f"{cls.__name__}.{kind} {name!r} needs a type"
    signature = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    for name, parameter in list(signature.parameters.items())[1:]:
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        assert parameter.kind is parameter.KEYWORD_ONLY, f"{cls.__name__}: parameter {name!r} must be keyword-only"
        assert name in hints, f"{cls.__name__}: parameter {name!r} needs a type annotation"
    instance = cls(**dict(params or {}))
    try:
        reported = instance.params()
    except AttributeError as exc:
        raise AssertionError(str(exc)) from exc
    names, _ = constructor_parameters(cls)
    unreported = set(names) - cls.secret_params - set(reported)
    assert not unreported, f"{cls.__name__}.params() does not report {sorted(unreported)}"
    problems = run_problems(instance)
    assert not problems, f"{cls.__name__}: run() does not match its input sockets: {'; '.join(problems)}"
    if inputs is None:
        return {}
    instance.bind(context or RunContext())
    outputs = instance.run(**dict(inputs))
    assert isinstance(outputs, dict), f"{cls.__name__}.run must return a dict"
    missing_out = set(cls.outputs) - set(outputs)
    assert not missing_out, f"{cls.__name__}.run did not return outputs {sorted(missing_out)}"
    return outputs
