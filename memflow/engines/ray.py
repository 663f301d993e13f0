"""Distributed ingest on Ray Data: ``memflow ingest --engine ray [--address ADDR]``.

The ingest pipeline's graph is cut into three stages:

* **prepare**: the loader and what follows it up to the encoder, ``storage.skip_unchanged`` included. The
  driver ships, with each batch of files, the content hashes the store holds for them, so the workers drop
  unchanged documents before chunking and nothing unchanged is ever encoded;
* **encode**: every ``encoders.sentence_transformers`` component, which runs memflow's own
  ``EncoderModel.encode_chunks``, and what follows it up to the writer (the summary state);
* **write** (the driver, holding the store's writer lock): ``storage.writer`` and everything after it,
  i.e. whatever needs the store.

On a cluster with GPUs, prepare runs as Ray tasks feeding a pool of encoder actors, one per GPU
(``num_gpus=1``), each holding its loaded encoder. Without GPUs, a pool of CPU actors (:func:`cpu_pool`)
runs prepare and encode together, each actor with its loaded encoder and as many threads as the CPUs it
holds: loading and chunking cost a few percent of CPU encoding, and one stage keeps every CPU encoding.

A Ray Data row is one batch of ``batch_files`` files, the unit of a local ingest (so the encoder sees the
same chunks together, and the same padded batches, as it does locally). Rows keep their order
(``preserve_order``) and the driver commits them one after the other, so documents, chunk ids, vectors and
summary states come out as a local ingest of the same corpus makes them. Workers rebuild their part of the
pipeline from its parsed spec, so its params, plugins and trusted modules are honoured (a plugin must be
installed where the workers run). What workers report (unreadable files, unchanged and seen documents, time
per component) is merged into the run's context in batch order, so the report, ``--prune`` and the CLI
summary behave as they do locally.

Records travel between stages pickled, one batch at a time: Ray serializes everything it moves with
(cloud)pickle anyway, and only data our own workers produced in this run is ever unpickled.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import networkx as nx
import numpy as np

from memflow import errors
from memflow.components.base import RunContext
from memflow.components.encoders.sentence_transformers import EncoderModel, SentenceTransformersEncoder
from memflow.components.writers.skip_unchanged import SkipUnchanged
from memflow.components.writers.store_writer import StoreWriter
from memflow.errors import MemflowError, MissingDependencyError, ModelMismatchError, PipelineError, StoreError
from memflow.ingest import written_chunks
from memflow.models import resolve_model_path
from memflow.pipeline import Pipeline
from memflow.pipeline.yaml_loader import ConnectionSpec, PipelineSpec
from memflow.storage.store import Store
from memflow.types import Chunk, Document

__all__ = ["RayEngine", "import_ray", "plan_stages", "cpu_pool"]

log = logging.getLogger("memflow")


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or MissingDependencyError saying what to install."""
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError as exc:
        raise MissingDependencyError("ray", extra="ray", purpose="the Ray ingest engine (--engine ray)") from exc
    return ray


# -- the plan: which component runs where -------------------------------------------------------------------


@dataclass(frozen=True)
class _Stage:
    """One part of the pipeline: its components as a spec of their own, and what feeds it from earlier
    stages (connections whose source ran before)."""

    name: str
    spec: PipelineSpec
    feeds: tuple[ConnectionSpec, ...]
    encoders: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Plan:
    """What workers need to rebuild and run their stages; pickled into every Ray task and actor."""

    token: str
    trusted: tuple[str, ...]
    loader: str
    workers: tuple[_Stage, ...]  # prepare, then encode when the pipeline has an encoder
    write: _Stage | None
    #: After worker stage i, the values ("component.socket") later stages still need.
    carry: tuple[frozenset[str], ...]


def _sub_spec(spec: PipelineSpec, names: set[str], stage: str) -> PipelineSpec:
    return replace(
        spec,
        description=f"the {stage} stage of {spec.name}",
        components=[c for c in spec.components if c.name in names],
        connections=[c for c in spec.connections if c.source in names and c.target in names],
    )


