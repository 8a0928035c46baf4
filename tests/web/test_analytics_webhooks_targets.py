"""Webhook targets: the link form, the rules that refuse private and local addresses, the secret shown only
to the owner, connections pinned to the checked address (HTTP and HTTPS) and migration 0005's secrets."""

from __future__ import annotations

import re
import shutil
import ssl

import pytest
from clients import login, tls_receiver
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from deckchat.domain import notify
from deckchat.extensions import db
from deckchat.models import ShareLink, utcnow


def test_owner_sets_the_webhook_on_a_new_link(client, owner, pitch_deck, app):
    login(client)
    page = client.get(f"/decks/{pitch_deck}").data
    assert b'data-testid="webhook-url"' in page
    form = {"label": "with hook", "expires_in": "", "webhook_url": "https://hooks.example.com/deck?x=1"}
    assert client.post(f"/decks/{pitch_deck}/links", data=form).status_code == 303
    for bad in ("ftp://example.com/x", "javascript:alert(1)", "not a url", "http://" + "a" * 500 + ".com"):
        response = client.post(
            f"/decks/{pitch_deck}/links", data={**form, "webhook_url": bad}, follow_redirects=True
        )
        assert b"could not be created" in response.data, bad
    with app.app_context():
        hooks = db.session.scalars(db.select(ShareLink.webhook_url)).all()
    assert hooks == ["https://hooks.example.com/deck?x=1"]


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://hooks.example.com/a", True),
        ("http://127.0.0.1:8080/x", True),
        ("ftp://x.org/a", False),
        ("https:///nohost", False),
        ("", False),
    ],
)
def test_webhook_url_rule(url, ok):
    assert notify.valid_webhook_url(url) is ok


PRIVATE_TARGETS = [
    "http://127.0.0.1:8080/x",
    "http://10.1.2.3/x",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/x",
    "http://localhost:8080/x",
]


@pytest.mark.parametrize("url", PRIVATE_TARGETS)
def test_the_link_form_refuses_private_and_local_targets(client, owner, pitch_deck, app, url):
    login(client)
    form = {"label": "inside", "expires_in": "", "webhook_url": url}
    page = client.post(f"/decks/{pitch_deck}/links", data=form, follow_redirects=True).data
    assert b"could not be created" in page and b"private or local address" in page, url
    assert b"DECKCHAT_WEBHOOK_ALLOW_PRIVATE=1" in page
    with app.app_context():
        assert db.session.scalars(db.select(ShareLink)).all() == []


def test_an_unresolvable_host_is_accepted_and_the_owner_sees_its_secret(client, owner, pitch_deck, app):
    login(client)
    form = {"label": "public", "expires_in": "", "webhook_url": "https://hooks.example.com/x"}
    assert client.post(f"/decks/{pitch_deck}/links", data=form).status_code == 303
    with app.app_context():
        [link] = db.session.scalars(db.select(ShareLink)).all()
        secret = link.webhook_secret
    assert link.webhook_url == "https://hooks.example.com/x" and re.fullmatch(r"[0-9a-f]{64}", secret)
    page = client.get(f"/decks/{pitch_deck}").data.decode()
    assert "Webhook secret" in page and f'<code data-testid="webhook-secret">{secret}</code>' in page
    # Only there: not in the analytics JSON nor the exports.
    for path in ("/api/decks/{}/analytics", "/decks/{}/analytics/visits.csv",
                 "/decks/{}/analytics/slides.csv"):
        response = client.get(path.format(pitch_deck))
        assert response.status_code == 200 and secret.encode() not in response.data, path


@pytest.mark.parametrize(
    "url, refused",
    [
        ("http://127.0.0.1:9/x", True),
        ("http://[::ffff:10.0.0.1]/x", True),  # IPv4-mapped IPv6
        ("http://2130706433/x", True),  # 127.0.0.1 written as one number
        ("http://0.0.0.0/x", True),
        ("http://224.0.0.1/x", True),  # multicast
        ("http://[fe80::1]/x", True),
        ("http://[fc00::1]/x", True),
        ("http://100.64.0.1/x", True),  # carrier-grade NAT
        ("http://8.8.8.8/x", False),
        ("http://[2606:4700:4700::1111]/x", False),
        ("https://hooks.example.com/x", False),  # does not resolve here: checked again when sent
    ],
)
def test_private_target_rule(url, refused):
    error = notify.private_target_error(url)
    assert (error is not None) is refused, error
    assert error is None or "private or local address" in error


def test_the_connection_goes_to_the_checked_address_under_the_urls_name(receiver):
    """Against DNS rebinding: the socket opens to the checked address, the Host header keeps the name."""
    port = receiver.server.server_address[1]
    conn = notify._PinnedHTTP("hooks.example.com", port=port, timeout=5, addresses=["127.0.0.1"])
    try:
        conn.request("POST", "/hook", b"{}", {"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert receiver.headers[0]["Host"] == f"hooks.example.com:{port}"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_https_to_the_checked_address_still_checks_the_name(tmp_path):
    """TLS goes to the pinned address, yet SNI and the certificate check use the URL's host name."""
    receiver, cert, names = tls_receiver(tmp_path)
    with receiver:
        port = receiver.server.server_address[1]
        for host, ok in (("hooks.test", True), ("other.test", False)):
            conn = notify._PinnedHTTPS(host, port=port, timeout=5, addresses=["127.0.0.1"],
                                       context=ssl.create_default_context(cafile=str(cert)))
            try:
                conn.request("POST", "/hook", b"{}", {"Content-Type": "application/json"})
                assert ok and conn.getresponse().status == 200
            except ssl.SSLCertVerificationError:
                assert not ok
            finally:
                conn.close()
    assert names[0] == "hooks.test" and receiver.headers[0]["Host"] == f"hooks.test:{port}"
    assert len(receiver.bodies) == 1


def test_migration_0005_gives_each_existing_webhook_its_own_secret(app, pitch_deck):
    with app.app_context():
        downgrade(revision="0004")
        with db.engine.begin() as conn:
            for token, url in (("t-hook-1", "https://a.example/h"), ("t-hook-2", "https://b.example/h"),
                               ("t-plain", None), ("t-empty", "")):
                conn.execute(
                    text("INSERT INTO share_links (deck_id, token, label, require_email, allow_download, "
                         "webhook_url, created_at) VALUES (:deck, :token, '', :no, :no, :url, :now)"),
                    {"deck": pitch_deck, "token": token, "no": False, "url": url, "now": utcnow()},
                )
        upgrade()
        with db.engine.connect() as conn:
            secrets = dict(conn.execute(text("SELECT token, webhook_secret FROM share_links")).all())
    assert all(re.fullmatch(r"[0-9a-f]{64}", secrets[t]) for t in ("t-hook-1", "t-hook-2"))
    assert secrets["t-hook-1"] != secrets["t-hook-2"]
    assert secrets["t-plain"] is None and secrets["t-empty"] is None
