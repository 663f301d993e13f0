"""The encoder on the real packaged MiniLM: chunk vectors as sentence-transformers computes them, and
late-chunked sentence vectors from the same pass."""

from __future__ import annotations

import numpy as np
import pytest

from memflow.components.base import RunContext
from memflow.components.chunkers.sentences import SentenceChunker
from memflow.components.encoders.sentence_transformers import (
    QueryEncoder,
    SentenceTransformersEncoder,
    load_encoder,
)
from memflow.errors import MemflowError, ModelMismatchError
from memflow.models import pick_device, pick_dtype
from memflow.storage.store import Store
from memflow.testing import check_component, make_document

TEXT = (
    "The Eiffel Tower was built in 1889 for the World's Fair in Paris. "
    "Photosynthesis converts light energy into chemical energy in plants. "
    "The stock market fell sharply after the announcement of new tariffs. "
    "Penguins live mostly in the Southern Hemisphere, especially Antarctica."
)


@pytest.fixture(scope="module")
def encoded():  # type: ignore[no-untyped-def]
    document = make_document(TEXT, uri="/facts.txt")
    chunks = SentenceChunker(max_tokens=256).chunk_document(document)
    SentenceTransformersEncoder(backend="torch").run(chunks=chunks)  # the PyTorch path (ONNX: test_onnx_runtime)
    return chunks


def test_chunk_vector_matches_sentence_transformers_encode(encoded) -> None:  # type: ignore[no-untyped-def]
    model = load_encoder("default", backend="torch")
    reference = model.model.encode([encoded[0].text], normalize_embeddings=True)[0]
    assert float(np.dot(encoded[0].vector, reference)) > 0.999
    assert encoded[0].vector.dtype == np.float32
    assert np.linalg.norm(encoded[0].vector) == pytest.approx(1.0, abs=1e-5)


def test_one_float16_unit_vector_per_sentence(encoded) -> None:  # type: ignore[no-untyped-def]
    chunk = encoded[0]
    assert len(chunk.sentences) == 4
    assert chunk.sentence_vectors.dtype == np.float16
    assert chunk.sentence_vectors.shape == (4, 384)
    norms = np.linalg.norm(chunk.sentence_vectors.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)


def test_sentence_vectors_find_their_own_sentence(encoded) -> None:  # type: ignore[no-untyped-def]
    """Each late-chunked sentence vector is closest to its own question, not to its neighbours'."""
    model = load_encoder("default", backend="torch")
    questions = [
        "When was the Eiffel Tower built?",
        "How do plants turn light into energy?",
        "What happened to stocks after the tariffs?",
        "Where do penguins live?",
    ]
    q = model.encode_queries(questions)
    similarity = q @ encoded[0].sentence_vectors.astype(np.float32).T
    assert similarity.argmax(axis=1).tolist() == [0, 1, 2, 3]


def test_independent_sentence_vectors_are_each_sentence_encoded_alone() -> None:
    """``sentence_vectors: independent``: the chunk vector is unchanged, and each sentence's vector is the
    model's embedding of that sentence on its own, in the chunks' sentence order, across several chunks."""
    document = make_document(TEXT, uri="/facts.txt")
    chunks = SentenceChunker(max_tokens=24, overlap=0.0).chunk_document(document)
    assert len(chunks) > 1
    late = SentenceChunker(max_tokens=24, overlap=0.0).chunk_document(document)
    SentenceTransformersEncoder(backend="torch").run(chunks=late)
    SentenceTransformersEncoder(backend="torch", sentence_vectors="independent").run(chunks=chunks)
    model = load_encoder("default", backend="torch")
    for chunk, reference in zip(chunks, late, strict=True):
        assert np.allclose(chunk.vector, reference.vector, atol=1e-6)
        alone = model.model.encode([s.text for s in chunk.sentences], normalize_embeddings=True)
        assert chunk.sentence_vectors.dtype == np.float16
        assert chunk.sentence_vectors.shape == alone.shape
        assert np.allclose(chunk.sentence_vectors.astype(np.float32), alone, atol=2e-3)
        if len(chunk.sentences) > 1:  # pooled within the chunk's context is a different vector
            assert not np.allclose(chunk.sentence_vectors, reference.sentence_vectors, atol=2e-3)


def test_header_title_is_read_before_every_chunk() -> None:
    """``header: title``: each chunk vector is the model's embedding of "title\\nchunk text"; the sentence
    vectors pool only the chunk's own tokens (each still finds its own sentence) and stay unit float16."""
    document = make_document(TEXT, uri="/facts.txt", title="Four unrelated facts")
    plain = SentenceChunker(max_tokens=24, overlap=0.0).chunk_document(document)
    headed = SentenceChunker(max_tokens=24, overlap=0.0).chunk_document(document)
    SentenceTransformersEncoder(backend="torch").run(chunks=plain)
    SentenceTransformersEncoder(backend="torch", header="title").run(chunks=headed)
    model = load_encoder("default", backend="torch")
    expected = model.model.encode([f"Four unrelated facts\n{c.text}" for c in headed], normalize_embeddings=True)
    sentences = [s.text for c in headed for s in c.sentences]
    alone = model.model.encode(sentences, normalize_embeddings=True)
    pooled = np.vstack([c.sentence_vectors.astype(np.float32) for c in headed])
    for chunk, reference, vector in zip(headed, plain, expected, strict=True):
        assert np.allclose(chunk.vector, vector, atol=1e-5)
        assert not np.allclose(chunk.vector, reference.vector, atol=1e-3)  # the title changed what it encodes
    assert pooled.shape == (len(sentences), 384) and np.allclose(np.linalg.norm(pooled, axis=1), 1, atol=2e-3)
    assert ((pooled @ alone.T).argmax(axis=1) == np.arange(len(sentences))).all()


