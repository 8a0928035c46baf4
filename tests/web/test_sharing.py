"""Share links: password, expiry, revocation, required email, download, and the viewer page."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from deckchat.domain import sharing
from deckchat.extensions import db
from deckchat.models import Deck, ShareLink, Visit, utcnow


def _link(app, deck_id, **kwargs) -> str:
    with app.app_context():
        return sharing.create_link(db.session.get(Deck, deck_id), **kwargs).token


def test_open_link_shows_viewer_and_starts_a_visit(app, client, pitch_deck):
    token = _link(app, pitch_deck)
    page = client.get(f"/s/{token}")
    assert page.status_code == 200
    for testid in ("slide-image", "slide-number", "next-slide", "prev-slide"):
        assert f'data-testid="{testid}"'.encode() in page.data
    assert b'data-testid="download"' not in page.data
    assert client.get(f"/s/{token}/slides/1.png").status_code == 200
    assert client.get(f"/s/{token}/slides/6.png").status_code == 404
    assert client.get(f"/s/{token}/download").status_code == 403
    client.get(f"/s/{token}")
    app.test_client().get(f"/s/{token}")
    with app.app_context():  # the reload goes on with the first visit; another browser is a second one
        assert db.session.query(Visit).count() == 2


def test_unknown_token_is_404(client):
    assert client.get("/s/not-a-real-token").status_code == 404


def test_password_link(app, client, pitch_deck):
    token = _link(app, pitch_deck, password="open sesame")
    gate = client.get(f"/s/{token}")
    assert gate.status_code == 200 and b'data-testid="unlock-form"' in gate.data
    assert b'data-testid="slide-image"' not in gate.data
    assert client.get(f"/s/{token}/slides/1.png").status_code == 403
    wrong = client.post(f"/s/{token}", data={"password": "guess"})
    assert wrong.status_code == 401 and b"Wrong password" in wrong.data
    with app.app_context():
        assert db.session.query(Visit).count() == 0
        assert "open sesame" not in db.session.scalar(db.select(ShareLink.password_hash))
    right = client.post(f"/s/{token}", data={"password": "open sesame"})
    assert right.status_code == 303
    assert b'data-testid="slide-image"' in client.get(f"/s/{token}").data
    assert client.get(f"/s/{token}/slides/1.png").status_code == 200


def test_password_attempts_are_rate_limited(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory(RATELIMIT_ENABLED=True, UNLOCK_RATE_LIMIT="3 per minute"))
    token = _link(app, deck_id, password="right-one")
    client = app.test_client()
    codes = [client.post(f"/s/{token}", data={"password": f"guess{i}"}).status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert client.post(f"/s/{token}", data={"password": "right-one"}).status_code == 429


def test_openings_are_rate_limited_per_address(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory(RATELIMIT_ENABLED=True, OPEN_RATE_LIMIT="3 per minute"))
    token = _link(app, deck_id)
    # Without a cookie every opening is a new visit: a script doing that must not flood the analytics.
    codes = [app.test_client().get(f"/s/{token}").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    page = app.test_client().get(f"/s/{token}").get_data(as_text=True)
    assert "Too many openings from your address" in page
    with app.app_context():
        assert db.session.query(Visit).count() == 3


def test_expired_link_is_410(app, client, pitch_deck):
    token = _link(app, pitch_deck, expires_at=utcnow() - timedelta(seconds=1))
    response = client.get(f"/s/{token}")
    assert response.status_code == 410 and b"expired" in response.data
    assert client.get(f"/s/{token}/slides/1.png").status_code == 410
    live = _link(app, pitch_deck, expires_in=sharing.parse_duration("7d"))
    assert client.get(f"/s/{live}").status_code == 200


def test_revoked_link_is_410_everywhere(app, client, pitch_deck):
    token = _link(app, pitch_deck, allow_download=True)
    assert client.get(f"/s/{token}").status_code == 200
    with app.app_context():
        sharing.revoke_link(sharing.find_link(token))
    for path in (f"/s/{token}", f"/s/{token}/slides/1.png", f"/s/{token}/download"):
        response = client.get(path)
        assert response.status_code == 410 and b"revoked" in response.data


def test_required_email_is_captured(app, client, pitch_deck):
    token = _link(app, pitch_deck, require_email=True)
    assert b'data-testid="unlock-email"' in client.get(f"/s/{token}").data
    assert client.post(f"/s/{token}", data={"email": ""}).status_code == 400
    assert client.post(f"/s/{token}", data={"email": "not-an-email"}).status_code == 400
    assert client.post(f"/s/{token}", data={"email": "Investor@Fund.example"}).status_code == 303
    assert client.get(f"/s/{token}").status_code == 200
    with app.app_context():
        assert db.session.scalar(db.select(Visit.email)) == "investor@fund.example"


def test_download_only_when_allowed(app, client, pitch_deck):
    token = _link(app, pitch_deck, allow_download=True)
    assert b'data-testid="download"' in client.get(f"/s/{token}").data
    response = client.get(f"/s/{token}/download")
    assert response.status_code == 200 and response.data.startswith(b"%PDF-")
    assert "attachment" in response.headers["Content-Disposition"]


def test_changing_the_password_locks_unlocked_browsers_again(app, client, pitch_deck):
    token = _link(app, pitch_deck, password="first")
    client.post(f"/s/{token}", data={"password": "first"})
    assert client.get(f"/s/{token}/slides/1.png").status_code == 200
    with app.app_context():
        link = sharing.find_link(token)
        link.set_password("second")
        db.session.commit()
    assert client.get(f"/s/{token}/slides/1.png").status_code == 403


def test_tokens_are_unguessable(app, pitch_deck):
    tokens = {_link(app, pitch_deck) for _ in range(20)}
    assert len(tokens) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24,}", t) for t in tokens)


def test_duration_parsing():
    assert sharing.parse_duration("7d") == timedelta(days=7)
    assert sharing.parse_duration("12h") == timedelta(hours=12)
    for bad in ("", "7", "0d", "3y", "-1d"):
        with pytest.raises(ValueError):
            sharing.parse_duration(bad)
