"""The presenter opening a link to their own deck: a preview that records no visit, view or question."""
from __future__ import annotations

import re

import pytest
from clients import login, sse_events

from deckchat.domain.accounts import create_user
from deckchat.domain import sharing
from deckchat.extensions import db
from deckchat.ml.indexing import reindex
from deckchat.models import ChatExchange, Deck, SlideView, Visit


@pytest.fixture
def locked_link(app, pitch_deck):
    """A password- and email-protected link to the indexed pitch deck."""
    with app.app_context():
        assert reindex(pitch_deck, app.instance_path) == []
        deck = db.session.get(Deck, pitch_deck)
        return sharing.create_link(deck, password="open sesame", require_email=True).token


def _counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return (db.session.query(Visit).count(), db.session.query(SlideView).count(),
                db.session.query(ChatExchange).count())


def _ask(client, token, visit=""):
    return client.post(f"/s/{token}/chat", json={"question": "How long does it take to train a new item?",
                                                 "slide": 3, "visit": visit})


def test_the_owner_previews_without_the_gate_and_without_a_visit(app, client, locked_link):
    login(client)
    page = client.get(f"/s/{locked_link}")
    assert page.status_code == 200 and b'data-testid="preview-banner"' in page.data
    assert b'data-visit=""' in page.data and b"unlock-form" not in page.data
    answer = _ask(client, locked_link)
    assert answer.status_code == 200 and answer.mimetype == "text/event-stream"
    event, done = sse_events(answer.data)[-1]
    assert event == "done" and done["exchange"] is None and done["sources"][0]["source"] == "slide:3"
    assert _counts(app) == (0, 0, 0)  # nothing of the preview reaches the analytics


def test_investors_and_other_presenters_still_count(app, locked_link):
    with app.app_context():
        create_user("other@example.com", "password123")
    other = app.test_client()
    login(other, "other@example.com")
    gate = other.get(f"/s/{locked_link}").data  # someone else's deck: the gate, like any investor
    assert b"unlock-form" in gate and b"preview-banner" not in gate
    investor = app.test_client()
    assert investor.post(f"/s/{locked_link}", data={"password": "open sesame", "email": "a@fund.vc"}).status_code == 303
    page = investor.get(f"/s/{locked_link}")
    assert b"preview-banner" not in page.data
    visit = re.search(rb'data-visit="([^"]+)"', page.data).group(1).decode()
    assert _ask(investor, locked_link, visit).status_code == 200
    assert _counts(app)[0] == 1 and _counts(app)[2] == 1
    # Without a visit of its own, a stranger gets no answer: only the owner may ask unlogged.
    assert _ask(app.test_client(), locked_link).status_code in (400, 403)
