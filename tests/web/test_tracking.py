"""Visible-time reports: validation, clamping, idempotent totals, analytics."""
from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest

from deckchat.domain import sharing, tracking
from deckchat.extensions import db
from deckchat.models import Deck, SlideView, Visit


@pytest.fixture
def visit_key(app, client, pitch_deck):
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    page = client.get(f"/s/{token}").data
    return re.search(rb'data-visit="([^"]+)"', page).group(1).decode()


def _post(client, body, content_type="text/plain"):
    return client.post("/api/track", data=json.dumps(body) if not isinstance(body, str) else body,
                       content_type=content_type)


def test_reports_keep_the_largest_total_per_stay(app, client, visit_key, pitch_deck):
    for ms in (1000, 3000, 2000):  # a late, smaller report must not lower the total
        assert _post(client, {"visit": visit_key, "view": "stay-one-1", "slide": 2, "visible_ms": ms}).status_code == 200
    _post(client, {"visit": visit_key, "view": "stay-two-2", "slide": 2, "visible_ms": 500})
    _post(client, {"visit": visit_key, "view": "stay-three", "slide": 4, "visible_ms": 1500}, "application/json")
    with app.app_context():
        from deckchat.domain.analytics import deck_analytics

        stats = deck_analytics(db.session.get(Deck, pitch_deck))
    base = [{k: s[k] for k in ("slide", "views", "visitors", "visible_seconds")} for s in stats["slides"]]
    assert stats["visits"] == 1
    assert base[1] == {"slide": 2, "views": 2, "visitors": 1, "visible_seconds": 3.5}
    assert stats["slides"][3]["visible_seconds"] == 1.5
    assert base[0] == {"slide": 1, "views": 0, "visitors": 0, "visible_seconds": 0.0}
    assert len(stats["slides"]) == 5


@pytest.mark.parametrize("body, status", [
    ("not json", 400),
    ([], 400),
    ({"visit": "x", "view": "abcdefgh", "slide": 1, "visible_ms": 1}, 400),
    ({"visit": "unknown-visit-key", "view": "abcdefgh", "slide": 1, "visible_ms": 1}, 404),
])
def test_malformed_reports_are_refused(client, body, status):
    assert _post(client, body).status_code == status


def test_bad_fields_are_refused(client, visit_key):
    for field, value in [("slide", 0), ("slide", 6), ("slide", "2"), ("slide", True), ("visible_ms", -1),
                         ("visible_ms", "9"), ("view", "short"), ("view", "bad key with spaces")]:
        body = {"visit": visit_key, "view": "abcdefgh", "slide": 1, "visible_ms": 10, field: value}
        response = _post(client, body)
        assert response.status_code == 400, (field, value)
        assert "error" in response.json


def test_visible_time_is_clamped_to_the_visit_duration(app, client, visit_key):
    response = _post(client, {"visit": visit_key, "view": "abcdefgh", "slide": 1, "visible_ms": 10**12})
    assert response.status_code == 200
    assert response.json["visible_ms"] <= (tracking.CLOCK_SLACK_SECONDS + 5) * 1000
    with app.app_context():
        visit = db.session.scalar(db.select(Visit))
        later = visit.started_at + timedelta(hours=10)
        stored = tracking.record_view(tracking.ViewReport(visit_key, "abcdefgh", 1, 10**12), 4 * 3600, now=later)
        assert stored == 4 * 3600 * 1000
        db.session.rollback()  # end the read snapshot taken before the write
        assert db.session.scalar(db.select(SlideView.visible_ms)) == 4 * 3600 * 1000


def test_oversized_body_is_refused(client, visit_key):
    assert _post(client, "x" * 5000).status_code == 413


