"""amelia.rag.retrieval against a real index (bundled model, embedded Qdrant): the right
document for distinctive questions, filters, score threshold, validation (issue 12 item 6)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from amelia.rag.errors import RagError
from amelia.rag.retrieval import filter_problem, is_indexed, search
from amelia.rag.sources import Document, SourceConfig

REPO = Path(__file__).resolve().parents[2]

CORPUS = {
    "garden/tomatoes.md": "# Growing tomatoes\n\n## Watering\n\nWater tomato plants deeply twice a week at the "
                          "roots; uneven watering splits the fruit and causes blossom end rot.",
    "garden/compost.md": "# Compost\n\nA compost heap needs green nitrogen-rich scraps and brown carbon-rich "
                         "leaves, turned every week so the microbes get oxygen.",
    "space/mars.md": "# Mars\n\nMars has the tallest volcano in the solar system, Olympus Mons, and two small "
                     "moons named Phobos and Deimos.",
    "space/telescopes.md": "# Telescopes\n\n## Mirrors\n\nA reflecting telescope gathers light with a curved "
                           "primary mirror; a larger aperture resolves fainter galaxies.",
    "finance/interest.txt": "Compound interest adds the interest earned back to the principal, so savings grow "
                            "exponentially with the annual rate and the number of years.",
    "music/guitar.md": "# Guitar\n\nTo tune a guitar in standard tuning, the strings from low to high are "
                       "E A D G B E; a clip-on tuner reads each string's pitch.",
    "cooking/risotto.md": "# Risotto\n\nToast arborio rice in butter, then add hot stock one ladle at a time, "
                          "stirring until the rice is creamy but still firm.",
    "health/sleep.md": "# Sleep\n\nAdults need seven to nine hours of sleep; caffeine late in the day and "
                       "screens at night delay falling asleep.",
}

QUESTIONS = {
    "How often should I water my tomatoes?": "garden/tomatoes.md",
    "What is the highest volcano on another planet?": "space/mars.md",
    "How do savings grow over many years?": "finance/interest.txt",
    "Which notes are the strings of a guitar tuned to?": "music/guitar.md",
    "How do I make a creamy rice dish?": "cooking/risotto.md",
    "How many hours of rest does a grown-up need each night?": "health/sleep.md",
    "What should go into a compost pile?": "garden/compost.md",
    "Why does a bigger mirror show fainter galaxies?": "space/telescopes.md",
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from amelia.rag.indexer import index_source
    from amelia.rag.vectors import close_all

    root = tmp_path_factory.mktemp("proj")
    docs = []
    for rel, text in CORPUS.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        docs.append(Document(rel, hashlib.sha256(text.encode()).hexdigest(), str(p)))
    config = SourceConfig(name="kb")
    store_dir = str(root / ".amelia")
    assert not is_indexed(config, store_dir)
    report = index_source(config, docs, store_dir)
    assert len(report.added) == len(CORPUS)
    yield config, store_dir
    close_all()


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_distinctive_questions_find_their_document(indexed, question):
    config, store_dir = indexed
    hits = search(config, store_dir, question, top_k=3)
    assert hits[0].name == QUESTIONS[question]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hit_fields(indexed):
    config, store_dir = indexed
    (hit,) = search(config, store_dir, "tune a guitar", top_k=1)
    assert hit.source == "kb" and hit.name == "music/guitar.md" and hit.chunk == 0
    assert hit.headings == ("Guitar",) and "standard tuning" in hit.text
    assert hit.content_hash == hashlib.sha256(hit.text.encode()).hexdigest()
    assert hit.id and 0 < hit.score <= 1.0001


def test_is_indexed(indexed):
    config, store_dir = indexed
    assert is_indexed(config, store_dir)
    assert not is_indexed(SourceConfig(name="other"), store_dir)
    assert not is_indexed(SourceConfig(name="kb", model="BAAI/bge-small-en-v1.5"), store_dir)


def test_filters(indexed):
    config, store_dir = indexed
    q = "plants and planets"
    assert {h.name for h in search(config, store_dir, q, top_k=8, filter={"dir": "space"})} == {
        "space/mars.md", "space/telescopes.md"}
    assert {h.name for h in search(config, store_dir, q, top_k=8, filter={"dir": "./garden/"})} == {
        "garden/tomatoes.md", "garden/compost.md"}
    named = search(config, store_dir, q, top_k=8, filter={"name": ["music/guitar.md", "health/sleep.md"]})
    assert {h.name for h in named} == {"music/guitar.md", "health/sleep.md"}
    assert [h.name for h in search(config, store_dir, q, top_k=8, filter={"format": "text"})] == [
        "finance/interest.txt"]
    by_heading = search(config, store_dir, q, top_k=8, filter={"heading": "Mirrors"})
    assert [h.name for h in by_heading] == ["space/telescopes.md"]
    both = search(config, store_dir, q, top_k=8, filter={"dir": "garden", "heading": "Watering"})
    assert [h.name for h in both] == ["garden/tomatoes.md"]
    assert search(config, store_dir, q, top_k=8, filter={"dir": "nowhere"}) == []


def test_score_threshold(indexed):
    config, store_dir = indexed
    q = "How often should I water my tomatoes?"
    everything = search(config, store_dir, q, top_k=8)
    cut = (everything[0].score + everything[1].score) / 2
    assert [h.name for h in search(config, store_dir, q, top_k=8, score_threshold=cut)] == ["garden/tomatoes.md"]
    assert search(config, store_dir, q, top_k=8, score_threshold=0.99) == []


def test_filter_problem():
    assert filter_problem({"name": "a.md", "dir": "docs", "format": "pdf", "heading": "Intro"}) is None
    assert filter_problem({"name": ["a.md", "b.md"]}) is None
    assert "unknown filter field 'path'" in filter_problem({"path": "a.md"})
    assert "name must be a path or a list of paths" in filter_problem({"name": 3})
    assert "dir must be" in filter_problem({"dir": ["ok", ""]})
    assert filter_problem(["name"]) is not None


def test_search_errors(indexed, tmp_path):
    config, store_dir = indexed
    with pytest.raises(RagError, match="unknown filter field"):
        search(config, store_dir, "x", filter={"size": 3})
    with pytest.raises(RagError) as e:
        search(SourceConfig(name="never"), store_dir, "x")
    assert "not been indexed" in e.value.message and "amelia index --source never" in e.value.hint
