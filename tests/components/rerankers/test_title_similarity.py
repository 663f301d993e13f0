"""The title feature (rerankers.title_similarity) on the real MiniLM and a real store of titled records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memflow import Memory, Pipeline
from memflow.components.base import RunContext
from memflow.components.encoders.sentence_transformers import load_encoder
from memflow.components.rerankers.late_interaction import FEATURES, LateInteractionReranker, candidate_features
from memflow.components.rerankers.title_similarity import TitleScorer
from memflow.pipeline import builtin_pipeline
from memflow.types import informative_title

# The same body under each title: only the title tells the records apart.
BODY = (
    "The study followed 1,200 adults for five years. Outcomes were compared between the groups, and the "
    "difference was significant after adjusting for age and sex."
)
RECORDS = [
    {"_id": "penguins", "title": "Emperor penguin colonies shrink as Antarctic sea ice retreats", "text": BODY},
    {"_id": "aspirin", "title": "Daily aspirin use lowers the risk of colorectal cancer", "text": BODY},
    {"_id": "solar", "title": "Dust reduces the efficiency of solar panels in deserts", "text": BODY},
    {"_id": "untitled", "text": BODY},
]
QUESTION = "Does taking aspirin every day reduce colon cancer risk?"


def test_informative_title_leaves_out_a_loaders_fallback() -> None:
    assert informative_title("/data/notes/founders.txt", "founders") == ""  # the file name's stem
    assert informative_title("/data/corpus.jsonl#4983", "4983") == ""  # a JSONL record's id
    assert informative_title("/data/corpus.jsonl#7", " Microstructural development ") == "Microstructural development"
    assert informative_title("/data/essay.md", "How to Do Great Work") == "How to Do Great Work"


@pytest.fixture(scope="module")
def titled_memory(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("titled")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    memory = Memory(root / "store")
    memory.ingest([str(corpus)])
    yield memory
    memory.close()


def _hits(memory: Memory) -> tuple[np.ndarray, list]:  # type: ignore[type-arg]
    run = Pipeline.from_yaml(builtin_pipeline("ask-hybrid-minmax")).run(
        {"query": QUESTION, "k": 10},
        context=RunContext(store=memory.store),
        outputs=["embed.query_vector", "decode.answer"],
    )
    return np.asarray(run["embed"]["query_vector"]), list(run["decode"]["answer"].hits)


def test_the_title_feature_is_the_questions_similarity_to_the_title(titled_memory: Memory) -> None:
    store = titled_memory.store
    vector, hits = _hits(titled_memory)
    assert len(hits) == len(RECORDS)
    scorer = TitleScorer(load_encoder("default"))
    column = candidate_features(store, QUESTION, vector, hits, titles=scorer)[:, FEATURES.index("title")]
    encoder = load_encoder("default")
    q = encoder.encode_queries([QUESTION])[0]
    by_id = {r["_id"]: r.get("title", "") for r in RECORDS}
    titled = []
    for row, hit in enumerate(hits):
        title = by_id[hit.document.rpartition("#")[2]]
        if title:
            expected = float(encoder.encode_queries([title])[0] @ q)
            assert column[row] == pytest.approx(expected, abs=2e-3)  # title vectors are cached as float16
            titled.append(column[row])
        else:  # no title: the titled candidates' mean, so it is neither raised nor lowered
            assert column[row] == pytest.approx(
                np.mean([column[r] for r, h in enumerate(hits) if by_id[h.document.rpartition("#")[2]]])
            )
    assert max(titled) == column[[h.document.endswith("#aspirin") for h in hits].index(True)]
    # without a scorer the column is 0; the same cache serves every scorer of this encoder
    assert (candidate_features(store, QUESTION, vector, hits)[:, FEATURES.index("title")] == 0).all()
    assert TitleScorer(load_encoder("default")).cache is scorer.cache
    assert scorer.scores(vector, ["", ""]).tolist() == pytest.approx([np.nan, np.nan], nan_ok=True)


def test_reranking_by_title_alone_puts_the_matching_title_first(titled_memory: Memory) -> None:
    vector, hits = _hits(titled_memory)
    only_title = {f: float(f == "title") for f in FEATURES}
    reranker = LateInteractionReranker(**only_title, feedback=0.0)  # type: ignore[arg-type]
    reranker.bind(RunContext(store=titled_memory.store))
    reranked = reranker.run(query=QUESTION, query_vector=vector, hits=hits)["hits"]
    assert reranked[0].document.endswith("#aspirin")
    assert LateInteractionReranker(title=0.0).title_scorer() is None  # weight 0: no encoder is loaded for it
    TitleScorer.clear_caches()
    assert TitleScorer(load_encoder("default")).cache.nbytes == 0


def test_an_essay_store_has_no_titles_so_the_feature_is_flat(essay_memory: Memory, tmp_path: Path) -> None:
    run = Pipeline.from_yaml(builtin_pipeline("ask-hybrid-minmax")).run(
        {"query": "Why do founders need a visa?", "k": 10},
        context=RunContext(store=essay_memory.store),
        outputs=["embed.query_vector", "decode.answer"],
    )
    vector, hits = np.asarray(run["embed"]["query_vector"]), list(run["decode"]["answer"].hits)
    column = candidate_features(
        essay_memory.store, "Why do founders need a visa?", vector, hits, titles=TitleScorer(load_encoder("default"))
    )[:, FEATURES.index("title")]
    assert (column == 0).all()  # each .txt essay's title is its file name: a fallback, not a title
