"""An owner's password: changed on the account page (current one confirmed), other sessions end, the CLI sets
one for an owner who forgot theirs."""

from __future__ import annotations

import json

from clients import login

from deckchat.extensions import db
from deckchat.models import User


def _change(client, current, new, confirm=None):
    return client.post("/account", data={"current": current, "new": new, "confirm": new if confirm is None else confirm})


def test_changing_the_password_ends_the_other_sessions(app, owner, pitch_deck):
    here, elsewhere = app.test_client(), app.test_client()
    login(here)
    login(elsewhere)
    page = here.get("/account").get_data(as_text=True)
    assert 'data-testid="password-form"' in page and 'autocomplete="current-password"' in page
    assert 'data-testid="account-link"' in here.get("/decks/").get_data(as_text=True)

    for args, message in ((("wrong-password", "new-password-1"), "The current password is wrong."),
                          (("password123", "short"), "at least 8 characters"),
                          (("password123", "new-password-1", "new-password-2"), "The two new passwords differ."),
                          (("password123", "password123"), "the same as the current one")):
        refused = _change(here, *args)
        assert refused.status_code == 400 and message in refused.get_data(as_text=True), args
    assert elsewhere.get("/decks/").status_code == 200  # nothing changed yet

    done = _change(here, "password123", "new-password-1")
    assert done.status_code == 303
    assert "Password changed." in here.get("/account").get_data(as_text=True)
    assert here.get(f"/decks/{pitch_deck}").status_code == 200  # this session goes on
    assert elsewhere.get("/decks/").status_code == 302  # the other one ends
    fresh = app.test_client()
    assert fresh.post("/login", data={"email": "owner@example.com", "password": "password123"}).status_code == 401
    login(fresh, password="new-password-1")


def test_sessions_from_before_an_upgrade_or_a_tampered_key_are_refused(app, owner):
    client = app.test_client()
    login(client)
    for stale in (str(owner), f"{owner}:0000000000000000", "x:y", ""):
        with client.session_transaction() as session:
            session["_user_id"] = stale
        assert client.get("/decks/").status_code == 302, stale


def test_the_account_page_needs_a_login(client):
    response = client.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_operator_sets_a_new_password(app, runner, owner):
    result = runner.invoke("user", "password", "Owner@Example.com", "--password", "reset-by-cli", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"user_id": owner, "email": "owner@example.com"}
    with app.app_context():
        assert db.session.get(User, owner).check_password("reset-by-cli")
    for args, message in ((["nobody@example.com", "--password", "long-enough"], "no owner"),
                          (["owner@example.com", "--password", "short"], "at least 8")):
        refused = runner.invoke("user", "password", *args)
        assert refused.exit_code != 0 and message in refused.stderr and refused.stderr.count("\n") == 1
