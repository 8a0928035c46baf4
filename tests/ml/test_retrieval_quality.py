"""Retrieval behaviour on the tiny 5-slide "Acme" pitch deck: the slide on screen, answerability on a small deck."""
from __future__ import annotations

import pytest
from factories import PITCH_FAQ, PITCH_NOTES, PITCH_PAGES

from deckchat.domain.content import DeckContent, SlideContent
from deckchat.domain.markdown import parse_faq_markdown, parse_notes_markdown
from deckchat.ml import retrieval as retrieval_mod
from deckchat.ml.index import build_index
from deckchat.ml.retrieval import retrieve

PILOT = "What happened with the pilot customer picking speed?"


def acme_deck(deck_id: int = 31) -> DeckContent:
    """The pitch deck of tests/factories.py as the PDF import reads it (title = first line of the page)."""
    notes = parse_notes_markdown(PITCH_NOTES)
    slides = [SlideContent(i, page.split("\n", 1)[0], page, notes.get(i, ""))
              for i, page in enumerate(PITCH_PAGES, 1)]
    return DeckContent(deck_id, "Acme Robotics", 1, slides, parse_faq_markdown(PITCH_FAQ))


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    """The Acme deck, indexed once for the module."""
    root = tmp_path_factory.mktemp("acme-index")
    deck = acme_deck()
    build_index(deck, root)
    return deck, root


def test_slide_on_screen_does_not_override_the_source_that_answers(acme):
    deck, root = acme
    plain = retrieve(deck, PILOT, root)
    assert plain.results[0].source == "slide:4" and plain.answerable
    for slide in (1, 2, 3, 5):
        looking = retrieve(deck, PILOT, root, slide=slide)
        assert looking.results[0].source == "slide:4", slide
        # Answerability is the same whichever slide is on screen: judged on the best-supported source.
        assert looking.answerable and looking.confidence == pytest.approx(plain.confidence)


def test_answerability_ignores_the_slide_preference_even_when_it_wins(acme, monkeypatch):
    deck, root = acme
    plain = retrieve(deck, PILOT, root)
    monkeypatch.setattr(retrieval_mod, "SLIDE_MARGIN", 10.0)  # the slide on screen always comes first
    looking = retrieve(deck, PILOT, root, slide=1)
    assert looking.results[0].source == "slide:1"
    assert "slide:4" in [h.source for h in looking.results]
    assert looking.answerable and looking.confidence == pytest.approx(plain.confidence)
    assert looking.features["source"] == "slide:4"


def test_pointing_at_the_slide_on_screen_still_wins(acme):
    deck, root = acme
    found = retrieve(deck, "What does this slide show?", root, slide=2)
    assert found.results[0].source == "slide:2" and found.answerable
    named = retrieve(deck, "What is on slide 5?", root, slide=1)
    assert named.results[0].source == "slide:5" and named.answerable


@pytest.mark.parametrize(("question", "source"), [
    (PILOT, "slide:4"),
    ("How long does it take to train the gripper on a new item?", "slide:3"),
    ("How many customers do you have?", "slide:4"),
    ("How big is the Series A?", "slide:5"),
    ("When does the round close?", "slide:5"),
    ("When was Acme founded?", "slide:1"),
    ("How much have you raised so far?", "faq:How much have you raised so far?"),
])
def test_small_deck_answers_what_it_holds(acme, question, source):
    deck, root = acme
    found = retrieve(deck, question, root)
    assert found.results[0].source == source and found.answerable, found.features


@pytest.mark.parametrize("question", [
    "What is the capital of France?",
    "What is your monthly burn rate?",
    "How many employees do you have?",
    "How big is your employee stock option pool?",
    "Who is on your board?",
])
def test_small_deck_flags_what_it_does_not_hold(acme, question):
    deck, root = acme
    found = retrieve(deck, question, root)
    assert not found.answerable and found.confidence < retrieval_mod.ANSWERABLE_AT, found.features


@pytest.mark.parametrize(("typed", "meant"), [
    ("How long does it take to trian the grpiper on a new itme?",
     "How long does it take to trian the gripper on a new item?"),
    ("When does the round cloes?", "When does the round closes?"),
    ("How much have you riased so far?", "How much have you raised so far?"),
])
def test_misspelt_questions_find_what_the_spelled_ones_find(acme, typed, meant):
    deck, root = acme
    found, expected = retrieve(deck, typed, root), retrieve(deck, meant, root)
    assert [h.source for h in found.results] == [h.source for h in expected.results]
    assert found.answerable == expected.answerable
    assert found.confidence == pytest.approx(expected.confidence)


def test_spelling_is_corrected_only_into_the_decks_words():
    from deckchat.ml.lexical import DeckSpeller

    speller = DeckSpeller(["Gross margin is 72% across 140 locations, billed annually."])
    assert speller.correct("wht's the gross margn at your locatons?") == "wht's the gross margin at your locations?"
    # English words stay, even one edit from a deck word ("margin" / "margins" is no typo of "marlin").
    assert speller.correct("Do you sell marlin or coffee?") == "Do you sell marlin or coffee?"
    # A misspelt word the deck has nothing near stays as typed: no coverage is invented.
    assert speller.correct("Whats the pre-mony valuaton?") == "Whats the pre-mony valuaton?"