def test_a_chunked_or_deeply_nested_report_is_refused(client, visit_key):
    body = b'{"visit": "' + visit_key.encode() + b'", "pad": "' + b"x" * 100_000 + b'"}'
    # Sent without a Content-Length, as a chunked request comes: the body is read only up to the limit.
    response = client.post("/api/track", input_stream=io.BytesIO(body), content_type="text/plain",
                           headers={"Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})  # as gunicorn sets it
    assert response.status_code == 413
    assert _post(client, "[" * 1500 + "]" * 1500).status_code == 400


def test_tracking_is_rate_limited(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory(RATELIMIT_ENABLED=True, TRACK_RATE_LIMIT="5 per minute"))
    client = app.test_client()
    codes = [_post(client, {"visit": "unknown-visit-key"}).status_code for _ in range(6)]
    assert codes[-1] == 429


def _visit_key(client, token):
    return re.search(rb'data-visit="([^"]+)"', client.get(f"/s/{token}").data).group(1).decode()


def test_a_reload_resumes_the_visit_until_it_has_ended(app, client, pitch_deck):
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    first = _visit_key(client, token)
    assert _post(client, {"visit": first, "view": "stay-one-1", "slide": 1, "visible_ms": 800}).status_code == 200
    assert _visit_key(client, token) == first  # reload in the same browser: the same visit goes on

    other = app.test_client()  # another browser (no visitor cookie) is another visit
    assert _visit_key(other, token) != first

    with app.app_context():  # idle past VISIT_IDLE_MINUTES: the visit has ended, the next opening is new
        visit = db.session.scalar(db.select(Visit).where(Visit.key == first))
        visit.last_seen_at -= timedelta(minutes=app.config["VISIT_IDLE_MINUTES"] + 1)
        db.session.commit()
    third = _visit_key(client, token)
    assert third != first
    with app.app_context():  # a visit whose end was announced is never resumed either
        visit = db.session.scalar(db.select(Visit).where(Visit.key == third))
        visit.notified_at = visit.last_seen_at
        db.session.commit()
    assert _visit_key(client, token) not in (first, third)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Visit)) == 4


def test_reports_stop_counting_once_the_link_is_revoked_or_expired(app, client, pitch_deck):
    with app.app_context():
        deck = db.session.get(Deck, pitch_deck)
        revoked, expiring = sharing.create_link(deck), sharing.create_link(deck)
        tokens = revoked.token, expiring.token
    keys = [_visit_key(client, token) for token in tokens]
    for key in keys:
        assert _post(client, {"visit": key, "view": "stay-one-1", "slide": 1, "visible_ms": 500}).status_code == 200
    with app.app_context():
        from deckchat.models import ShareLink, utcnow

        links = [db.session.scalar(db.select(ShareLink).where(ShareLink.token == t)) for t in tokens]
        links[0].revoked_at = utcnow()
        links[1].expires_at = utcnow() - timedelta(seconds=tracking.CLOCK_SLACK_SECONDS + 1)
        db.session.commit()
    for key in keys:
        response = _post(client, {"visit": key, "view": "stay-one-1", "slide": 1, "visible_ms": 9000})
        assert response.status_code == 410 and "no longer active" in response.json["error"]
    with app.app_context():  # what was recorded before stays as it was
        assert sorted(db.session.scalars(db.select(SlideView.visible_ms))) == [500, 500]


def test_opening_a_link_while_a_heartbeat_commits(app, client, pitch_deck, monkeypatch):
    from clients import commit_elsewhere

    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    start = tracking.start_visit

    def after_a_heartbeat(*args, **kwargs):
        commit_elsewhere()  # the request has read the link; another viewer's report commits before the visit
        return start(*args, **kwargs)

    monkeypatch.setattr(tracking, "start_visit", after_a_heartbeat)
    first = _visit_key(client, token)
    assert _visit_key(client, token) == first


def test_two_tabs_opening_at_once_make_one_visit(app, pitch_deck):
    import threading
    import time

    from sqlalchemy import event

    from deckchat.models import ShareLink

    with app.app_context():
        link_id = sharing.create_link(db.session.get(Deck, pitch_deck)).id
        engine = db.engine
    slow = threading.local()

    def pause_after_the_lookup(conn, cursor, statement, *args):
        # The first tab holds on between finding no live visit and starting one: the second must wait for it.
        if getattr(slow, "first", False) and "FROM visits" in statement:
            slow.first = False
            time.sleep(0.6)

    def open_tab(first: bool) -> None:
        with app.app_context():
            slow.first = first
            tracking.start_visit(db.session.get(ShareLink, link_id), "visitor-1", None, "UA",
                                 resume_within=timedelta(minutes=30))
            db.session.remove()

    event.listen(engine, "after_cursor_execute", pause_after_the_lookup)
    try:
        tabs = [threading.Thread(target=open_tab, args=(True,)), threading.Thread(target=open_tab, args=(False,))]
        tabs[0].start()
        time.sleep(0.2)
        tabs[1].start()
        for tab in tabs:
            tab.join(timeout=30)
    finally:
        event.remove(engine, "after_cursor_execute", pause_after_the_lookup)
    with app.app_context():
        assert db.session.query(Visit).count() == 1
