"""The per-deck knowledge index: building, isolation, staleness, cleaning and PPTX notes as sources."""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from deckchat.domain.content import DeckContent, DocumentContent, FaqEntry, SlideContent
from deckchat.ml import index as index_mod
from deckchat.ml.index import (
    IndexMissingError,
    StaleIndexError,
    build_index,
    deck_units,
    delete_index,
    load_index,
    read_manifest,
)
from deckchat.ml.retrieval import retrieve, vector_search

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "real"

MESSY_DOC = """---
title: Security overview
sidebar_position: 3
---
<head><script>{`{"@type": "FAQPage"}`}</script></head>

import Callout from '@site/src/components/Callout';

## Encryption

All data is encrypted at rest with AES-256. <Callout type="info">Keys rotate every 90 days.</Callout>

<img src={useBaseUrl('img/keys.png')} alt="key diagram" />

## Certifications

We completed a SOC 2 Type I audit in January.
"""


def sensor_deck(deck_id: int = 1, **changes) -> DeckContent:
    """A small pitch deck about leak-detection sensors."""
    deck = DeckContent(
        deck_id=deck_id,
        title="Tidewater",
        version=1,
        slides=[
            SlideContent(1, "Tidewater", "Acoustic leak detection for city water networks.",
                         "Thanks for coming."),
            SlideContent(2, "The problem", "Cities lose 25% of drinking water to leaks.",
                         "Most leaks are found only after a water main bursts."),
            SlideContent(3, "Team", "Maya Okafor, CEO\nJonas Lind, CTO",
                         "Jonas did his PhD on acoustic signal processing in pipes."),
            SlideContent(4, "The ask", "Raising $6M seed", "The money goes to engineering and sales."),
        ],
        faq=[FaqEntry("Who owns the data?", "The utility owns all recordings and leak reports.")],
        documents=[DocumentContent("security_overview.md", "md", MESSY_DOC)],
        examples=[FaqEntry("What do you do?", "We find leaks in water pipes.")],
    )
    return replace(deck, **changes)