def _stage(spec: PipelineSpec, name: str, names: set[str], encoders: Iterable[str] = ()) -> _Stage:
    feeds = tuple(c for c in spec.connections if c.target in names and c.source not in names)
    return _Stage(name, _sub_spec(spec, names, name), feeds, tuple(sorted(encoders)))


def plan_stages(pipeline: Pipeline, trusted: Sequence[str] = ()) -> _Plan:
    """Cut an ingest pipeline into its prepare (tasks), encode (actors) and write (driver) stages."""
    graph: nx.DiGraph = pipeline.graph
    components = pipeline.components
    owners = [name for name, sockets in pipeline.inputs().items() if "paths" in sockets]
    if len(owners) != 1:
        raise PipelineError("an ingest pipeline needs exactly one component with a 'paths' input", file=pipeline.source)
    write: set[str] = set()
    for name, component in components.items():
        if isinstance(component, StoreWriter):
            write |= {name, *nx.descendants(graph, name)}
    encoders = {
        name
        for name, component in components.items()
        if isinstance(component, SentenceTransformersEncoder) and name not in write
    }
    encode: set[str] = set()
    for name in encoders:
        encode |= {name, *nx.descendants(graph, name)}
    encode -= write
    prepare = set(components) - write - encode
    if owners[0] not in prepare:
        raise PipelineError(
            f"the Ray engine needs the loader {owners[0]!r} to come before the encoder and the writer",
            file=pipeline.source,
        )
    spec = pipeline.spec
    workers = [_stage(spec, "prepare", prepare)]
    if encode:
        workers.append(_stage(spec, "encode", encode, encoders))
    stage_of = {n: i for i, stage in enumerate(workers) for n in (c.name for c in stage.spec.components)}
    later = [*workers[1:]]
    write_stage = _stage(spec, "write", write) if write else None
    if write_stage is not None:
        later.append(write_stage)
    carry: list[frozenset[str]] = []
    for i in range(len(workers)):
        needed = {f"{c.source}.{c.output}" for stage in later[i:] for c in stage.feeds if stage_of[c.source] <= i}
        carry.append(frozenset(needed))
    return _Plan(
        token=uuid.uuid4().hex,
        trusted=tuple(trusted),
        loader=owners[0],
        workers=tuple(workers),
        write=write_stage,
        carry=tuple(carry),
    )


