"""The investor chat over HTTP: streaming, FAQ shortcut, guardrails, knowledge gaps, feedback, isolation."""
from __future__ import annotations

import json
import re

import pytest
from clients import sse_events

from deckchat.domain import sharing
from deckchat.domain.chatlog import update_chat_settings
from deckchat.extensions import db
from deckchat.ml.indexing import reindex
from deckchat.models import ChatExchange, Deck


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
    events = sse_events(response.data)
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
                                "score": done["sources"][0]["score"],
                                "passage": "We raised a 1.5M seed round from Example Ventures in 2022."}]


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
    for body in ([1], "a question", 3):  # JSON, but not an object
        response = chat.client.post(f"/s/{chat.token}/chat", json=body)
        assert response.status_code == 400 and "JSON object" in response.get_json()["error"]


def test_feedback_only_on_own_answers(app, chat):
    exchange = _done(chat("How long does training a new item take?"))["exchange"]
    url = f"/s/{chat.token}/chat/{exchange}/feedback"
    assert chat.client.post(url, json={"visit": chat.visit, "value": 2}).status_code == 400
    assert chat.client.post(url, json={"visit": chat.visit, "value": 1.0}).status_code == 400
    assert chat.client.post(url, json=[chat.visit, 1]).status_code == 400
    huge = f"/s/{chat.token}/chat/{10**25}/feedback"
    assert chat.client.post(huge, json={"visit": chat.visit, "value": 1}).status_code == 404
    assert chat.client.post(url, json={"visit": chat.visit, "value": -1}).status_code == 200
    with app.app_context():
        assert db.session.get(ChatExchange, exchange).feedback == -1
    other_browser = app.test_client()  # another investor's visit of the same link
    other = other_browser.get(f"/s/{chat.token}").data
    other_visit = re.search(rb'data-visit="([^"]+)"', other).group(1).decode()
    assert other_visit != chat.visit
    assert other_browser.post(url, json={"visit": other_visit, "value": 1}).status_code == 404


def test_chat_needs_an_unlocked_link(app, pitch_deck):
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck), password="pw").token
    client = app.test_client()
    assert client.post(f"/s/{token}/chat", json={"question": "hi", "visit": "x"}).status_code == 403


def _two_per_minute(app_factory, owner_deck_factory):
    """A visitor on an indexed deck's open link, under a limit of 2 questions a minute: (app, client, token,
    visit)."""
    app, deck_id = owner_deck_factory(app_factory(RATELIMIT_ENABLED=True, CHAT_RATE_LIMIT_VISITOR="2 per minute"))
    with app.app_context():
        reindex(deck_id, app.instance_path)
        token = sharing.create_link(db.session.get(Deck, deck_id)).token
    client = app.test_client()
    visit = re.search(rb'data-visit="([^"]+)"', client.get(f"/s/{token}").data).group(1).decode()
    return app, client, token, visit


def test_a_new_visitor_cookie_on_every_question_still_meets_a_limit(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory(RATELIMIT_ENABLED=True, CHAT_RATE_LIMIT_VISITOR="2 per minute",
                                                  CHAT_RATE_LIMIT_ADDRESS="4 per minute"))
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, deck_id)).token
    client = app.test_client()
    codes = []
    for n in range(6):
        client.set_cookie("dc_visitor", f"made-up-{n}")
        codes.append(client.post(f"/s/{token}/chat", json={"question": "What is the ask?", "visit": "x"}).status_code)
    assert codes == [400, 400, 400, 400, 429, 429]  # (the made-up visit is refused until the address limit)


def test_chat_is_rate_limited_per_visitor(app_factory, owner_deck_factory):
    _, client, token, visit = _two_per_minute(app_factory, owner_deck_factory)
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


# ---- what the browser needs: cited passages, example questions, errors it can show -----------------

STREAM = {"Accept": "text/event-stream"}


def _read(response):
    """The response with its stream read to the end (the answer is stored, the request context closed)."""
    response.get_data()
    return response


def test_sources_carry_the_passage_the_answer_used(app, chat):
    done = _done(chat("How long does it take to train a new item?", slide=3))
    first = done["sources"][0]
    assert first["source"] == "slide:3" and "five minutes" in first["passage"]
    assert all(s["passage"] and len(s["passage"]) <= 601 for s in done["sources"])
    with app.app_context():  # stored as the browser got it, so a reload can show the turn again as it was
        row = db.session.get(ChatExchange, done["exchange"])
        assert row.sources == done["sources"]


