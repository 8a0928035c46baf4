"""Owner accounts and CSRF."""
from __future__ import annotations

import pytest

from clients import csrf_token, login
from deckchat.extensions import db
from deckchat.models import User


def test_signup_login_logout_and_hashed_password(client, app):
    response = client.post("/signup", data={"email": "New@Example.com", "password": "longenough1"})
    assert response.status_code == 302
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert user.email == "new@example.com"
        assert "longenough1" not in user.password_hash and user.check_password("longenough1")
    assert client.get("/decks/").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/decks/").status_code == 302  # back to the login page


def test_signup_errors_are_clear(client, owner):
    response = client.post("/signup", data={"email": "owner@example.com", "password": "password123"})
    assert response.status_code == 400 and b"already exists" in response.data
    response = client.post("/signup", data={"email": "x@example.com", "password": "short"})
    assert response.status_code == 400 and b"at least 8" in response.data


def test_wrong_password_is_401(client, owner):
    response = client.post("/login", data={"email": "owner@example.com", "password": "nope-nope"})
    assert response.status_code == 401 and b"Wrong email or password" in response.data
    login(client)


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example/x", "/%5Cevil.example", "/%09/evil.example",
                                    "https://evil.example/", "/\\/evil.example"])
def test_login_redirect_stays_on_site(client, owner, target):
    # Browsers read "\\" as "/" and drop a tab: each of these would leave the site.
    response = client.post("/login", query_string={"next": target.replace("%5C", "\\").replace("%09", "\t")},
                           data={"email": "owner@example.com", "password": "password123"})
    assert response.location == "/decks/"


def test_login_follows_a_path_on_this_site(client, owner):
    response = client.post("/login", query_string={"next": "/decks/1/analytics?link=2"},
                           data={"email": "owner@example.com", "password": "password123"})
    assert response.location == "/decks/1/analytics?link=2"


def test_forms_require_csrf_tokens(app_factory):
    app = app_factory(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    with app.app_context():
        from deckchat.domain.accounts import create_user

        create_user("owner@example.com", "password123")
    response = client.post("/login", data={"email": "owner@example.com", "password": "password123"})
    assert response.status_code == 400 and b"CSRF token is missing" in response.data
    token = csrf_token(client.get("/login").data)
    response = client.post("/login", data={"email": "owner@example.com", "password": "password123",
                                           "csrf_token": token})
    assert response.status_code == 302
    # Logging out, creating links and deleting decks are state changes: without a token nothing happens.
    assert client.post("/logout").status_code == 400
    assert client.get("/decks/").status_code == 200


def test_session_cookie_is_httponly_and_samesite(client, owner):
    response = login(client)
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_send_a_csp_without_inline_scripts(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert b"<script>" not in response.data


def test_secure_cookies_behind_https(app_factory):
    from deckchat.config import Config

    app = app_factory(SESSION_COOKIE_SECURE=True)
    with app.app_context():
        from deckchat.domain.accounts import create_user

        create_user("owner@example.com", "password123")
    response = app.test_client().post("/login", data={"email": "owner@example.com", "password": "password123"})
    cookie = response.headers.get("Set-Cookie", "")
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert Config.SESSION_COOKIE_HTTPONLY and Config.SESSION_COOKIE_SAMESITE == "Lax"