def _inputs(stage: _Stage, values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = {}
    for conn in stage.feeds:
        data.setdefault(conn.target, {})[conn.input] = values[f"{conn.source}.{conn.output}"]
    return data


# -- the workers ----------------------------------------------------------------------------------------------


class _ShippedSkip(SkipUnchanged):
    """``storage.skip_unchanged`` in a worker: the store's hashes for this batch's files come with it."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: Mapping[str, str] = {}

    def run(self, *, documents: list[Document]) -> dict[str, Any]:
        fresh: list[Document] = []
        for document in documents:
            self.context.seen.add(document.uri)
            if self.stored.get(document.uri) == document.content_hash:
                self.context.unchanged.append(document.uri)
            else:
                fresh.append(document)
        return {"documents": fresh}


class _StageRunner:
    """Runs worker stages (``stages``: indices into ``plan.workers``, in order) on pickled batches: the
    callable a Ray Data ``map_batches`` calls with a batch of rows."""

    def __init__(self, plan: _Plan, stages: Sequence[int], *, warm: bool = False, threads: int | None = None) -> None:
        _quiet_worker()
        self.plan, self.stages, self.threads = plan, tuple(stages), threads
        self.pipelines: dict[int, Pipeline] = {}
        self.skips: dict[int, list[_ShippedSkip]] = {}
        # A MemflowError (a plugin not installed on this node, a model directory missing here) goes back
        # to the driver with the batches, as a one-line message, rather than as a Ray traceback.
        self.error: tuple[str, str] | None = None
        try:
            for index in self.stages:
                self.pipelines[index] = self._build(index, warm=warm)
        except MemflowError as exc:
            self.error = _error(exc)

    def _build(self, index: int, *, warm: bool) -> Pipeline:
        pipeline = Pipeline(self.plan.workers[index].spec, trusted_modules=self.plan.trusted)
        for name, component in list(pipeline.components.items()):
            if type(component) is SkipUnchanged:
                shipped = _ShippedSkip()
                pipeline.components[name] = shipped
                pipeline.graph.nodes[name]["instance"] = shipped
                self.skips.setdefault(index, []).append(shipped)
        if warm:
            for name in self.plan.workers[index].encoders:
                component = pipeline.component(name)
                assert isinstance(component, SentenceTransformersEncoder)
                encoder = component.encoder  # load the model once, before the first batch
                if self.threads is not None:
                    _limit_threads(encoder, self.threads)
        return pipeline

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        payloads = [self.run(bytes(p)) for p in batch["payload"]]
        return {"index": batch["index"], "payload": np.array(payloads, dtype=object)}

    def run(self, payload: bytes) -> bytes:
        state: dict[str, Any] = pickle.loads(payload)
        try:
            if self.error is not None:
                return pickle.dumps({"error": self.error})
            for index in self.stages:
                self._run_stage(index, state)
        except MemflowError as exc:
            return pickle.dumps({"error": _error(exc)})
        state.pop("stored", None)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def _run_stage(self, index: int, state: dict[str, Any]) -> None:
        stage, pipeline = self.plan.workers[index], self.pipelines[index]
        context = RunContext()
        for skip in self.skips.get(index, []):
            skip.stored = state.get("stored", {})
        data = _inputs(stage, state["values"])
        if index == 0:
            data.setdefault(self.plan.loader, {})["paths"] = state.pop("paths")
        try:
            results = pipeline.run(data, context=context, outputs=list(pipeline.components))
        except StoreError as exc:
            raise MemflowError(
                f"{exc} (with --engine ray only storage.writer and what follows it run where the "
                "store is; run this pipeline with --engine local)"
            ) from exc
        carry = self.plan.carry[index]
        values = {key: value for key, value in state["values"].items() if key in carry}
        for key in carry:
            component, _, socket = key.partition(".")
            if component in results:
                values[key] = results[component][socket]
        state["values"] = values
        state["problems"].extend(context.problems)
        state["unchanged"].extend(context.unchanged)
        state["seen"].extend(sorted(context.seen))
        for name, seconds in context.seconds.items():
            state["seconds"][name] = state["seconds"].get(name, 0.0) + seconds
        for name in stage.encoders:
            chunks = results[name].get("chunks")
            if chunks and chunks[0].vector is not None:
                state["encoded"][name] = int(np.shape(chunks[0].vector)[-1])


def _quiet_worker() -> None:
    """The driver reports what workers find (once, through its own logging); workers say nothing."""
    logging.getLogger("memflow").setLevel(logging.ERROR)
    for name in ("sentence_transformers", "transformers", "huggingface_hub", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


_RUNNERS: dict[tuple[str, tuple[int, ...]], _StageRunner] = {}


def _run_tasks(batch: dict[str, Any], plan: _Plan, stages: tuple[int, ...]) -> dict[str, Any]:
    """A Ray task's entry: the stage runner is built once per worker process and reused."""
    key = (plan.token, stages)
    if key not in _RUNNERS:
        if any(token != plan.token for token, _ in _RUNNERS):
            _RUNNERS.clear()  # a worker that outlives an ingest keeps only the current one's pipeline
        _RUNNERS[key] = _StageRunner(plan, stages)
    return _RUNNERS[key](batch)


class _EncoderActor(_StageRunner):
    """A Ray actor of the encode stage: loads its encoder once, then encodes batch after batch. A CPU actor
    is given ``threads``, the CPUs it holds."""

    def __init__(self, plan: _Plan, stages: Sequence[int], threads: int | None = None) -> None:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        super().__init__(plan, stages, warm=True, threads=threads)


def _limit_threads(encoder: EncoderModel, threads: int) -> None:
    """Keep an encoder to ``threads`` CPU threads: ONNX Runtime's session otherwise takes every CPU of the
    node, however many actors share it."""
    onnx = encoder.onnx
    if onnx is not None and onnx.session.get_session_options().intra_op_num_threads != threads:
        from memflow.components.encoders.onnx_runtime import OnnxTransformer

        encoder.onnx = OnnxTransformer(
            encoder.model, resolve_model_path(encoder.name), precision=onnx.precision, threads=threads
        )


def cpu_pool(cpus: float) -> tuple[int, float]:
    """CPU encoder actors for a cluster of ``cpus`` CPUs: (most actors, CPUs each). Each actor also loads
    and chunks its batches (a few percent of the encoding time on a CPU), so together they take every
    CPU; an actor uses at most 4 threads (more gain little on a small encoder, while more actors encode
    more batches at once)."""
    if cpus < 1:
        return 1, cpus
    per = max(1, min(4, int(cpus) // 2))
    return max(1, int(cpus) // per), float(per)


# -- the driver -----------------------------------------------------------------------------------------------


def _check_encoder_model(store: Store, pipeline: Pipeline, plan: _Plan) -> None:
    """Refuse another encoder than the store's before any work is shipped (the dimension is checked, and
    recorded in a new store, when the first encoded batch comes back, as a local ingest does)."""
    stored = store.setting("encoder")
    if stored is None:
        return
    for stage in plan.workers:
        for name in stage.encoders:
            component = pipeline.component(name)
            assert isinstance(component, SentenceTransformersEncoder)
            if component.model_id != stored:
                raise ModelMismatchError(
                    f"store {store.directory} was built with encoder {stored} ({store.setting('dimension')} dims); "
                    f"the pipeline uses {component.model_id}. Use the same encoder or another store"
                )


def _error(exc: MemflowError) -> tuple[str, str]:
    return type(exc).__name__, str(exc)


def _raise(error: tuple[str, str]) -> NoReturn:
    """Raise, in the driver, the MemflowError a worker met (same class where it takes just a message)."""
    name, message = error
    cls = getattr(errors, name, None)
    exc: MemflowError = MemflowError(message)
    if isinstance(cls, type) and issubclass(cls, MemflowError):
        with contextlib.suppress(TypeError):  # a class whose constructor wants more than the message
            exc = cls(message)
    raise exc


@contextlib.contextmanager
def _connected(ray: Any, address: str | None, context: RunContext) -> Iterator[None]:
    """Ray, connected: the running instance, else ``address``, else a local instance; shut down after
    if this call started it."""
    if ray.is_initialized():
        if address is not None:
            log.warning("Ray is already initialized in this process; --address %s is not used", address)
        yield
        return
    # Workers must run this very interpreter and environment (memflow is installed there); Ray's `uv run`
    # hook would instead build a fresh environment per worker.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    started = time.perf_counter()
    options: dict[str, Any] = {"logging_level": logging.ERROR}
    try:
        if address is not None:
            ray.init(address=address, **options)
        else:
            ray.init(include_dashboard=False, **options)
    except Exception as exc:
        where = f"the Ray cluster at {address}" if address is not None else "a local Ray instance"
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise MemflowError(f"cannot start or connect to {where}: {reason}") from exc
    context.seconds["ray.init"] = time.perf_counter() - started
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _data_context(ray: Any) -> Iterator[None]:
    """Ray Data settings for this run (restored after): results in input order, no progress bars."""
    data_context = ray.data.DataContext.get_current()
    saved = (data_context.execution_options.preserve_order, data_context.enable_progress_bars)
    data_context.execution_options.preserve_order = True
    data_context.enable_progress_bars = False
    ray_data_log = logging.getLogger("ray.data")
    level = ray_data_log.level
    ray_data_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        data_context.execution_options.preserve_order, data_context.enable_progress_bars = saved
        ray_data_log.setLevel(level)


def _results(ray: Any, plan: _Plan, rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Run the worker stages over ``rows`` on Ray Data; the finished batches, in input order."""
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    encode = [i for i, stage in enumerate(plan.workers) if stage.encoders]
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if not encode:
        dataset = dataset.map_batches(
            _run_tasks, batch_size=1, num_cpus=1, fn_kwargs={"plan": plan, "stages": tuple(range(len(plan.workers)))}
        )
    elif gpus:
        # Loading and chunking as CPU tasks, feeding one encoder actor per GPU.
        dataset = dataset.map_batches(
            _run_tasks, batch_size=1, num_cpus=1, fn_kwargs={"plan": plan, "stages": tuple(range(encode[0]))}
        )
        dataset = dataset.map_batches(
            _EncoderActor,
            batch_size=1,
            num_gpus=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=gpus),
            fn_constructor_kwargs={"plan": plan, "stages": tuple(range(encode[0], len(plan.workers)))},
        )
    else:
        # CPU actors load, chunk and encode their batches themselves, so they can take every CPU.
        actors, cpus = cpu_pool(float(ray.cluster_resources().get("CPU", 1)))
        dataset = dataset.map_batches(
            _EncoderActor,
            batch_size=1,
            num_cpus=cpus,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            fn_constructor_kwargs={
                "plan": plan,
                "stages": tuple(range(len(plan.workers))),
                "threads": max(1, int(cpus)),
            },
        )
    for row in dataset.iter_rows():
        state: dict[str, Any] = pickle.loads(row["payload"])
        if "error" in state:
            _raise(state["error"])
        yield state


class RayEngine:
    """The ingest engine that loads, chunks and encodes on Ray Data and writes here, in batch order (see the
    module's docstring): Ray as this process already runs it, else the cluster at ``address``, else what
    ``ray.init()`` finds or starts, shut down after."""

    def __init__(self, pipeline: Pipeline, *, trusted_modules: Sequence[str] = (), address: str | None = None) -> None:
        self.ray = import_ray()
        self.pipeline, self.address = pipeline, address
        self.plan = plan_stages(pipeline, trusted_modules)
        self.writer = (
            Pipeline(self.plan.write.spec, trusted_modules=self.plan.trusted) if self.plan.write is not None else None
        )

    def run(self, batches: Sequence[list[str]], context: RunContext) -> Iterator[list[Chunk]]:
        store = context.require_store("the Ray ingest engine")
        _check_encoder_model(store, self.pipeline, self.plan)
        if not batches:
            return
        hashes = store.stored_hashes_by_file(
            [path for batch in batches for path in batch], collection=context.collection
        )
        rows, offset = [], 0
        for index, batch in enumerate(batches):
            stored: dict[str, str] = {}
            for found in hashes[offset : offset + len(batch)]:
                stored.update(found)
            offset += len(batch)
            start: dict[str, Any] = {
                "paths": batch,
                "stored": stored,
                "values": {},
                "problems": [],
                "unchanged": [],
                "seen": [],
                "seconds": {},
                "encoded": {},
            }
            rows.append({"index": index, "payload": pickle.dumps(start, protocol=pickle.HIGHEST_PROTOCOL)})
        checked: set[str] = set()
        with _connected(self.ray, self.address, context), _data_context(self.ray):
            for state in _results(self.ray, self.plan, rows):
                _merge(context, state)
                for name, dimension in state["encoded"].items():
                    if name not in checked:
                        component = self.pipeline.component(name)
                        assert isinstance(component, SentenceTransformersEncoder)
                        store.check_encoder(component.model_id, dimension, record=True)
                        checked.add(name)
                if self.writer is None or self.plan.write is None:
                    yield []
                    continue
                result = self.writer.run(_inputs(self.plan.write, state["values"]), context=context)
                yield written_chunks(result)


def _merge(context: RunContext, state: Mapping[str, Any]) -> None:
    """Fold what the workers found in one batch into the driver's context, as a local run would have."""
    for problem in state["problems"]:
        context.report(problem.path, problem.reason, kind=problem.kind, line=problem.line)
    context.unchanged.extend(state["unchanged"])
    context.seen.update(state["seen"])
    for name, seconds in state["seconds"].items():
        context.seconds[name] = context.seconds.get(name, 0.0) + seconds
