"""Changing an active share link's rules: the address stays, a new password or a new email rule asks browsers to
unlock again, a new webhook URL gets a new secret, bad input changes nothing, and only the owner may do it."""

from __future__ import annotations

import re
from datetime import timedelta

from clients import login

from deckchat.domain import sharing
from deckchat.domain.accounts import create_user
from deckchat.extensions import db
from deckchat.models import Deck, ShareLink, utcnow


def _link(app, deck_id, **rules):
    with app.app_context():
        link = sharing.create_link(db.session.get(Deck, deck_id), **rules)
        return link.id, link.token


def _rules(app, link_id):
    with app.app_context():
        link = db.session.get(ShareLink, link_id)
        return {"label": link.label, "pw": link.password_hash, "email": link.require_email,
                "download": link.allow_download, "expires": link.expires_at, "hook": link.webhook_url,
                "secret": link.webhook_secret, "token": link.token}


def _edit(client, deck_id, link_id, **form):
    data = {"label": "", "expires_in": "keep", **form}
    return client.post(f"/decks/{deck_id}/links/{link_id}/edit", data=data)


def test_the_form_shows_the_links_rules_and_saves_changes(app, client, owner, pitch_deck):
    link_id, token = _link(app, pitch_deck, label="Seed fund", allow_download=True,
                           expires_in=timedelta(days=1))
    before = _rules(app, link_id)
    login(client)
    deck_page = client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert f'href="/decks/{pitch_deck}/links/{link_id}/edit"' in deck_page
    page = client.get(f"/decks/{pitch_deck}/links/{link_id}/edit").get_data(as_text=True)
    boxes = {name: "checked" in tag for tag in re.findall(r"<input[^>]*type=\"checkbox\"[^>]*>", page)
             for name in re.findall(r'name="([a-z_]+)"', tag)}
    assert 'value="Seed fund"' in page and boxes == {"require_email": False, "allow_download": True}
    assert token in page
    # Not a log-in form to the browser: it must not fill in the owner's own password as the link's.
    assert re.search(r'<input[^>]*autocomplete="new-password"[^>]*name="password"', page)
    assert re.search(r'<input[^>]*autocomplete="off"[^>]*name="label"', page)

    response = _edit(client, pitch_deck, link_id, label="Seed fund II", expires_in="never")
    assert response.status_code == 303
    after = _rules(app, link_id)
    assert after["label"] == "Seed fund II" and after["expires"] is None and after["token"] == token
    assert after["download"] is False  # an unticked box turns the rule off
    assert "Link updated (label, expiry, allow download); its address is the same." in \
        client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert before["expires"] is not None

    _edit(client, pitch_deck, link_id, label="Seed fund II", expires_in="7d", allow_download="y")
    after = _rules(app, link_id)
    assert after["download"] is True
    assert timedelta(days=6, hours=23) < after["expires"] - utcnow() <= timedelta(days=7)
    assert client.get(f"/s/{token}/download").status_code == 200
    _edit(client, pitch_deck, link_id, label="Seed fund II", allow_download="y")
    assert "Nothing changed." in client.get(f"/decks/{pitch_deck}").get_data(as_text=True)


def test_a_new_password_or_email_rule_asks_browsers_to_unlock_again(app, client, owner, pitch_deck):
    link_id, token = _link(app, pitch_deck, password="first-one")
    investor = app.test_client()
    assert investor.post(f"/s/{token}", data={"password": "first-one"}).status_code == 303
    assert b'data-testid="slide-image"' in investor.get(f"/s/{token}").data
    login(client)

    _edit(client, pitch_deck, link_id, require_email="y")  # the investor gave no email: asked for one now
    gate = investor.get(f"/s/{token}")
    assert b'data-testid="unlock-form"' in gate.data and investor.get(f"/s/{token}/slides/1.png").status_code == 403
    assert investor.post(f"/s/{token}", data={"password": "first-one", "email": "vc@fund.example"}).status_code == 303
    assert b'data-testid="slide-image"' in investor.get(f"/s/{token}").data

    _edit(client, pitch_deck, link_id, require_email="y", password="second-one")
    assert b'data-testid="unlock-form"' in investor.get(f"/s/{token}").data
    assert investor.post(f"/s/{token}", data={"password": "first-one", "email": "vc@fund.example"}).status_code == 401

    _edit(client, pitch_deck, link_id, require_email="y", remove_password="y")
    assert b'data-testid="slide-image"' in investor.get(f"/s/{token}").data  # no password now; the email holds
    _edit(client, pitch_deck, link_id, remove_password="y")  # no password, no email rule: open to all
    assert _rules(app, link_id)["pw"] is None
    assert b'data-testid="slide-image"' in app.test_client().get(f"/s/{token}").data


