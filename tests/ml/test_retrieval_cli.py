"""`deckchat deck index` and `deckchat retrieve` against an imported deck."""
from __future__ import annotations

import json

from deckchat.extensions import db
from deckchat.models import Deck, FaqItem


def test_index_then_retrieve_json(app, runner, pitch_deck):
    built = runner.invoke("deck", "index", str(pitch_deck), "--json")
    assert built.exit_code == 0, built.stderr
    stats = json.loads(built.stdout)
    assert stats["deck_id"] == pitch_deck and stats["sources"] >= 7

    asked = runner.invoke("retrieve", str(pitch_deck), "How big is the Series A?", "--k", "2", "--json")
    assert asked.exit_code == 0, asked.stderr
    data = json.loads(asked.stdout)
    assert data["answerable"] is True and len(data["results"]) == 2
    top = data["results"][0]
    assert top["source"] == "slide:5" and top["slide"] == 5 and isinstance(top["score"], float)
    assert "Raising 8M Series A" in top["text"]

    looked = runner.invoke("retrieve", str(pitch_deck), "What does this slide show?", "--slide", "4",
                           "--json")
    assert json.loads(looked.stdout)["results"][0]["source"] == "slide:4"

    unknown = runner.invoke("retrieve", str(pitch_deck), "What is the capital of France?", "--json")
    assert json.loads(unknown.stdout)["answerable"] is False

    text = runner.invoke("retrieve", str(pitch_deck), "Who are your competitors?")
    assert text.exit_code == 0 and "faq:Who are your competitors?" in text.stdout


def test_retrieve_refuses_a_stale_or_missing_index(app, runner, pitch_deck):
    missing = runner.invoke("retrieve", str(pitch_deck), "How much are you raising?", "--json")
    assert missing.exit_code != 0 and f"deckchat deck index {pitch_deck}" in missing.stderr

    assert runner.invoke("deck", "index", str(pitch_deck), "--json").exit_code == 0
    with app.app_context():
        deck = db.session.get(Deck, pitch_deck)
        db.session.add(FaqItem(deck_id=deck.id, position=9, question="Do you ship to Japan?", answer="Yes."))
        deck.content_version += 1
        db.session.commit()
    stale = runner.invoke("retrieve", str(pitch_deck), "Do you ship to Japan?", "--json")
    assert stale.exit_code != 0 and "other material" in stale.stderr

    assert runner.invoke("deck", "index", str(pitch_deck), "--json").exit_code == 0
    fresh = json.loads(runner.invoke("retrieve", str(pitch_deck), "Do you ship to Japan?", "--json").stdout)
    assert fresh["results"][0]["source"] == "faq:Do you ship to Japan?"


def test_unknown_deck_fails_in_one_line(app, runner):
    result = runner.invoke("retrieve", "999", "anything", "--json")
    assert result.exit_code != 0 and result.stderr.count("\n") == 1
