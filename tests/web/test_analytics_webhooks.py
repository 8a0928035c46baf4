"""End-of-visit webhooks against a real HTTP server on 127.0.0.1: delivery, summary, retries, claims,
signatures, and no delivery to a private target. The link form and the target rules are tested in
test_analytics_webhooks_targets.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import timedelta

import pytest
from clients import Receiver, visit_key
from live import free_port

from deckchat.domain import notify, sharing
from deckchat.extensions import db
from deckchat.models import ChatExchange, Deck, Visit, utcnow

IDLE = timedelta(minutes=30)


@pytest.fixture
def allow_private(app):
    """Let webhooks reach the receivers on 127.0.0.1, a private address the default configuration refuses."""
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True


def _visit(app, client, pitch_deck, url, email=None) -> int:
    """A link with the webhook, one investor visit with two stays and a question; returns the visit id."""
    with app.app_context():
        link = sharing.create_link(db.session.get(Deck, pitch_deck), label="Seed fund", webhook_url=url)
        token = link.token
    key = visit_key(client.get(f"/s/{token}").data)
    for view, slide, ms in (("stay-aaaa1", 1, 2000), ("stay-bbbb2", 2, 3000)):
        assert (
            client.post(
                "/api/track", data=json.dumps({"visit": key, "view": view, "slide": slide, "visible_ms": ms})
            ).status_code
            == 200
        )
    with app.app_context():
        visit = db.session.scalar(db.select(Visit).filter_by(key=key))
        visit.email = email
        db.session.add(
            ChatExchange(
                deck_id=pitch_deck,
                visit_id=visit.id,
                slide=2,
                question="Who are the founders?",
                answer="",
                answerable=False,
                kind="unknown",
            )
        )
        db.session.commit()
        return visit.id


def _ended(app, visit_id):
    with app.app_context():
        return db.session.get(Visit, visit_id).last_seen_at + IDLE + timedelta(seconds=1)


def test_a_visit_that_ended_is_posted_once_with_its_summary(app, client, pitch_deck, receiver, allow_private):
    visit_id = _visit(app, client, pitch_deck, receiver.url, "ada@example.com")
    later = _ended(app, visit_id)
    with app.app_context():
        assert notify.sweep(IDLE, now=later - timedelta(minutes=2)) == []  # not over yet
        [done] = notify.sweep(IDLE, now=later)
        assert done.ok and done.status == 200 and done.attempts == 1
        assert notify.sweep(IDLE, now=later + timedelta(hours=1)) == []  # never twice
        visit = db.session.get(Visit, visit_id)
        assert visit.notified_at is not None and visit.notify_error is None
    [body] = receiver.bodies
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert body["event"] == "visit.ended"
    assert body["deck"] == {"id": pitch_deck, "title": "Acme Robotics", "slides": 5}
    assert body["link"]["label"] == "Seed fund"
    v = body["visit"]
    assert (v["id"], v["email"], v["furthest_slide"], v["completed"]) == (
        visit_id,
        "ada@example.com",
        2,
        False,
    )
    assert v["slides"] == [{"slide": 1, "visible_seconds": 2.0}, {"slide": 2, "visible_seconds": 3.0}]
    assert v["visible_seconds"] == 5.0
    assert v["questions"] == [{"slide": 2, "question": "Who are the founders?", "answered": False}]


def test_failed_deliveries_are_retried_with_back_off(app, client, pitch_deck, allow_private):
    with Receiver([500, 503]) as receiver:
        visit_id = _visit(app, client, pitch_deck, receiver.url)
        t = _ended(app, visit_id)
        with app.app_context():
            [first] = notify.sweep(IDLE, now=t)
            assert (first.ok, first.status, first.error, first.attempts) == (False, 500, "HTTP 500", 1)
            assert db.session.get(Visit, visit_id).notify_error == "HTTP 500"
            assert notify.sweep(IDLE, now=t + timedelta(seconds=30)) == []  # backing off for a minute
            [second] = notify.sweep(IDLE, now=t + timedelta(minutes=1, seconds=1))
            assert (second.ok, second.attempts) == (False, 2)
            assert notify.sweep(IDLE, now=t + timedelta(minutes=2)) == []  # now two minutes
            [third] = notify.sweep(IDLE, now=t + timedelta(minutes=3, seconds=2))
            assert third.ok and third.attempts == 3
            db.session.expire_all()
            assert db.session.get(Visit, visit_id).notify_error is None
        assert len(receiver.bodies) == 3 and all(b["visit"]["id"] == visit_id for b in receiver.bodies)


def test_an_unreachable_receiver_is_retried_then_given_up(app, client, pitch_deck, allow_private):
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    visit_id = _visit(app, client, pitch_deck, url)
    t = _ended(app, visit_id)
    with app.app_context():
        for attempt in range(1, notify.MAX_ATTEMPTS + 1):
            [done] = notify.sweep(IDLE, now=t)
            assert not done.ok and done.attempts == attempt and "Error" in done.error
            t += notify.backoff(attempt) + timedelta(seconds=1)
        assert notify.sweep(IDLE, now=t + timedelta(days=1)) == []  # gave up
        assert db.session.get(Visit, visit_id).notified_at is None


def test_links_without_webhook_and_old_visits_are_left_alone(
    app, client, pitch_deck, receiver, allow_private
):
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    client.get(f"/s/{token}")
    visit_id = _visit(app, client, pitch_deck, receiver.url)
    with app.app_context():
        assert notify.sweep(IDLE, now=_ended(app, visit_id) + notify.LOOKBACK) == []
    assert receiver.bodies == []


def test_only_one_sweeper_claims_a_visit(app, client, pitch_deck, receiver, allow_private):
    visit_id = _visit(app, client, pitch_deck, receiver.url)
    t = _ended(app, visit_id)
    with app.app_context():
        assert notify.due_visits(t, IDLE) == [visit_id]
        assert notify._claim(visit_id, t, IDLE) is True
        assert notify._claim(visit_id, t, IDLE) is False  # another sweeper loses
        assert notify.due_visits(t, IDLE) == []
        assert notify.due_visits(t + notify.CLAIM + timedelta(seconds=1), IDLE) == [
            visit_id
        ]  # a dead claim lapses


def test_cli_notify_delivers_due_visits(app, client, pitch_deck, receiver, runner, allow_private):
    visit_id = _visit(app, client, pitch_deck, receiver.url)
    with app.app_context():
        db.session.get(Visit, visit_id).last_seen_at = utcnow() - timedelta(minutes=45)
        db.session.commit()
    result = runner.invoke("analytics", "notify", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["delivered"] == 1 and out["failed"] == 0 and out["deliveries"][0]["visit_id"] == visit_id
    assert len(receiver.bodies) == 1
    again = json.loads(runner.invoke("analytics", "notify", "--idle-minutes", "1", "--json").stdout)
    assert again["delivered"] == 0


def test_redirects_are_not_followed(app, client, pitch_deck, allow_private):
    with Receiver([302]) as receiver:
        visit_id = _visit(app, client, pitch_deck, receiver.url)
        with app.app_context():
            [done] = notify.sweep(IDLE, now=_ended(app, visit_id))
        assert (done.ok, done.error) == (False, "HTTP 302") and len(receiver.bodies) == 1


def test_a_private_target_is_not_delivered_to(app, client, pitch_deck, receiver):
    """A link saved before the rule, or a name now resolving inside: nothing is sent, the visit says why."""
    visit_id = _visit(app, client, pitch_deck, "https://hooks.example.com/x")
    with app.app_context():
        link = db.session.get(Visit, visit_id).link
        link.webhook_url = receiver.url
        db.session.commit()
    t = _ended(app, visit_id)
    with app.app_context():
        [done] = notify.sweep(IDLE, now=t)
        assert not done.ok and done.status is None and done.attempts == 1
        assert "private or local address (127.0.0.1)" in done.error
        visit = db.session.get(Visit, visit_id)
        assert visit.notified_at is None and visit.notify_error == done.error
        assert visit.notify_next_at == t + notify.backoff(1)  # retried like any failure
    assert receiver.bodies == []


def test_deliveries_are_signed_with_the_links_secret(app, client, pitch_deck, receiver, allow_private):
    visit_id = _visit(app, client, pitch_deck, receiver.url)
    with app.app_context():
        secret = db.session.get(Visit, visit_id).link.webhook_secret
        before = int(time.time())
        [done] = notify.sweep(IDLE, now=_ended(app, visit_id))
    assert done.ok and re.fullmatch(r"[0-9a-f]{64}", secret)
    [raw], [headers] = receiver.raw, receiver.headers
    timestamp = headers["X-DeckChat-Timestamp"]
    assert before <= int(timestamp) <= time.time() + 1

    def signature(body: bytes, key: str = secret) -> str:
        """What a receiver computes (SECURITY.md): HMAC-SHA256 of "TIMESTAMP." + the raw body."""
        return "sha256=" + hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()

    sent = headers["X-DeckChat-Signature"]
    assert hmac.compare_digest(signature(raw), sent)
    tampered = raw.replace(b'"Seed fund"', b'"Seed funds"')
    assert tampered != raw and not hmac.compare_digest(signature(tampered), sent)
    assert not hmac.compare_digest(signature(raw, key="0" * 64), sent)
    assert headers["User-Agent"] == notify.USER_AGENT