def test_webhook_changes_and_refusals(app, client, owner, pitch_deck):
    link_id, _ = _link(app, pitch_deck, webhook_url="https://hooks.example.com/a")
    first = _rules(app, link_id)
    login(client)
    _edit(client, pitch_deck, link_id, webhook_url="https://hooks.example.com/a")
    assert _rules(app, link_id)["secret"] == first["secret"]  # the same URL keeps its secret
    _edit(client, pitch_deck, link_id, webhook_url="https://hooks.example.com/b")
    second = _rules(app, link_id)
    assert second["hook"] == "https://hooks.example.com/b" and second["secret"] != first["secret"]

    refused = _edit(client, pitch_deck, link_id, label="changed", webhook_url="http://127.0.0.1:9/hook")
    assert refused.status_code == 400 and "private or local address" in refused.get_data(as_text=True)
    assert _rules(app, link_id) == second  # nothing stored, the label neither
    bad = _edit(client, pitch_deck, link_id, label="changed", webhook_url="ftp://x")
    assert bad.status_code == 400 and _rules(app, link_id) == second

    _edit(client, pitch_deck, link_id, webhook_url="")
    assert _rules(app, link_id)["hook"] is None and _rules(app, link_id)["secret"] is None


def test_an_unchanged_webhook_is_not_checked_again(app, client, owner, pitch_deck):
    link_id, _ = _link(app, pitch_deck, webhook_url="https://hooks.example.com/a")
    with app.app_context():  # its host has since moved to an address a new webhook could not use
        db.session.get(ShareLink, link_id).webhook_url = "http://127.0.0.1:9/hook"
        db.session.commit()
    login(client)
    assert _edit(client, pitch_deck, link_id, label="Seed round", webhook_url="http://127.0.0.1:9/hook").status_code == 303
    assert _rules(app, link_id)["label"] == "Seed round"  # the label could change; the webhook stays as it was
    assert _rules(app, link_id)["hook"] == "http://127.0.0.1:9/hook"
    assert _edit(client, pitch_deck, link_id, webhook_url="http://127.0.0.1:9/other").status_code == 400


def test_only_active_links_of_ones_own_decks(app, client, owner, pitch_deck):
    link_id, _ = _link(app, pitch_deck)
    with app.app_context():
        create_user("other@example.com", "password123")
    other = app.test_client()
    login(other, "other@example.com")
    assert other.get(f"/decks/{pitch_deck}/links/{link_id}/edit").status_code == 404
    assert _edit(other, pitch_deck, link_id, label="mine").status_code == 404
    login(client)
    assert client.get(f"/decks/{pitch_deck}/links/99999/edit").status_code == 404
    with app.app_context():
        sharing.revoke_link(db.session.get(ShareLink, link_id))
    response = _edit(client, pitch_deck, link_id, label="revived?")
    assert response.status_code == 303 and _rules(app, link_id)["label"] == ""
    assert "its rules can no longer change" in client.get(f"/decks/{pitch_deck}").get_data(as_text=True)


def test_changes_need_the_csrf_token(app_factory, owner_deck_factory):
    from clients import csrf_token

    app, deck_id = owner_deck_factory(app_factory(WTF_CSRF_ENABLED=True))
    link_id, _ = _link(app, deck_id)
    client = app.test_client()
    token = csrf_token(client.get("/login").data)
    client.post("/login", data={"email": "owner@example.com", "password": "password123", "csrf_token": token})
    refused = _edit(client, deck_id, link_id, label="No token")
    assert refused.status_code == 400 and b"CSRF token is missing" in refused.data
    token = csrf_token(client.get(f"/decks/{deck_id}/links/{link_id}/edit").data)
    assert _edit(client, deck_id, link_id, label="With token", csrf_token=token).status_code == 303
    assert _rules(app, link_id)["label"] == "With token"


def test_link_rules_from_the_cli(app, runner, pitch_deck):
    import json

    link_id, token = _link(app, pitch_deck, password="first-one")
    result = runner.invoke("deck", "link", token, "--label", "Angels", "--no-password", "--expires-in", "2w",
                           "--allow-download", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["changed"] == ["label", "password removed", "expiry", "allow download"]
    assert out["password"] is False and out["allow_download"] is True and out["expires_at"].endswith("Z")
    rules = _rules(app, link_id)
    assert rules["label"] == "Angels" and rules["pw"] is None and rules["download"] is True
    assert _rules(app, link_id)["expires"] - utcnow() > timedelta(days=13)
    again = json.loads(runner.invoke("deck", "link", token, "--expires-in", "never", "--json").stdout)
    assert again["changed"] == ["expiry"] and again["expires_at"] is None
    for args, message in ((["--expires-in", "soon"], "not a duration"), (["--webhook", "ftp://x"], "http"),
                          (["--password", "a", "--no-password"], "not both")):
        refused = runner.invoke("deck", "link", token, *args)
        assert refused.exit_code != 0 and message in refused.stderr and refused.stderr.count("\n") == 1, args
    assert runner.invoke("deck", "link", "no-such-token").exit_code != 0
    assert _rules(app, link_id)["label"] == "Angels"