def test_long_passages_are_cut_near_600_characters():
    from deckchat.ml.chain import ChatPlan
    from deckchat.web.chat import with_passages

    text = ("Revenue grew every quarter in every region we sell in. " * 30).strip()
    plan = ChatPlan("model", "q", True, [{"source": "doc:doc.md#Revenue", "slide": None, "score": 1.0}],
                    passages=[("doc:doc.md#Revenue", text, 1.0)])
    [source] = with_passages(plan.sources, plan)
    assert 500 < len(source["passage"]) <= 601 and source["passage"].endswith("…")
    assert text.startswith(source["passage"][:-1])
    assert "passage" not in plan.sources[0]


def test_viewer_offers_the_first_faq_questions_escaped(app, pitch_deck):
    from deckchat.models import FaqItem

    with app.app_context():
        db.session.add(FaqItem(deck_id=pitch_deck, position=-1, question='<b>Bold</b> "quoted" <script>x</script>?',
                               answer="An answer."))
        db.session.commit()
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    page = app.test_client().get(f"/s/{token}").data.decode()
    buttons = re.findall(r'data-testid="chat-example" data-question="([^"]*)">([^<]*)</button>', page)
    assert [b[1] for b in buttons] == ["&lt;b&gt;Bold&lt;/b&gt; &#34;quoted&#34; &lt;script&gt;x&lt;/script&gt;?",
                                       "How much have you raised so far?", "Who are your competitors?"]
    assert buttons[0][0] == buttons[0][1]
    assert "<script>x" not in page and "Ask anything about this deck" in page
    assert 'maxlength="1000"' in page and 'data-testid="chat-count">0/1000<' in page


def test_viewer_without_faq_offers_generic_questions(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory())
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, deck_id)).token
    page = app.test_client().get(f"/s/{token}").data.decode()
    assert re.findall(r'data-testid="chat-example" data-question="[^"]*">([^<]*)</button>', page) == [
        "What problem does this solve?", "How big is the market?", "Who is on the team?"]


def test_rate_limited_question_is_json_with_the_limiters_message(app_factory, owner_deck_factory):
    app, client, token, visit = _two_per_minute(app_factory, owner_deck_factory)
    responses = [_read(client.post(f"/s/{token}/chat", json={"question": "What is the ask?", "visit": visit},
                                   headers=STREAM)) for _ in range(3)]
    limited = responses[-1]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert limited.mimetype == "application/json"
    body = limited.get_json()
    assert body["error"] == "Too many questions at once. Please wait a moment and ask again."
    assert 0 < int(limited.headers["Retry-After"]) <= 60 and 0 < body["retry_after"] <= 60
    # The page-wide limit on the link says so in its own words.
    app.config["CHAT_RATE_LIMIT_VISITOR"], app.config["CHAT_RATE_LIMIT_LINK"] = "100 per minute", "1 per minute"
    other = app.test_client()
    other_visit = re.search(rb'data-visit="([^"]+)"', other.get(f"/s/{token}").data).group(1).decode()
    codes = [_read(other.post(f"/s/{token}/chat", json={"question": "What is the ask?", "visit": other_visit},
                              headers=STREAM)) for _ in range(2)]
    assert codes[-1].status_code == 429 and "too many questions" in codes[-1].get_json()["error"]


def test_revoked_link_answers_json_410_to_chat_and_feedback(app, chat):
    exchange = _done(chat("How long does training a new item take?"))["exchange"]
    with app.app_context():
        sharing.revoke_link(sharing.find_link(chat.token))
    response = chat.client.post(f"/s/{chat.token}/chat", json={"question": "Still there?", "visit": chat.visit},
                                headers=STREAM)
    assert response.status_code == 410 and response.mimetype == "application/json"
    assert response.get_json()["error"] == "This link is no longer active. Ask the presenter for a new one."
    feedback = chat.client.post(f"/s/{chat.token}/chat/{exchange}/feedback",
                                json={"visit": chat.visit, "value": 1}, headers={"Accept": "application/json"})
    assert feedback.status_code == 410 and "no longer active" in feedback.get_json()["error"]
    # A person opening the link still gets the page that says so.
    page = chat.client.get(f"/s/{chat.token}", headers={"Accept": "text/html"})
    assert page.status_code == 410 and page.mimetype == "text/html" and b"revoked" in page.data
    slide = chat.client.get(f"/s/{chat.token}/slides/1.png", headers={"Accept": "image/avif,image/webp,*/*"})
    assert slide.status_code == 410 and slide.mimetype == "text/html"


