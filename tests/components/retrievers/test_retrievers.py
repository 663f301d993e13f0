"""BM25, hybrid, reranking, context expansion and iterative retrieval on real essays with the real MiniLM."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from memflow import Memory, Pipeline
from memflow.answering import question_inputs
from memflow.components.base import RunContext
from memflow.components.rerankers.cross_encoder import CrossEncoderReranker
from memflow.components.rerankers.late_interaction import FEATURES, LateInteractionReranker, candidate_features
from memflow.components.retrievers.expand import ContextExpander, chunk_graph
from memflow.errors import MemflowError
from memflow.pipeline import builtin_pipeline
from memflow.storage.store import Store

QUESTION = "What could the government do to increase the number of startups at no cost?"
PIPELINES = Path(builtin_pipeline("ask")).parent


def _hits(memory: Memory, pipeline: str, question: str = QUESTION, k: int = 10) -> list:  # type: ignore[type-arg]
    loaded = Pipeline.from_yaml(PIPELINES / pipeline)
    run = loaded.run(question_inputs(loaded, question, k=k), context=RunContext(store=memory.store), outputs=None)
    answer = run["decode"]["answer"]
    return list(answer.hits)


def _query_vector(store: Store, question: str) -> np.ndarray:
    """The question's vector from the default ask pipeline's encoder."""
    run = Pipeline.from_yaml(builtin_pipeline("ask")).run(
        {"query": question}, context=RunContext(store=store), outputs=["embed.query_vector"]
    )
    return np.asarray(run["embed"]["query_vector"])


@pytest.mark.parametrize(
    "pipeline",
    [
        "ask.yaml",
        "ask-dense.yaml",
        "ask-bm25.yaml",
        "ask-hybrid-rrf.yaml",
        "ask-hybrid-minmax.yaml",
        "ask-hybrid.yaml",
        "ask-multihop.yaml",
    ],
)
def test_every_retrieval_pipeline_finds_the_founder_visa_essay(essay_memory: Memory, pipeline: str) -> None:
    hits = _hits(essay_memory, pipeline)
    assert hits[0].document.endswith("foundervisa.txt")
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_bm25_ranks_a_rare_exact_term_first(essay_memory: Memory) -> None:
    hits = essay_memory.store.lexical.search("NFT", 3)
    chunk = essay_memory.store.chunks([hits[0][0]])[0]
    assert chunk.document.endswith("nft.txt") and "NFT" in chunk.text


def test_late_interaction_features_come_from_the_stored_vectors(essay_memory: Memory) -> None:
    store = essay_memory.store
    hits = _hits(essay_memory, "ask-hybrid-minmax.yaml")
    query_vector = _query_vector(store, QUESTION)
    features = candidate_features(store, QUESTION, query_vector, hits)
    assert features.shape == (len(hits), len(FEATURES))
    chunk = store.chunks([hits[0].chunk_id])[0]
    q = query_vector / np.linalg.norm(query_vector)
    assert features[0, FEATURES.index("maxsim")] == pytest.approx(
        float((chunk.sentence_vectors.astype(np.float32) @ q).max()), abs=1e-5
    )
    assert features[0, FEATURES.index("dense")] == pytest.approx(
        float(store.chunk_vectors([chunk.id])[0] @ q), abs=1e-5
    )
    # lexical late interaction: the share of the question's idf mass the best sentence covers
    from memflow.storage.lexical import tokenize

    idf = store.lexical.idf(tokenize(QUESTION))
    best = max(sum(idf.get(t, 0.0) for t in set(tokenize(s.text))) for s in chunk.sentences) / sum(idf.values())
    assert features[0, FEATURES.index("sentence_lexical")] == pytest.approx(best)
    assert (features[:, FEATURES.index("sentence_lexical")] >= 0).all()
    assert (features[:, FEATURES.index("sentence_lexical")] <= 1 + 1e-9).all()
    # maxsim alone orders the candidates by their best sentence
    only_maxsim = {f: float(f == "maxsim") for f in FEATURES}
    reranker = LateInteractionReranker(**only_maxsim, feedback=0.0)  # type: ignore[arg-type]
    reranker.bind(RunContext(store=store))
    reranked = reranker.run(query=QUESTION, query_vector=query_vector, hits=hits)["hits"]
    maxsim = dict(zip([h.chunk_id for h in hits], features[:, FEATURES.index("maxsim")], strict=True))
    assert [h.chunk_id for h in reranked] == sorted(maxsim, key=lambda i: -maxsim[i])
    # the second hop: the question moved towards the best chunk by that score, blended in by hand
    hop = LateInteractionReranker(**only_maxsim, feedback=0.5, feedback_depth=1)  # type: ignore[arg-type]
    hop.bind(RunContext(store=store))
    rehopped = hop.run(query=QUESTION, query_vector=query_vector, hits=hits)["hits"]
    vectors = store.chunk_vectors([h.chunk_id for h in hits])
    first = features[:, FEATURES.index("maxsim")]
    moved = q + vectors[int(np.argmax(first))]
    second = vectors @ (moved / np.linalg.norm(moved))

    def z(values: np.ndarray) -> np.ndarray:
        return np.asarray((values - values.mean()) / values.std())

    blended = dict(zip([h.chunk_id for h in hits], 0.5 * z(first) + 0.5 * z(second), strict=True))
    assert [h.chunk_id for h in rehopped] == sorted(blended, key=lambda i: -blended[i])
    assert [h.chunk_id for h in rehopped] != [h.chunk_id for h in reranked]
    with pytest.raises(ValueError):
        LateInteractionReranker(**dict.fromkeys(FEATURES, 0.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LateInteractionReranker(feedback=1.0)


def test_phrase_window_and_coverage_features_by_hand(essay_memory: Memory) -> None:
    from memflow.storage.lexical import tokenize

    store = essay_memory.store
    question = "Why do startup founders need a founder visa?"
    hits = _hits(essay_memory, "ask-hybrid-minmax.yaml", question)
    query_vector = _query_vector(store, question)
    features = candidate_features(store, question, query_vector, hits)
    terms = tokenize(question)
    idf = store.lexical.idf(terms)
    pairs = {(a, b) for a, b in zip(terms, terms[1:], strict=False) if a != b}
    pair_mass = sum(idf.get(a, 0.0) + idf.get(b, 0.0) for a, b in pairs)
    q = query_vector / np.linalg.norm(query_vector)
    for row, hit in enumerate(hits[:5]):
        chunk = store.chunks([hit.chunk_id])[0]
        words = tokenize(f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text)
        present = set(zip(words, words[1:], strict=False)) & pairs
        expected = sum(idf.get(a, 0.0) + idf.get(b, 0.0) for a, b in present) / pair_mass
        assert features[row, FEATURES.index("bigram")] == pytest.approx(expected)
        mass = sum(idf.values())
        sims = [float(v.astype(np.float32) @ q) for v in chunk.sentence_vectors]
        covers = [set(tokenize(s.text)) for s in chunk.sentences]
        joint = max(
            max(sim, 0.0) * sum(idf.get(t, 0.0) for t in terms) / mass for sim, terms in zip(sims, covers, strict=True)
        )
        assert features[row, FEATURES.index("sentence_joint")] == pytest.approx(joint, abs=1e-4)
        pairs_of_sentences = [
            max(sims[j], sims[j + 1], 0.0) * sum(idf.get(t, 0.0) for t in covers[j] | covers[j + 1]) / mass
            for j in range(len(sims) - 1)
        ]
        assert features[row, FEATURES.index("window_joint")] == pytest.approx(
            max([joint, *pairs_of_sentences]), abs=1e-4
        )
        assert features[row, FEATURES.index("coverage")] == pytest.approx(
            sum(idf.get(t, 0.0) for t in set(words)) / mass
        )
        # document_coverage: the same over every chunk of the chunk's document (its whole text and title)
        document = store.find_document(chunk.document)
        assert document is not None
        whole = set(tokenize(f"{chunk.title}\n{store.document_text(document.id)}"))
        assert features[row, FEATURES.index("document_coverage")] == pytest.approx(
            sum(idf.get(t, 0.0) for t in whole) / mass
        )
        assert features[row, FEATURES.index("document_coverage")] >= features[row, FEATURES.index("coverage")] - 1e-9
    # the founder-visa essay holds the phrase ("founder visa"): its best chunk has phrase evidence
    top = [row for row, h in enumerate(hits) if h.document.endswith("foundervisa.txt")][0]
    assert features[top, FEATURES.index("bigram")] > 0
    assert (features[:, FEATURES.index("bigram")] <= 1 + 1e-9).all()


def test_cross_encoder_without_a_model_passes_hits_through_and_says_so(
    essay_memory: Memory, caplog: pytest.LogCaptureFixture
) -> None:
    hits = _hits(essay_memory, "ask-bm25.yaml")
    reranker = CrossEncoderReranker()
    context = RunContext(store=essay_memory.store)
    reranker.bind(context)
    with caplog.at_level(logging.WARNING, logger="memflow"):
        assert reranker.run(query=QUESTION, hits=hits)["hits"] == hits
    assert "no local cross-encoder model configured" in caplog.text
    assert context.problems[0].kind == "skipped"
    with pytest.raises(MemflowError, match="model directory not found"):
        CrossEncoderReranker(model="/nonexistent/cross-encoder")


def test_cross_encoder_reranks_by_the_local_model(essay_memory: Memory, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    from memflow.models import resolve_model_path

    # A cross-encoder built from the packaged MiniLM (its scoring head untrained), saved locally: the
    # component must order hits exactly by that model's scores.
    CrossEncoder(str(resolve_model_path("default")), num_labels=1, local_files_only=True).save(str(tmp_path / "ce"))
    hits = _hits(essay_memory, "ask-bm25.yaml")
    reranker = CrossEncoderReranker(model=str(tmp_path / "ce"), depth=5)
    reranker.bind(RunContext(store=essay_memory.store))
    reranked = reranker.run(query=QUESTION, hits=hits)["hits"]
    scores = CrossEncoder(str(tmp_path / "ce"), local_files_only=True).predict([(QUESTION, h.text) for h in hits[:5]])
    expected = [hits[i].chunk_id for i in np.argsort(-scores, kind="stable")]
    assert [h.chunk_id for h in reranked[:5]] == expected
    assert [h.chunk_id for h in reranked[5:]] == [h.chunk_id for h in hits[5:]]


def test_context_expansion_adds_neighbours_within_the_token_budget(essay_memory: Memory) -> None:
    store = essay_memory.store
    hits = _hits(essay_memory, "ask-bm25.yaml", k=1)
    top = store.chunks([hits[0].chunk_id])[0]
    graph = chunk_graph(store, [top.document_id])
    expander = ContextExpander(distance=1, token_budget=10_000, top=1)
    expander.bind(RunContext(store=store))
    expanded = expander.run(hits=hits)["hits"]
    assert expanded[: len(hits)] == hits
    added = expanded[len(hits) :]
    neighbours = {n for n in graph.neighbors(top.id)} - {h.chunk_id for h in hits}
    assert {h.chunk_id for h in added} == neighbours and neighbours
    assert all(h.document == top.document and abs(h.ordinal - top.ordinal) == 1 for h in added)
    assert all(h.score < min(x.score for x in hits) for h in added)
    tight = ContextExpander(distance=3, token_budget=300, top=1)
    tight.bind(RunContext(store=store))
    extra = tight.run(hits=hits)["hits"][len(hits) :]
    assert sum(graph.nodes[h.chunk_id]["tokens"] for h in extra) <= 300 if extra else True
    assert ContextExpander(token_budget=0).run(hits=hits)["hits"] == hits


BRIDGE = {
    "prize.txt": "The Aurelian Medal for glassmaking was awarded in 1931 to Tomasz Wrobelski. The jury praised "
    "his furnace designs. The medal ceremony took place in a small hall.",
    "village.txt": "Tomasz Wrobelski grew up in the fishing village of Hel, on the Baltic coast. His father "
    "repaired nets there for forty years.",
    "bread.txt": "Sourdough bread needs a starter culture that is fed with flour and water every day.",
    "trains.txt": "The first electric trams in Europe ran in Berlin, and many cities soon followed.",
    "chess.txt": "A chess clock limits the time each player spends thinking about their moves.",
}


@pytest.fixture(scope="module")
def bridge_memory(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("bridge")
    for name, text in BRIDGE.items():
        (folder / name).write_text(text)
    with Memory(tmp_path_factory.mktemp("bridge-store")) as memory:
        assert len(memory.ingest([str(folder)]).ingested) == len(BRIDGE)
        yield memory


def _ask(memory: Memory, decoder: str) -> object:
    pipeline = Pipeline.from_string(f"""
