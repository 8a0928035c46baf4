"""End-of-visit webhooks against a real HTTP server on 127.0.0.1: delivery, summary, retries, link form,
signatures, and the refusal of private and local targets (when saved and when sent)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from clients import login, visit_key
from flask_migrate import downgrade, upgrade
from live import free_port
from sqlalchemy import text

from deckchat.domain import notify, sharing
from deckchat.extensions import db
from deckchat.models import ChatExchange, Deck, ShareLink, Visit, utcnow

IDLE = timedelta(minutes=30)


class Receiver:
    """A webhook receiver that answers with the given statuses in turn (then 200) and keeps what it got."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []  # the bodies exactly as received, for signature checks
        self.headers: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                receiver.raw.append(data)
                receiver.bodies.append(json.loads(data))
                receiver.headers.append(dict(self.headers))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


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


def test_redirects_are_not_followed(app, client, pitch_deck, allow_private):
    with Receiver([302]) as receiver:
        visit_id = _visit(app, client, pitch_deck, receiver.url)
        with app.app_context():
            [done] = notify.sweep(IDLE, now=_ended(app, visit_id))
        assert (done.ok, done.error) == (False, "HTTP 302") and len(receiver.bodies) == 1


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
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.test",
                    "-addext", "subjectAltName=DNS:hooks.test"], check=True, capture_output=True)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    names = []
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)
    receiver = Receiver()
    receiver.server.socket = server_context.wrap_socket(receiver.server.socket, server_side=True)
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