def git_deck(deck_id: int = 2) -> DeckContent:
    """A second deck on another topic, with a colliding slide number and FAQ question."""
    return DeckContent(
        deck_id=deck_id,
        title="Git workshop",
        version=1,
        slides=[
            SlideContent(1, "Intro to Git", "Version control for beginners.", "Welcome to the workshop."),
            SlideContent(2, "Git commit", "git commit -m 'message'", "A commit saves the staged changes."),
        ],
        faq=[FaqEntry("Who owns the data?", "Every clone holds the full repository history.")],
    )


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Two decks indexed once per session under one root (the embedding model loads once)."""
    root = tmp_path_factory.mktemp("indexes")
    stats = {1: build_index(sensor_deck(), root), 2: build_index(git_deck(), root)}
    return root, stats


def test_build_writes_manifest_and_sources(built):
    root, stats = built
    assert stats[1]["deck_id"] == 1 and stats[1]["nodes"] >= stats[1]["sources"] == 7
    manifest = read_manifest(1, root)
    assert manifest["fingerprint"] == index_mod.index_fingerprint(sensor_deck())
    assert manifest["embed_model"] == index_mod.DEFAULT_EMBED_MODEL
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no build leftovers
    sources = set(load_index(sensor_deck(), root).units)
    assert {"slide:1", "slide:4", "faq:Who owns the data?", "doc:security_overview.md#Encryption",
            "doc:security_overview.md#Certifications"} <= sources


def test_retrieval_puts_the_right_source_first(built):
    root, _ = built
    found = retrieve(sensor_deck(), "How much money are you raising?", root)
    assert found.results[0].source == "slide:4" and found.results[0].slide == 4
    assert found.answerable
    data = found.to_dict()
    assert set(data) >= {"results", "answerable"} and len(data["results"]) == 3
    assert set(data["results"][0]) == {"source", "slide", "score", "text"}
    assert "Speaker notes: The money goes to engineering" in data["results"][0]["text"]
    found = retrieve(sensor_deck(), "Is the data encrypted?", root)
    assert found.results[0].source == "doc:security_overview.md#Encryption"
    assert found.results[0].slide is None


def test_unanswerable_question_is_flagged(built):
    root, _ = built
    found = retrieve(sensor_deck(), "What is the capital of France?", root)
    assert found.answerable is False and found.confidence < 0.5


def test_slide_on_screen_answers_a_vague_question(built):
    root, _ = built
    found = retrieve(sensor_deck(), "What does this slide mean?", root, slide=2)
    assert found.results[0].source == "slide:2" and found.answerable
    named = retrieve(sensor_deck(), "What is on slide 3?", root)
    assert named.results[0].source == "slide:3"
    # The slide on screen does not override a question another source clearly answers.
    other = retrieve(sensor_deck(), "Who owns the recordings?", root, slide=2)
    assert other.results[0].source == "faq:Who owns the data?"


def test_retrieval_is_restricted_to_one_deck(built):
    root, _ = built
    sensor_texts = {u.text for u in deck_units(sensor_deck())}
    for question in ("How do I commit my changes with git?", "Who owns the data?", "version control"):
        found = retrieve(sensor_deck(), question, root, k=10)
        assert found.results and all(h.text in sensor_texts for h in found.results)
        assert all("clone" not in h.text and "git commit" not in h.text for h in found.results)
        plain = vector_search(sensor_deck(), question, root, k=10)
        assert all("clone" not in h.text for h in plain.results)
    git = retrieve(git_deck(), "Who owns the data?", root, k=10)
    assert all("utility" not in h.text for h in git.results)


def test_index_of_another_deck_is_never_loaded(built, tmp_path):
    root, _ = built
    # A deck whose folder holds another deck's nodes (copied by hand, say) is refused.
    import shutil

    shutil.copytree(root / "2", tmp_path / "1")
    with pytest.raises(StaleIndexError):
        load_index(sensor_deck(), tmp_path)


def test_stale_index_is_never_served(tmp_path):
    deck = sensor_deck(deck_id=7)
    build_index(deck, tmp_path)
    retrieve(deck, "Who is the CTO?", tmp_path)
    new_ask = SlideContent(4, "The ask", "Raising $9M", "New notes.")
    changed = replace(deck, slides=deck.slides[:3] + [new_ask])
    with pytest.raises(StaleIndexError, match="deckchat deck index 7"):
        retrieve(changed, "How much are you raising?", tmp_path)
    with pytest.raises(StaleIndexError):
        retrieve(replace(deck, faq=[]), "Who owns the data?", tmp_path)
    with pytest.raises(StaleIndexError):
        retrieve(replace(deck, documents=[]), "Is data encrypted?", tmp_path)
    with pytest.raises(StaleIndexError):
        retrieve(deck, "Who is the CTO?", tmp_path, embed_model="some/other-model")
    # Examples feed the prompt, not the index: changing them leaves the index current.
    retrieve(replace(deck, examples=[]), "Who is the CTO?", tmp_path)


def test_rebuild_on_change_serves_the_new_material(tmp_path):
    deck = sensor_deck(deck_id=8)
    build_index(deck, tmp_path)
    japan = FaqEntry("Do you sell in Japan?", "Yes, through a distributor in Osaka.")
    changed = replace(deck, faq=deck.faq + [japan])
    found = retrieve(changed, "Can I buy it in Japan?", tmp_path, rebuild=True)
    assert found.results[0].source == "faq:Do you sell in Japan?"
    assert read_manifest(8, tmp_path)["fingerprint"] == index_mod.index_fingerprint(changed)
    with pytest.raises(StaleIndexError):
        retrieve(deck, "Who owns the data?", tmp_path)


def test_rebuild_by_another_process_is_noticed(tmp_path):
    deck = sensor_deck(deck_id=9)
    build_index(deck, tmp_path)
    old = load_index(deck, tmp_path)
    changed = replace(deck, faq=[FaqEntry("Is there a warranty?", "Seven years on every sensor.")])
    build_index(changed, tmp_path)
    index_mod._loaded[(str(tmp_path.resolve()), 9)] = old  # what another process's cache would still hold
    assert load_index(changed, tmp_path).fingerprint == index_mod.index_fingerprint(changed)


def test_missing_and_deleted_index(tmp_path):
    deck = sensor_deck(deck_id=11)
    with pytest.raises(IndexMissingError, match="deckchat deck index 11"):
        retrieve(deck, "Who is the CTO?", tmp_path)
    build_index(deck, tmp_path)
    assert retrieve(deck, "Who is the CTO?", tmp_path).results
    delete_index(11, tmp_path)
    assert not (tmp_path / "11").exists()
    with pytest.raises(IndexMissingError):
        retrieve(deck, "Who is the CTO?", tmp_path)


def test_concurrent_retrievals_share_one_loaded_index(built):
    root, _ = built
    index_mod._loaded.clear()
    results, errors = [], []

    def ask():
        try:
            results.append(retrieve(sensor_deck(), "Who is the CTO?", root).results[0].source)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == ["slide:3"] * 6
    assert len([k for k in index_mod._loaded if k[1] == 1]) == 1


def test_questions_are_embedded_on_one_thread_without_changing_other_threads(built):
    import torch

    root, _ = built
    before = torch.get_num_threads()
    retrieve(sensor_deck(), "Who is the CTO?", root)
    seen = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert torch.get_num_threads() == before and seen == [before]
    loaded = load_index(sensor_deck(), root)
    cosines = index_mod.query_cosines(loaded, "Who is the CTO?")
    expected = loaded.matrix @ index_mod.embed(["Who is the CTO?"])[0]
    assert cosines.shape == (len(loaded.chunk_texts),) and abs(cosines - expected).max() < 1e-4


def test_messy_markdown_is_cleaned_before_indexing(built):
    root, _ = built
    loaded = load_index(sensor_deck(), root)
    indexed = "\n".join(loaded.chunk_texts) + "\n".join(u.text for u in loaded.units.values())
    for noise in ("import ", "<", "useBaseUrl", "sidebar_position", "@type", "Callout"):
        assert noise not in indexed
    assert "Keys rotate every 90 days." in loaded.units["doc:security_overview.md#Encryption"].text


def test_empty_deck_and_blank_question(tmp_path):
    empty = DeckContent(deck_id=12, title="Empty", version=1)
    assert build_index(empty, tmp_path)["nodes"] == 0
    assert retrieve(empty, "Anything?", tmp_path).to_dict() == {"results": [], "answerable": False,
                                                                "confidence": 0.0}
    deck = sensor_deck(deck_id=13)
    build_index(deck, tmp_path)
    assert retrieve(deck, "   ", tmp_path).results == []


def test_long_document_sections_are_split_but_keep_their_source(tmp_path):
    paragraphs = [f"Paragraph {i} explains clause {i} of the agreement in plain words. " * 8
                  for i in range(12)]
    long_doc = DocumentContent("terms.md", "md", "## Terms\n\n" + "\n\n".join(paragraphs)
                               + "\n\nThe warranty covers sensors for seven years.")
    deck = sensor_deck(deck_id=14, documents=[long_doc])
    build_index(deck, tmp_path)
    loaded = load_index(deck, tmp_path)
    bodies = [t for t, s, v in zip(loaded.chunk_texts, loaded.chunk_sources, loaded.chunk_views)
              if s == "doc:terms.md#Terms" and v == "body"]
    assert len(bodies) > 1 and all(len(b.split()) <= index_mod.CHUNK_WORDS + 10 for b in bodies)
    hit = retrieve(deck, "How long is the warranty?", tmp_path).results[0]
    assert hit.source == "doc:terms.md#Terms" and "seven years" in hit.text


def test_pptx_speaker_notes_become_slide_sources(tmp_path):
    pptx = REAL / "ms_workshop_resume_website_slides.pptx"
    if not pptx.exists():
        pytest.skip(f"real test file absent: {pptx.name}")
    from deckchat.domain.ingest import extract_pptx_slides

    slides = extract_pptx_slides(pptx)
    deck = DeckContent(deck_id=15, title="Resume workshop", version=1, slides=slides)
    units = {u.source: u for u in deck_units(deck)}
    assert len([s for s in units if s.startswith("slide:")]) == 21
    assert "Speaker notes:" in units["slide:4"].text and "CodeSwing is an extension" in units["slide:4"].text
    assert units["slide:2"].text.startswith("Speaker notes:")  # a slide with no words of its own
    build_index(deck, tmp_path)
    # Words found only in speaker notes retrieve their slide.
    found = retrieve(deck, "How do I turn on AutoSave?", tmp_path)
    assert found.results[0].source == "slide:5" and found.results[0].slide == 5
    found = retrieve(deck, "What three languages are webpages made of?", tmp_path)
    assert found.results[0].source == "slide:2"
