"""Knowledge gaps: unanswered questions are grouped, and the owner's answer changes what the bot says."""

from __future__ import annotations

import json
import re

import pytest
from clients import csrf_token, login

from deckchat.domain import sharing
from deckchat.domain.decks import deck_content
from deckchat.extensions import db
from deckchat.ml.indexing import index_root, reindex
from deckchat.ml.retrieval import retrieve
from deckchat.models import ChatExchange, Deck, FaqItem

QUESTION = "How big is your employee stock option pool?"
ANSWER = "The option pool is 12% of the fully diluted shares, refreshed at the Series A."


def _done(response) -> dict:
    assert response.status_code == 200, response.data
    blocks = response.data.decode().strip().split("\n\n")
    lines = dict(line.split(": ", 1) for line in blocks[-1].splitlines())
    assert lines["event"] == "done", blocks
    return json.loads(lines["data"])


@pytest.fixture
def asked(app, pitch_deck):
    """The indexed pitch deck; an investor asks questions the material does not answer."""
    with app.app_context():
        assert reindex(pitch_deck, app.instance_path) == []
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    investor = app.test_client()
    visit = re.search(rb'data-visit="([^"]+)"', investor.get(f"/s/{token}").data).group(1).decode()

    def ask(question, slide=2):
        return _done(
            investor.post(f"/s/{token}/chat", json={"question": question, "slide": slide, "visit": visit})
        )

    return ask


def test_closing_a_gap_changes_what_the_bot_answers(app, client, owner, pitch_deck, asked):
    before = asked(QUESTION)
    assert before["kind"] == "unknown" and not before["answerable"]
    asked("What is the size of the stock option pool for employees?")  # the same gap, other words
    asked("Which countries do you sell in?", slide=4)  # another gap
    with app.app_context():
        found = retrieve(deck_content(pitch_deck), QUESTION, index_root(app.instance_path), k=3)
        assert not found.answerable

    login(client)
    page = client.get(f"/decks/{pitch_deck}/analytics/gaps").get_data(as_text=True)
    groups = re.findall(r'name="ids" value="([\d,]+)"', page)
    assert len(groups) == 2 and sorted(len(g.split(",")) for g in groups) == [1, 2]
    ids = next(g for g in groups if "," in g)
    assert f'value="{QUESTION}"' in page  # the first wording is proposed as the FAQ question

    response = client.post(
        f"/decks/{pitch_deck}/analytics/gaps", data={"ids": ids, "question": QUESTION, "answer": ANSWER}
    )
    assert response.status_code == 303
    after_page = client.get(f"/decks/{pitch_deck}/analytics/gaps").get_data(as_text=True)
    assert "Added to the FAQ" in after_page and len(re.findall(r'name="ids"', after_page)) == 1

    with app.app_context():
        deck = db.session.get(Deck, pitch_deck)
        assert deck.content_version == 2 and deck.faq_items[-1].question == QUESTION
        closed = db.session.scalars(
            db.select(ChatExchange).where(ChatExchange.gap_closed_at.is_not(None))
        ).all()
        assert sorted(str(e.id) for e in closed) == sorted(ids.split(","))
        found = retrieve(deck_content(pitch_deck), QUESTION, index_root(app.instance_path), k=3)
        assert found.answerable and found.results[0].source == f"faq:{QUESTION}"  # the rebuilt index has it

    after = asked(QUESTION)
    assert after["kind"] == "faq" and after["answerable"] and after["text"].strip() == ANSWER
    assert after["sources"][0]["source"] == f"faq:{QUESTION}"
    reworded = asked("What is the size of the stock option pool for employees?")
    assert reworded["answerable"] and ANSWER[:20] in reworded["text"]


def test_gap_answers_are_checked(app, client, owner, pitch_deck, asked):
    asked(QUESTION)
    login(client)
    with app.app_context():
        gap_id = db.session.scalar(db.select(ChatExchange.id))
    url = f"/decks/{pitch_deck}/analytics/gaps"
    for data, message in [
        ({"ids": str(gap_id), "question": QUESTION, "answer": ""}, "not saved"),
        ({"ids": "1;drop", "question": QUESTION, "answer": "x"}, "not saved"),
        ({"ids": "999999", "question": QUESTION, "answer": "x"}, "not this deck"),
        ({"ids": str(gap_id), "question": "How much have you raised so far?", "answer": "x"}, "already has"),
    ]:
        page = client.post(url, data=data, follow_redirects=True).get_data(as_text=True)
        assert message in page, data
    with app.app_context():
        assert db.session.query(FaqItem).count() == 2  # the pitch FAQ only
        assert db.session.get(Deck, pitch_deck).content_version == 1


def test_gap_form_needs_its_csrf_token(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory(WTF_CSRF_ENABLED=True))
    with app.app_context():
        deck = db.session.get(Deck, deck_id)
        db.session.add(
            ChatExchange(
                deck_id=deck_id,
                question="<img src=x onerror=alert(1)> margins?",
                answerable=False,
                kind="unknown",
            )
        )
        db.session.commit()
        gap_id = db.session.scalar(db.select(ChatExchange.id))
        assert deck.faq_items == []
    client = app.test_client()
    page = client.get("/login").data
    client.post(
        "/login",
        data={"email": "owner@example.com", "password": "password123", "csrf_token": csrf_token(page)},
    )
    page = client.get(f"/decks/{deck_id}/analytics/gaps")
    html = page.get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; margins?" in html  # shown as text
    data = {"ids": str(gap_id), "question": "Margins?", "answer": "About 40%."}
    client.post(f"/decks/{deck_id}/analytics/gaps", data=data)
    with app.app_context():
        assert db.session.query(FaqItem).count() == 0
    response = client.post(
        f"/decks/{deck_id}/analytics/gaps", data={**data, "csrf_token": csrf_token(page.data)}
    )
    assert response.status_code == 303
    with app.app_context():
        assert db.session.query(FaqItem).count() == 1
