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


def test_removing_a_document_or_faq_item_rebuilds_the_index(app, owner_client, pitch_deck):
    doc = b"## Patents\nWe hold two granted patents on the gripper's suction cup design.\n"
    owner_client.post(f"/decks/{pitch_deck}/material", data={"documents": (io.BytesIO(doc), "ip.md")},
                      content_type="multipart/form-data")
    with app.app_context():
        deck = db.session.get(Deck, pitch_deck)
        doc_id, faq_id = deck.documents[0].id, deck.faq_items[0].id
        removed_question, kept_question = deck.faq_items[0].question, deck.faq_items[1].question
        found = retrieve(deck_content(pitch_deck), "Do you have patents?", index_root(app.instance_path))
        assert found.results[0].source == "doc:ip.md#Patents"
    page = owner_client.get(f"/decks/{pitch_deck}/assistant").get_data(as_text=True)
    assert "ip.md" in page and f"/decks/{pitch_deck}/documents/{doc_id}/delete" in page
    assert f"/decks/{pitch_deck}/faq/{faq_id}/delete" in page

    response = owner_client.post(f"/decks/{pitch_deck}/documents/{doc_id}/delete", follow_redirects=True)
    assert response.status_code == 200 and "Removed ip.md" in response.get_data(as_text=True)
    assert owner_client.post(f"/decks/{pitch_deck}/documents/{doc_id}/delete").status_code == 404  # gone
    assert owner_client.post(f"/decks/{pitch_deck}/faq/{faq_id}/delete").status_code == 303
    with app.app_context():
        content = deck_content(pitch_deck)
        assert content.documents == [] and [f.question for f in content.faq] == [kept_question]
        assert db.session.get(Deck, pitch_deck).faq_items[0].position == 0
        # The index was rebuilt at once (rebuild=False would raise on a stale one) and holds neither source.
        root = index_root(app.instance_path)
        for question in ("Do you have patents?", removed_question):
            sources = [h.source for h in retrieve(content, question, root, k=10, rebuild=False).results]
            assert not any(s.startswith("doc:") or s == f"faq:{removed_question}" for s in sources), sources


def test_a_document_of_another_deck_cannot_be_removed_through_this_one(app, owner_client, pitch_deck, pitch_files):
    from deckchat.domain.content import DocumentContent
    from deckchat.domain.decks import ImportLimits, import_deck
    from deckchat.domain.material import update_material
    from deckchat.models import User

    with app.app_context():
        other, _ = import_deck(owner=db.session.scalar(db.select(User)), instance_path=app.instance_path,
                               slides_path=pitch_files["pdf"], filename="second.pdf",
                               faq_md=pitch_files["faq"].read_text(), limits=ImportLimits.from_config(app.config))
        update_material(other, documents=[DocumentContent("other.md", "md", "## A\nText.")])
        doc_id, faq_id, version = other.documents[0].id, other.faq_items[0].id, other.content_version
    assert owner_client.post(f"/decks/{pitch_deck}/documents/{doc_id}/delete").status_code == 404
    assert owner_client.post(f"/decks/{pitch_deck}/faq/{faq_id}/delete").status_code == 404
    with app.app_context():
        other = db.session.get(Deck, other.id)
        assert len(other.documents) == 1 and len(other.faq_items) == 2 and other.content_version == version
