"""Owner settings for the assistant: material updates rebuild the index; guardrails and examples."""
from __future__ import annotations

import io

import pytest

from clients import login
from deckchat.domain.decks import deck_content
from deckchat.extensions import db
from deckchat.ml.index import StaleIndexError, read_manifest
from deckchat.ml.indexing import index_root, reindex
from deckchat.ml.retrieval import retrieve
from deckchat.models import Deck, ExampleQA, Guardrail


@pytest.fixture
def owner_client(app, pitch_deck):
    with app.app_context():
        reindex(pitch_deck, app.instance_path)
    client = app.test_client()
    login(client)
    return client


def test_new_faq_rebuilds_the_index_and_changes_retrieval(app, owner_client, pitch_deck):
    with app.app_context():
        before = read_manifest(pitch_deck, index_root(app.instance_path))["fingerprint"]
    faq = b"## What is your churn?\nMonthly logo churn is 1.2%, all from pilots that ended as planned.\n"
    response = owner_client.post(f"/decks/{pitch_deck}/material", data={"faq": (io.BytesIO(faq), "faq.md")},
                                 content_type="multipart/form-data")
    assert response.status_code == 303
    with app.app_context():
        content = deck_content(pitch_deck)
        assert content.version == 2 and [f.question for f in content.faq] == ["What is your churn?"]
        assert read_manifest(pitch_deck, index_root(app.instance_path))["fingerprint"] != before
        found = retrieve(content, "What is your churn?", index_root(app.instance_path), rebuild=False)
        assert found.answerable and found.results[0].source == "faq:What is your churn?"


def test_material_change_without_rebuild_is_never_served(app, pitch_deck):
    from deckchat.domain.material import add_faq_item

    with app.app_context():
        reindex(pitch_deck, app.instance_path)
        add_faq_item(db.session.get(Deck, pitch_deck), "Do you have patents?", "Two granted patents.")
        with pytest.raises(StaleIndexError):
            retrieve(deck_content(pitch_deck), "patents?", index_root(app.instance_path), rebuild=False)


def test_bad_notes_file_is_refused_and_changes_nothing(app, owner_client, pitch_deck):
    response = owner_client.post(f"/decks/{pitch_deck}/material",
                                 data={"notes": (io.BytesIO(b"## Slide 40\nToo far"), "n.md")},
                                 content_type="multipart/form-data", follow_redirects=True)
    assert b"the deck has 5 slides" in response.data
    with app.app_context():
        assert deck_content(pitch_deck).version == 1


def test_guardrails_and_examples(app, owner_client, pitch_deck):
    owner_client.post(f"/decks/{pitch_deck}/guardrails", data={"first": "valuation", "second": "In person."})
    owner_client.post(f"/decks/{pitch_deck}/examples", data={"first": "What do you do?", "second": "Robots."})
    page = owner_client.get(f"/decks/{pitch_deck}/assistant").data
    assert b"valuation" in page and b"Robots." in page
    with app.app_context():
        guardrail_id = db.session.scalar(db.select(Guardrail.id))
        example_id = db.session.scalar(db.select(ExampleQA.id))
        assert deck_content(pitch_deck).examples[0].answer == "Robots."
    assert owner_client.post(f"/decks/{pitch_deck}/guardrails/{guardrail_id}/delete").status_code == 303
    assert owner_client.post(f"/decks/{pitch_deck}/examples/{example_id}/delete").status_code == 303
    assert owner_client.post(f"/decks/{pitch_deck}/examples/{example_id}/delete").status_code == 404
    with app.app_context():
        assert db.session.query(Guardrail).count() == 0 and db.session.query(ExampleQA).count() == 0


def test_persona_is_saved(app, owner_client, pitch_deck):
    owner_client.post(f"/decks/{pitch_deck}/persona", data={"persona": "You are Jane, CEO of Acme."})
    with app.app_context():
        assert db.session.get(Deck, pitch_deck).persona == "You are Jane, CEO of Acme."
