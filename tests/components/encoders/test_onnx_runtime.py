"""The ONNX Runtime encoder backend on the real packaged MiniLM: exported locally, float32 equal to PyTorch,
int8 close enough to rank the same, cached between loads (in a private temporary folder where the cache
cannot be written), a clear error without the extra, and no telemetry sent or device id kept."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime: pip install onnxruntime onnx")

from memflow.components.chunkers.sentences import SentenceChunker
from memflow.components.encoders import onnx_runtime
from memflow.components.encoders.sentence_transformers import EncoderModel, SentenceTransformersEncoder
from memflow.errors import MemflowError
from memflow.testing import check_component, make_document
from memflow.types import Chunk

QUESTIONS = {
    "What could the government do to increase the number of startups?": "foundervisa",
    "What happens to the sun's energy output over time?": "sun",
    "Why are people bad at judging their own biases?": "bias",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("memflow-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMFLOW_CACHE", str(directory))
        yield directory


@pytest.fixture(scope="module")
def models(cache: Path) -> dict[str, EncoderModel]:
    return {
        "torch": EncoderModel("default", device="cpu", backend="torch"),
        "float32": EncoderModel("default", device="cpu", backend="onnx", precision="float32"),
        "int8": EncoderModel("default", device="cpu", backend="onnx", precision="int8"),
    }


@pytest.fixture(scope="module")
def essays_chunks(pg_essays: Path) -> list[Chunk]:
    chunker = SentenceChunker(max_tokens=256)
    chunks: list[Chunk] = []
    for name in ["foundervisa", "sun", "bias", "nft", "mod"]:
        text = (pg_essays / f"{name}.txt").read_text(encoding="utf-8")
        chunks += chunker.chunk_document(make_document(text, uri=f"/{name}.txt"))
    return chunks


def _encode(model: EncoderModel, chunks: list[Chunk]) -> tuple[np.ndarray, np.ndarray]:
    copies = [
        Chunk(
            document=c.document,
            ordinal=c.ordinal,
            start=c.start,
            end=c.end,
            text=c.text,
            token_count=c.token_count,
            sentences=c.sentences,
            section=c.section,
        )
        for c in chunks
    ]
    model.encode_chunks(copies)
    vectors = np.vstack([c.vector for c in copies])
    sentences = np.vstack([c.sentence_vectors for c in copies]).astype(np.float32)
    return vectors, sentences


def test_export_is_local_cached_and_reused(models: dict[str, EncoderModel], cache: Path) -> None:
    files = sorted(p.name for p in cache.glob("onnx/*/*.onnx"))
    assert files == ["model.float32.onnx", "model.int8.onnx"]
    int8 = next(cache.glob("onnx/*/model.int8.onnx"))
    before = int8.stat().st_mtime_ns
    again = EncoderModel("default", device="cpu", backend="onnx", precision="int8")
    assert again.onnx is not None and again.onnx.path == int8 and int8.stat().st_mtime_ns == before
    # the MatMul weights shrink to a quarter; the word-embedding table (47 MB) stays float32
    assert int8.stat().st_size < 0.7 * next(cache.glob("onnx/*/model.float32.onnx")).stat().st_size


def test_float32_equals_pytorch(models: dict[str, EncoderModel], essays_chunks: list[Chunk]) -> None:
    reference, reference_sentences = _encode(models["torch"], essays_chunks)
    vectors, sentences = _encode(models["float32"], essays_chunks)
    assert np.abs(vectors - reference).max() < 1e-4
    assert np.abs(sentences - reference_sentences).max() < 2e-3  # stored as float16
    queries = list(QUESTIONS)
    assert np.abs(models["float32"].encode_queries(queries) - models["torch"].encode_queries(queries)).max() < 1e-4


def test_int8_is_close_and_ranks_the_same(models: dict[str, EncoderModel], essays_chunks: list[Chunk]) -> None:
    reference, reference_sentences = _encode(models["torch"], essays_chunks)
    vectors, sentences = _encode(models["int8"], essays_chunks)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() > 0.95 and cosines.mean() > 0.98, cosines
    sentence_cosines = (sentences * reference_sentences).sum(axis=1) / (
        np.linalg.norm(sentences, axis=1) * np.linalg.norm(reference_sentences, axis=1)
    )
    assert np.median(sentence_cosines) > 0.97
    for question, essay in QUESTIONS.items():
        query = models["int8"].encode_queries([question])[0]
        best = essays_chunks[int(np.argmax(vectors @ query))]
        assert best.document.uri == f"/{essay}.txt", question


def test_a_chunk_gets_the_same_vector_in_any_batch(models: dict[str, EncoderModel], essays_chunks: list[Chunk]) -> None:
    together, _ = _encode(models["int8"], essays_chunks[:12])
    alone = np.vstack([_encode(models["int8"], [chunk])[0] for chunk in essays_chunks[:12:5]])
    assert np.array_equal(together[::5], alone)


def test_the_component_takes_backend_and_precision(cache: Path) -> None:
    document = make_document("Penguins live in Antarctica. They eat fish.", uri="/p.txt")
    out = check_component(
        SentenceTransformersEncoder,
        params={"backend": "onnx", "precision": "int8"},
        inputs={"chunks": SentenceChunker().chunk_document(document)},
    )
    assert out["chunks"][0].vector is not None and out["chunks"][0].sentence_vectors.shape == (2, 384)
    component = SentenceTransformersEncoder(backend="onnx", precision="int8")
    assert component.encoder.backend == "onnx" and component.encoder.precision == "int8"


def test_without_the_extra_onnx_is_a_clear_error_and_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_runtime, "onnx_available", lambda: False)
    with pytest.raises(MemflowError, match="pip install onnxruntime onnx"):
        EncoderModel("default", device="cpu", backend="onnx")
    assert EncoderModel("default", device="cpu", backend="auto").backend == "torch"


def test_int8_needs_the_onnx_backend() -> None:
    with pytest.raises(MemflowError, match="int8 needs the ONNX backend"):
        EncoderModel("default", device="cpu", backend="torch", precision="int8")


def test_onnx_runtime_sends_nothing_and_keeps_no_device_id(tmp_path: Path) -> None:
    """memflow turns ONNX Runtime's telemetry off before it is imported: no upload, no id under the home."""
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import os, memflow\n"
        "from memflow.components.encoders.sentence_transformers import EncoderModel\n"
        "EncoderModel('default', device='cpu', backend='onnx', precision='int8').encode_queries(['a sentence'])\n"
        "print(os.environ['ORT_DISABLE_TELEMETRY'])\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    environment |= {"HOME": str(home), "MEMFLOW_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["1"], done.stderr
    assert not list(home.rglob("*")), [str(p) for p in home.rglob("*")]  # no ~/.cache/Microsoft/.../deviceid
    assert "telemetry" not in done.stderr.lower(), done.stderr


def test_an_unwritable_cache_falls_back_to_a_private_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("MEMFLOW_CACHE", str(blocked))
    monkeypatch.setattr(onnx_runtime.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    folder = onnx_runtime._writable_cache("model-abc")
    assert folder == tmp_path / "tmp" / f"memflow-{os.getuid()}" / "onnx" / "model-abc" and folder.is_dir()
    # a fallback folder another user could write is refused, and the error says what to set
    (tmp_path / "tmp" / f"memflow-{os.getuid()}").chmod(0o777)
    with pytest.raises(MemflowError, match="set MEMFLOW_CACHE to a writable directory"):
        onnx_runtime._writable_cache("model-def")