def test_locked_link_answers_json_403(app, pitch_deck):
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck), password="pw").token
    response = app.test_client().post(f"/s/{token}/chat", json={"question": "hi", "visit": "x"}, headers=STREAM)
    assert response.status_code == 403 and "Reload the page" in response.get_json()["error"]


def test_busy_engine_is_json_503_with_when_to_retry(chat, monkeypatch):
    from deckchat.ml.engine import EngineBusy
    from deckchat.web import chat as chat_module

    def busy():
        raise EngineBusy(retry_after=7)

    monkeypatch.setattr(chat_module, "make_chain", busy)
    response = chat.client.post(f"/s/{chat.token}/chat", json={"question": "Hello?", "visit": chat.visit},
                                headers=STREAM)
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert response.get_json() == {"error": "The assistant is busy; try again in 7 seconds.", "status": 503,
                                   "retry_after": 7}


def test_too_large_upload_is_a_friendly_page_or_json(app_factory):
    import io

    from clients import login

    from deckchat.domain.accounts import create_user

    app = app_factory(MAX_CONTENT_LENGTH=2 * 1024 * 1024)
    with app.app_context():
        create_user("owner@example.com", "password123")
    client = app.test_client()
    login(client)
    big = b"%PDF-1.4 " + b"x" * (3 * 1024 * 1024)

    def upload(accept):
        return client.post("/decks/new", data={"slides": (io.BytesIO(big), "huge.pdf")},
                           content_type="multipart/form-data",
                           headers={"Accept": accept, "Referer": "http://localhost/decks/new"})

    page = upload("text/html,application/xhtml+xml,*/*;q=0.8")
    assert page.status_code == 413 and page.mimetype == "text/html"
    html = page.data.decode()
    assert "larger than the 2 MB upload limit" in html and 'href="/decks/new"' in html
    assert "Request Entity Too Large" not in html
    for accept in ("application/json", "text/event-stream"):
        response = upload(accept)
        assert response.status_code == 413 and response.mimetype == "application/json"
        assert response.get_json()["error"].startswith("The file is larger than the 2 MB upload limit.")


def test_too_large_chat_body_is_json(app, chat):
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    body = json.dumps({"question": "x" * (2 * 1024 * 1024), "visit": chat.visit})
    response = chat.client.post(f"/s/{chat.token}/chat", data=body, content_type="application/json", headers=STREAM)
    assert response.status_code == 413 and response.mimetype == "application/json"
    assert "larger than the 1 MB" in response.get_json()["error"]


def test_a_reload_shows_the_visits_chat_again(app, chat):
    import json as jsonlib

    done = _done(chat("How long does training a new item take? <script>window.__pwned = 3</script>"))
    chat.client.post(f"/s/{chat.token}/chat/{done['exchange']}/feedback", json={"visit": chat.visit, "value": 1})
    page = chat.client.get(f"/s/{chat.token}").get_data(as_text=True)
    assert re.search(r'data-visit="([^"]+)"', page).group(1) == chat.visit  # the same visit goes on
    block = re.search(r'<script type="application/json" id="chat-turns">(.*?)</script>', page, re.S).group(1)
    assert "<script>" not in block and "\\u003cscript\\u003e" in block  # cannot close the data block early
    turns = jsonlib.loads(block)
    assert [t["question"] for t in turns] == ["How long does training a new item take? <script>window.__pwned = 3</script>"]
    turn = turns[0]
    assert turn["exchange"] == done["exchange"] and turn["answer"] == done["text"] and turn["feedback"] == 1
    assert turn["sources"] == done["sources"] and any(s.get("passage") for s in turn["sources"])
    fresh = app.test_client().get(f"/s/{chat.token}").get_data(as_text=True)  # another browser: its own, empty
    assert '<script type="application/json" id="chat-turns">[]</script>' in fresh