def test_header_title_section_and_its_limits() -> None:
    model = load_encoder("default", backend="torch")
    document = make_document(TEXT, uri="/facts.txt", title="Facts")
    chunk = SentenceChunker(max_tokens=256).chunk_document(document)[0]
    assert model._header(chunk, "none") == "" and model._header(chunk, "title") == "Facts"
    chunk.section = "Science"
    assert model._header(chunk, "title_section") == "Facts - Science"
    chunk.section = "Facts"  # a section named like the document is not said twice
    assert model._header(chunk, "title_section") == "Facts"
    chunk.document.title = " ".join(["a very long title"] * 40)
    header = model._header(chunk, "title")
    assert chunk.document.title.startswith(header) and len(model.tokenizer.tokenize(header)) == 32
    # the header widens the window instead of cutting the chunk: a full 256-token chunk keeps its last sentence
    long_text = " ".join(f"Sentence number {n} says something about topic {n}." for n in range(60))
    full, plain = (
        SentenceChunker(max_tokens=256, overlap=0.0).chunk_document(
            make_document(long_text, uri="/long.txt", title=chunk.document.title)
        )[0]
        for _ in range(2)
    )
    assert full.token_count > 240
    SentenceTransformersEncoder(backend="torch", header="title").run(chunks=[full])
    SentenceTransformersEncoder(backend="torch").run(chunks=[plain])
    last, reference = full.sentence_vectors[-1].astype(np.float32), plain.sentence_vectors[-1].astype(np.float32)
    assert float(last @ full.vector) < 0.99  # pooled from its own tokens, not the truncated sentence's fallback
    assert float(last @ reference) > 0.8  # and still close to what it is without the header (0.87 here)


@pytest.mark.parametrize(
    ("uri", "title"), [("/facts.txt", ""), ("/notes/facts.txt", "facts"), ("/corpus.jsonl#doc-7", "doc-7")]
)
def test_a_document_without_a_title_gets_no_header(uri: str, title: str) -> None:
    """No title, or only the loaders' fallback title (file stem, JSONL id): the vectors are the header-less ones."""
    document = make_document(TEXT, uri=uri, title=title)
    plain = SentenceChunker(max_tokens=24, overlap=0.0).chunk_document(document)
    headed = SentenceChunker(max_tokens=24, overlap=0.0).chunk_document(document)
    SentenceTransformersEncoder(backend="torch").run(chunks=plain)
    SentenceTransformersEncoder(backend="torch", header="title_section").run(chunks=headed)
    for chunk, reference in zip(headed, plain, strict=True):
        assert np.array_equal(chunk.vector, reference.vector)
        assert np.array_equal(chunk.sentence_vectors, reference.sentence_vectors)


def test_sentence_vectors_option_is_checked() -> None:
    with pytest.raises(ValueError, match="sentence_vectors"):
        SentenceTransformersEncoder(sentence_vectors="pooled")  # type: ignore[arg-type]
    assert SentenceTransformersEncoder(sentence_vectors="independent").params()["sentence_vectors"] == "independent"
    with pytest.raises(ValueError, match="header"):
        SentenceTransformersEncoder(header="filename")  # type: ignore[arg-type]
    assert SentenceTransformersEncoder(header="title").params()["header"] == "title"


def test_query_encoder_is_a_conforming_component() -> None:
    outputs = check_component(QueryEncoder, inputs={"query": "hello"})
    assert outputs["query_vector"].shape == (384,)
    check_component(SentenceTransformersEncoder, inputs={"chunks": []})


def test_encoder_is_recorded_in_the_store_and_a_different_one_refused(tmp_path, encoded) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s")
    encoder = SentenceTransformersEncoder()
    encoder.bind(RunContext(store=store))
    encoder.run(chunks=list(encoded))
    assert store.setting("encoder") == "sentence-transformers/all-MiniLM-L6-v2"
    assert store.setting("dimension") == 384
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2"):
        store.check_encoder("/models/other", 768, record=False)


def test_missing_model_path_fails_at_build_time_naming_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MemflowError, match="model directory not found: .*nope"):
        SentenceTransformersEncoder(model=str(tmp_path / "nope"))


def test_device_auto_and_precision_choice() -> None:
    import torch

    device = pick_device("auto")
    assert device == ("cuda" if torch.cuda.is_available() else device)
    # Half precision is the CUDA path; the CPU keeps float32.
    assert pick_dtype("cuda") == torch.float16
    assert pick_dtype("cpu") == torch.float32
    assert pick_dtype("cpu", "float16") == torch.float16
    if not torch.cuda.is_available():
        with pytest.raises(MemflowError, match="cuda"):
            pick_device("cuda")


def test_half_precision_encoder_agrees_with_full_precision() -> None:
    """The fp16 code path (the CUDA default) run on this machine's device: vectors agree with fp32."""
    import torch

    full = load_encoder("default", device="auto", precision="float32", backend="torch")
    try:
        half = load_encoder("default", device="auto", precision="float16", backend="torch")
        q_half = half.encode_queries(["a question about penguins"])
    except (RuntimeError, NotImplementedError) as exc:  # some CPU builds lack fp16 kernels
        pytest.skip(f"fp16 kernels unavailable on {pick_device('auto')}: {exc}")
    q_full = full.encode_queries(["a question about penguins"])
    assert half.dtype == torch.float16
    assert float(q_half[0] @ q_full[0]) > 0.99
