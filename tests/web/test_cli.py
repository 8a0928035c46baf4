"""`deckchat` commands: JSON on stdout, one-line errors on stderr with a non-zero exit."""
from __future__ import annotations

import json
import re

import pytest
from clients import login
from factories import REAL_PPTX

from deckchat.extensions import db
from deckchat.models import ShareLink


def _json(result) -> dict:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_init_is_safe_to_run_twice(runner):
    first = _json(runner.invoke("init", "--json"))
    second = _json(runner.invoke("init", "--json"))
    assert first == second and "instance_path" in first


def test_user_import_share_analytics(runner, pitch_files):
    assert _json(runner.invoke("user", "create", "cli@example.com", "--password", "password123", "--json"))["user_id"]
    out = _json(runner.invoke("deck", "import", str(pitch_files["pdf"]), "--owner", "cli@example.com",
                              "--title", "Acme pitch", "--notes", str(pitch_files["notes"]),
                              "--faq", str(pitch_files["faq"]), "--no-index", "--json"))
    assert out == {"deck_id": out["deck_id"], "title": "Acme pitch", "slides": 5, "notes": 4}
    link = _json(runner.invoke("deck", "share", str(out["deck_id"]), "--password", "pw", "--expires-in", "7d",
                               "--require-email", "--allow-download", "--json"))
    assert link["url"] == f"/s/{link['token']}"
    stats = _json(runner.invoke("analytics", str(out["deck_id"]), "--json"))
    base = {"deck_id": stats["deck_id"], "visits": stats["visits"],
            "slides": [{k: s[k] for k in ("slide", "views", "visitors", "visible_seconds")} for s in stats["slides"]]}
    assert base == {"deck_id": out["deck_id"], "visits": 0,
                    "slides": [{"slide": n, "views": 0, "visitors": 0, "visible_seconds": 0.0} for n in range(1, 6)]}


def test_errors_go_to_stderr_with_non_zero_exit(runner, tmp_path, owner):
    exe = tmp_path / "deck.pdf"
    exe.write_bytes(b"MZ" + b"\0" * 100)
    cases = [
        ("deck", "import", str(exe), "--owner", "owner@example.com", "--json"),
        ("deck", "import", str(exe), "--owner", "nobody@example.com", "--json"),
        ("deck", "share", "999", "--json"),
        ("deck", "share", "1", "--expires-in", "soon", "--json"),
        ("analytics", "999", "--json"),
        ("user", "create", "owner@example.com", "--password", "password123", "--json"),
    ]
    for args in cases:
        result = runner.invoke(*args)
        assert result.exit_code != 0, args
        assert result.stdout == "", args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, (args, result.stderr)


def test_real_pptx_import_counts(runner, owner):
    import pytest

    if not REAL_PPTX.exists():
        pytest.skip("real test deck not present in ../shared/testdata/real")
    out = _json(runner.invoke("deck", "import", str(REAL_PPTX), "--owner", "owner@example.com", "--no-index",
                              "--json"))
    assert (out["slides"], out["notes"]) == (21, 20)


def test_share_with_a_webhook_checks_the_url(runner, pitch_deck, app):
    from deckchat.domain.sharing import find_link

    bad = runner.invoke("deck", "share", str(pitch_deck), "--webhook", "ftp://example.com/x", "--json")
    assert bad.exit_code != 0 and "http" in bad.stderr
    good = _json(runner.invoke("deck", "share", str(pitch_deck), "--webhook", "https://hooks.example/v", "--json"))
    assert re.fullmatch(r"[0-9a-f]{64}", good["webhook_secret"])
    with app.app_context():
        link = find_link(good["token"])
        assert (link.webhook_url, link.webhook_secret) == ("https://hooks.example/v", good["webhook_secret"])
    plain = _json(runner.invoke("deck", "share", str(pitch_deck), "--json"))
    assert "webhook_secret" not in plain
    text = runner.invoke("deck", "share", str(pitch_deck), "--webhook", "https://hooks.example/w").stdout
    assert re.search(r"^webhook secret: [0-9a-f]{64}$", text, re.MULTILINE)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
    "http://localhost:8080/x",
])
def test_share_refuses_a_webhook_to_a_private_or_local_address(runner, pitch_deck, app, url):
    result = runner.invoke("deck", "share", str(pitch_deck), "--webhook", url, "--json")
    assert result.exit_code != 0 and result.stdout == ""
    assert "private or local address" in result.stderr and "DECKCHAT_WEBHOOK_ALLOW_PRIVATE=1" in result.stderr
    with app.app_context():
        assert db.session.scalars(db.select(ShareLink)).all() == []