name: two-hop
components:
  embed: {{type: encoders.query}}
  retrieve: {{type: retrievers.dense, params: {{k: 1}}}}
  decode: {{type: {decoder}, params: {{summaries: false}}}}
connections:
  - embed.query_vector -> retrieve.query_vector
  - embed.query_vector -> decode.query_vector
  - embed.query -> decode.query
  - retrieve.hits -> decode.hits
""")
    return pipeline.run(
        {"query": "Where did the winner of the Aurelian Medal grow up?"}, context=RunContext(store=memory.store)
    )["decode"]["answer"]


def test_iterative_retrieval_finds_the_second_passage_through_the_first(bridge_memory: Memory) -> None:
    single = _ask(bridge_memory, "decoders.attention")
    assert [h.document.rsplit("/", 1)[1] for h in single.hits] == ["prize.txt"]  # type: ignore[attr-defined]
    multi = _ask(bridge_memory, "decoders.iterative")
    documents = [h.document.rsplit("/", 1)[1] for h in multi.hits]  # type: ignore[attr-defined]
    assert documents[0] == "prize.txt" and "village.txt" in documents
    # the second passage is read: its answer sentence outweighs every distractor's sentences
    weights = {e.text: e.weight for e in multi.evidence}  # type: ignore[attr-defined]
    bridge = weights["Tomasz Wrobelski grew up in the fishing village of Hel, on the Baltic coast."]
    distractors = [
        w
        for t, w in weights.items()
        if not ("Wrobelski" in t or "Medal" in t or "medal" in t or "jury" in t or "nets" in t)
    ]
    assert bridge > max(distractors, default=0.0), sorted(weights.items(), key=lambda x: -x[1])


@pytest.mark.parametrize("fusion", ["minmax", "zscore", "rrf"])
def test_asking_the_hybrid_retriever_for_more_hits_never_reorders_the_first(essay_memory: Memory, fusion: str) -> None:
    from memflow.components.retrievers.hybrid import HybridRetriever, fuse

    store = essay_memory.store
    question = "Why do startup founders need a founder visa?"
    vector = _query_vector(store, question)
    retriever = HybridRetriever(k=5, candidates=5, fusion=fusion)  # type: ignore[arg-type]
    retriever.bind(RunContext(store=store))
    few = [h.chunk_id for h in retriever.run(query=question, query_vector=vector)["hits"]]
    many = retriever.run(query=question, query_vector=vector, k=20)["hits"]
    union = fuse(store.search(vector, 5), store.lexical.search(question, 5), fusion=fusion)  # type: ignore[arg-type]
    assert len(few) == 5 and [h.chunk_id for h in many[:5]] == few
    # the candidates' union first, as a run with k = 5 fuses it; deeper chunks after, scored below it
    assert [h.chunk_id for h in many[: len(union)]] == [i for i, _ in union]
    assert len(many) == 20 and [h.rank for h in many] == list(range(1, 21))
    assert all(a.score >= b.score for a, b in zip(many, many[1:], strict=False))
