"""The investor chat over HTTP: streaming, FAQ shortcut, guardrails, knowledge gaps, feedback, isolation."""
from __future__ import annotations

import json
import re

import pytest

from deckchat.domain import sharing
from deckchat.domain.chatlog import update_chat_settings
from deckchat.extensions import db
from deckchat.ml.indexing import reindex
from deckchat.models import ChatExchange, Deck


def _events(data: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in data.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.fixture
def chat(app, pitch_deck):
    """A client on an open link of the indexed pitch deck, with its visit key."""
    with app.app_context():
        assert reindex(pitch_deck, app.instance_path) == []
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    client = app.test_client()
    page = client.get(f"/s/{token}").data
    visit = re.search(rb'data-visit="([^"]+)"', page).group(1).decode()

    def ask(question, slide=None, visit_key=None):
        return client.post(f"/s/{token}/chat", json={"question": question, "slide": slide,
                                                     "visit": visit_key or visit})

    ask.client, ask.token, ask.visit = client, token, visit
    return ask


def _done(response) -> dict:
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/event-stream"
    events = _events(response.data)
    assert events[-1][0] == "done", events
    deltas = "".join(d["text"] for e, d in events if e == "delta")
    assert deltas.strip() == events[-1][1]["text"].strip()  # the stream adds up to the stored answer
    return events[-1][1]


def test_answer_streams_with_sources_and_is_stored(app, chat):
    done = _done(chat("How long does it take to train a new item?", slide=3))
    assert done["kind"] == "model" and done["answerable"]
    assert done["sources"][0]["source"] == "slide:3" and done["sources"][0]["slide"] == 3
    with app.app_context():
        row = db.session.get(ChatExchange, done["exchange"])
        assert row.slide == 3 and row.question.startswith("How long") and row.engine == "extractive"
        assert row.sources[0]["source"] == "slide:3" and row.total_ms is not None and row.visit_id is not None


def test_faq_question_is_answered_from_the_faq_without_the_model(app, chat):
    done = _done(chat("how much have you raised so far"))
    assert done["kind"] == "faq"
    assert done["text"] == "We raised a 1.5M seed round from Example Ventures in 2022."
    assert done["sources"] == [{"source": "faq:How much have you raised so far?", "slide": None,
                                "score": done["sources"][0]["score"]}]


def test_unanswerable_question_is_a_logged_knowledge_gap(app, chat):
    done = _done(chat("What is the capital of Mongolia?"))
    assert done["kind"] == "unknown" and not done["answerable"] and done["sources"] == []
    assert "pass your question to the presenter" in done["text"]
    with app.app_context():
        gap = db.session.get(ChatExchange, done["exchange"])
        assert gap.answerable is False and gap.gap_closed_at is None


def test_guardrail_topics_get_the_owner_reply(app, chat, pitch_deck):
    with app.app_context():
        update_chat_settings(db.session.get(Deck, pitch_deck), None,
                             [("valuation", "We share valuation details in person, not over chat.")])
    for question in ("What valuation are you raising at?", "What is the pre-money valuation?"):
        done = _done(chat(question))
        assert done["kind"] == "guardrail"
        assert done["text"] == "We share valuation details in person, not over chat."
    assert _done(chat("How long does training a new item take?"))["kind"] == "model"


def test_bad_requests_get_clear_errors(chat):
    assert chat("").status_code == 400
    assert "at most" in chat("x" * 1001).get_json()["error"]
    assert chat("Hello?", visit_key="not-this-visit").status_code == 400
    assert chat.client.post(f"/s/{chat.token}/chat", data="nope").status_code == 400


def test_feedback_only_on_own_answers(app, chat):
    exchange = _done(chat("How long does training a new item take?"))["exchange"]
    url = f"/s/{chat.token}/chat/{exchange}/feedback"
    assert chat.client.post(url, json={"visit": chat.visit, "value": 2}).status_code == 400
    assert chat.client.post(url, json={"visit": chat.visit, "value": -1}).status_code == 200
    with app.app_context():
        assert db.session.get(ChatExchange, exchange).feedback == -1
    other = chat.client.get(f"/s/{chat.token}").data
    other_visit = re.search(rb'data-visit="([^"]+)"', other).group(1).decode()
    assert chat.client.post(url, json={"visit": other_visit, "value": 1}).status_code == 404


def test_chat_needs_an_unlocked_link(app, pitch_deck):
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck), password="pw").token
    client = app.test_client()
    assert client.post(f"/s/{token}/chat", json={"question": "hi", "visit": "x"}).status_code == 403


def test_chat_is_rate_limited_per_visitor(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory(RATELIMIT_ENABLED=True, CHAT_RATE_LIMIT_VISITOR="2 per minute"))
    with app.app_context():
        reindex(deck_id, app.instance_path)
        token = sharing.create_link(db.session.get(Deck, deck_id)).token
    client = app.test_client()
    visit = re.search(rb'data-visit="([^"]+)"', client.get(f"/s/{token}").data).group(1).decode()
    codes = [client.post(f"/s/{token}/chat", json={"question": "What is the ask?", "visit": visit}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]


def test_questions_about_another_deck_never_cite_it(app, chat, owner):
    """Deck B's content asked on deck A: deck A's answer never quotes or cites deck B."""
    from deckchat.domain.decks import ImportLimits, import_deck
    from deckchat.models import User
    from factories import make_pdf

    secret = "Zebracorn Labs sells quantum bagels to lunar miners for 40 credits"
    with app.app_context():
        path = app.instance_path + "/other.pdf"
        open(path, "wb").write(make_pdf(["Zebracorn Labs", secret]))
        other, _ = import_deck(owner=db.session.get(User, owner), instance_path=app.instance_path,
                               slides_path=__import__("pathlib").Path(path), filename="other.pdf",
                               limits=ImportLimits.from_config(app.config))
        reindex(other.id, app.instance_path)
    done = _done(chat("What does Zebracorn Labs sell to lunar miners?"))
    assert "bagel" not in done["text"].lower() and "zebracorn" not in done["text"].lower()
    assert all(s["source"].startswith(("slide:", "faq:", "doc:")) for s in done["sources"])
    assert not done["answerable"]


def test_owner_page_escapes_notes(app, pitch_deck):
    from clients import login

    from deckchat.models import Slide

    with app.app_context():  # PowerPoint notes keep raw text, markup included
        slide = db.session.scalar(db.select(Slide).filter_by(deck_id=pitch_deck, number=4))
        slide.notes = "Pilot <script>window.__pwned = 1</script> went well."
        db.session.commit()
    client = app.test_client()
    login(client)
    page = client.get(f"/decks/{pitch_deck}").data
    assert b"&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert b"<script>window.__pwned" not in page
