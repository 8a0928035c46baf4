"""Shared fixtures: an app on a fresh instance folder and database (schema from migrations), clients, CLI."""
from __future__ import annotations

import os

import pytest
from flask_migrate import upgrade

from deckchat import create_app
from deckchat.cli import main as cli_main
from deckchat.domain.accounts import create_user
from clients import Receiver, csrf_token, login  # noqa: F401 - re-exported for tests that still import them from here
from factories import PITCH_FAQ, PITCH_NOTES, PITCH_PAGES, make_pdf

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """On the PostgreSQL pass, skip the tests that exercise SQLite's own file and locks."""
    if not _database_url():
        return
    skip = pytest.mark.skip(reason="SQLite-specific; DECKCHAT_TEST_DATABASE_URL selects PostgreSQL")
    for item in items:
        if item.get_closest_marker("sqlite"):
            item.add_marker(skip)


def _database_url() -> str | None:
    """SQLite in the test's instance folder, or the PostgreSQL URL given by DECKCHAT_TEST_DATABASE_URL."""
    return os.environ.get("DECKCHAT_TEST_DATABASE_URL") or None


@pytest.fixture
def app_factory(tmp_path, monkeypatch):
    """Make an app on a fresh instance folder; extra config as keyword arguments."""
    made = []

    def make(**config):
        instance = tmp_path / f"instance{len(made)}"
        monkeypatch.setenv("DECKCHAT_INSTANCE_PATH", str(instance))
        base = {
            "TESTING": True, "SECRET_KEY": "test-secret", "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
            "SLIDE_IMAGE_WIDTH": 480, "THUMB_WIDTH": 96, "SERVER_NAME": "localhost",
        }
        url = _database_url()
        if url:
            base["SQLALCHEMY_DATABASE_URI"] = url
        base.update(config)
        app = create_app(base)
        with app.app_context():
            if url:
                _reset_postgres()
            upgrade()
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            from deckchat.extensions import db

            db.session.remove()
            db.engine.dispose()


def _reset_postgres() -> None:
    """Drop every table so each test starts from an empty PostgreSQL schema, built by migrations."""
    from deckchat.extensions import db

    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


@pytest.fixture
def app(app_factory):
    """An app with CSRF and rate limits off, for tests of other behaviour."""
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    """Invoke `deckchat ...` commands against the test app (result.stdout and result.stderr apart)."""

    class Runner:
        def invoke(self, *args):
            return app.test_cli_runner().invoke(cli_main, list(args))

    return Runner()


@pytest.fixture
def owner(app):
    """An owner account: owner@example.com / password123."""
    with app.app_context():
        user = create_user("owner@example.com", "password123")
        return user.id


@pytest.fixture
def pitch_files(tmp_path):
    """A 5-page PDF deck with a text layer, speaker notes and a FAQ, as files."""
    pdf = tmp_path / "pitch.pdf"
    pdf.write_bytes(make_pdf(PITCH_PAGES))
    notes = tmp_path / "notes.md"
    notes.write_text(PITCH_NOTES)
    faq = tmp_path / "faq.md"
    faq.write_text(PITCH_FAQ)
    return {"pdf": pdf, "notes": notes, "faq": faq}


@pytest.fixture
def pitch_deck(app, owner, pitch_files):
    """The pitch deck imported for the owner (no index); returns its id."""
    from deckchat.domain.decks import ImportLimits, import_deck
    from deckchat.extensions import db
    from deckchat.models import User

    with app.app_context():
        deck, _ = import_deck(
            owner=db.session.get(User, owner), instance_path=app.instance_path, slides_path=pitch_files["pdf"],
            filename="pitch.pdf", notes_md=pitch_files["notes"].read_text(), faq_md=pitch_files["faq"].read_text(),
            limits=ImportLimits.from_config(app.config),
        )
        return deck.id


@pytest.fixture
def owner_deck_factory(pitch_files):
    """Give an app an owner and the pitch deck; returns (app, deck id)."""
    from deckchat.domain.decks import ImportLimits, import_deck

    def make(app, email="owner@example.com"):
        with app.app_context():
            user = create_user(email, "password123")
            deck, _ = import_deck(owner=user, instance_path=app.instance_path, slides_path=pitch_files["pdf"],
                                  filename="pitch.pdf", limits=ImportLimits.from_config(app.config))
            return app, deck.id

    return make


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """A running `deckchat serve` with an owner, shared by a test module."""
    from live import LiveServer

    instance = tmp_path_factory.mktemp("live-instance")
    with LiveServer(instance) as server:
        server.cli("user", "create", "owner@example.com", "--password", "password123")
        yield server


@pytest.fixture
def live_deck(live_server, pitch_files):
    """A fresh indexed pitch deck (notes, FAQ) with an open share link on the running server."""
    deck = live_server.cli("deck", "import", str(pitch_files["pdf"]), "--owner", "owner@example.com",
                           "--notes", str(pitch_files["notes"]), "--faq", str(pitch_files["faq"]))
    live_server.deck_id = deck["deck_id"]
    live_server.token = live_server.cli("deck", "share", str(deck["deck_id"]))["token"]
    return live_server


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 that answers 200 and keeps what it got."""
    with Receiver() as r:
        yield r
