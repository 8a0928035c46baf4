"""Visible-time reports: validation, clamping, idempotent totals, analytics."""
from __future__ import annotations

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


def test_tracking_is_rate_limited(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory(RATELIMIT_ENABLED=True, TRACK_RATE_LIMIT="5 per minute"))
    client = app.test_client()
    codes = [_post(client, {"visit": "unknown-visit-key"}).status_code for _ in range(6)]
    assert codes[-1] == 429