def test_share_allows_a_private_webhook_when_configured(runner, pitch_deck, app):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True  # an on-premises receiver
    out = _json(runner.invoke("deck", "share", str(pitch_deck), "--webhook", "http://10.1.2.3/x", "--json"))
    assert re.fullmatch(r"[0-9a-f]{64}", out["webhook_secret"])


def test_deck_rename(runner, pitch_deck, app):
    out = _json(runner.invoke("deck", "rename", str(pitch_deck), "  Acme <Series A>  ", "--json"))
    assert out == {"deck_id": pitch_deck, "title": "Acme <Series A>", "previous_title": "Acme Robotics", "changed": True}
    again = runner.invoke("deck", "rename", str(pitch_deck), "Acme <Series A>")
    assert again.exit_code == 0 and "already" in again.stdout
    for args in (("deck", "rename", str(pitch_deck), "   "), ("deck", "rename", str(pitch_deck), "x" * 201),
                 ("deck", "rename", "999", "Title")):
        result = runner.invoke(*args, "--json")
        assert result.exit_code != 0 and result.stdout == "", args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, (args, result.stderr)
    with app.app_context():
        from deckchat.models import Deck

        assert db.session.get(Deck, pitch_deck).title == "Acme <Series A>"


@pytest.fixture
def quick_demo(monkeypatch):
    """`deckchat demo` without building the chat index, and with the server start recorded instead of run."""
    import os

    from deckchat.cli import decks as deck_commands

    monkeypatch.setattr(deck_commands, "reindex", lambda *a, **k: [])
    started = []

    def execve(path, args, env):
        started.append((args, env))
        raise SystemExit(0)  # execve never returns: neither may this

    monkeypatch.setattr(os, "execve", execve)
    return started


def test_demo_starts_the_server_it_announces(runner, quick_demo):
    result = runner.invoke("demo", "--port", "8123")
    assert result.exit_code == 0, result.stderr
    assert "Starting the server (Ctrl+C stops it)..." in result.stdout
    assert len(quick_demo) == 1
    args, env = quick_demo[0]
    assert "gunicorn" in args and env["DECKCHAT_BIND"] == "127.0.0.1:8123"


def test_demo_with_json_or_no_serve_only_prepares(app, runner, quick_demo):
    out = _json(runner.invoke("demo", "--json"))
    assert out["share_url"].startswith("http://127.0.0.1:8000/s/") and out["email"] == "demo@deckchat.local"
    client = app.test_client()  # the printed credentials open the owner's pages through the real form
    login(client, out["email"], out["password"])
    assert client.get(f"/decks/{out['deck_id']}").status_code == 200
    result = runner.invoke("demo", "--no-serve")
    assert result.exit_code == 0 and "Starting the server" not in result.stdout
    assert "Start the server with: python -m deckchat serve --host 127.0.0.1 --port 8000" in result.stdout
    assert quick_demo == []


def test_list_links_and_delete_decks(app, runner, owner, pitch_deck):
    share = _json(runner.invoke("deck", "share", str(pitch_deck), "--label", "Seed", "--json"))
    listed = _json(runner.invoke("deck", "list", "--json"))["decks"]
    assert [(d["deck_id"], d["slides"], d["links"], d["active_links"], d["owner"]) for d in listed] == \
        [(pitch_deck, 5, 1, 1, "owner@example.com")]
    assert _json(runner.invoke("deck", "list", "--owner", "owner@example.com", "--json"))["decks"] == listed
    assert runner.invoke("deck", "list", "--owner", "nobody@example.com").exit_code != 0
    links = _json(runner.invoke("deck", "links", str(pitch_deck), "--json"))["links"]
    assert [(lk["token"], lk["label"], lk["state"], lk["visits"]) for lk in links] == [(share["token"], "Seed", "active", 0)]

    refused = runner.invoke("deck", "delete", str(pitch_deck))  # no --yes and nobody to ask: nothing happens
    assert refused.exit_code != 0 and refused.stderr == "error: nothing deleted: add --yes to delete without being asked\n"
    assert _json(runner.invoke("deck", "delete", str(pitch_deck), "--yes", "--json")) == {"deck_id": pitch_deck,
                                                                                          "deleted": True}
    assert _json(runner.invoke("deck", "list", "--json"))["decks"] == []
    assert "No decks yet." in runner.invoke("deck", "list").stdout
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(ShareLink)) == 0
