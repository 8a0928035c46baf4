"""Serving in-process: health and readiness, request ids, the gunicorn plan, the secret-key rule, backups."""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time

import pytest

from deckchat import create_app
from deckchat.serving import plan_serving, secret_key_problem
from deckchat.web import health
from deckchat.web.observability import JsonFormatter


def test_healthz_answers_without_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_reports_each_check(client):
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["ready"] is True and body["draining"] is False
    assert set(body["checks"]) == {"database", "index_store", "engine"}
    assert body["checks"]["engine"]["engine"] == "extractive" and body["checks"]["engine"]["ok"]
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("DECKCHAT_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'missing' / 'deckchat.db'}"})
    response = app.test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 503 and body["ready"] is False
    database = body["checks"]["database"]
    assert database["ok"] is False and "OperationalError" in database["error"]
    assert app.test_client().get("/healthz").status_code == 200  # up, just not ready


def test_readyz_is_503_when_the_schema_is_behind_the_code(app, client):
    from deckchat.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "deckchat init" in response.get_json()["checks"]["database"]["error"]


def test_readyz_is_503_while_draining(client):
    health.DRAINING.set()
    try:
        response = client.get("/readyz")
        assert response.status_code == 503 and response.get_json()["draining"] is True
    finally:
        health.DRAINING.clear()
    assert client.get("/readyz").status_code == 200


def test_request_id_is_echoed_or_made(client):
    echoed = client.get("/healthz", headers={"X-Request-ID": "edge-42.a"}).headers["X-Request-ID"]
    assert echoed == "edge-42.a"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id; forged=1"}).headers["X-Request-ID"]
    assert len(made) == 32 and made.isalnum()


def test_access_log_line_carries_request_id_and_route_not_the_token(app, client, caplog, pitch_deck):
    from deckchat.domain import sharing
    from deckchat.extensions import db
    from deckchat.models import Deck

    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    with caplog.at_level(logging.INFO, logger="deckchat.access"):
        client.get(f"/s/{token}", headers={"X-Request-ID": "req-1"}).close()
        client.get(f"/s/{token}/slides/2.png", headers={"X-Request-ID": "req-2"}).close()  # a file send
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "deckchat.access"]
    page, image = lines
    assert page["request_id"] == "req-1" and page["status"] == 200 and page["route"] == "/s/<token>"
    assert token not in json.dumps(page) and page["duration_ms"] >= 0 and page["level"] == "info"
    assert image["request_id"] == "req-2" and image["route"] == "/s/<token>/slides/<int:number>.png"


def test_plan_one_worker_for_an_in_process_model():
    assert plan_serving({"DECKCHAT_ENGINE": "hf"}, cpus=8).workers == 1
    with pytest.raises(ValueError, match="one worker"):
        plan_serving({"DECKCHAT_ENGINE": "hf", "DECKCHAT_WORKERS": "2"})


def test_plan_several_workers_only_with_shared_rate_limits():
    assert plan_serving({"DECKCHAT_ENGINE": "openai"}, cpus=8).workers == 1
    shared = {"DECKCHAT_ENGINE": "openai", "DECKCHAT_RATELIMIT_STORAGE": "redis://127.0.0.1:6379/0"}
    assert plan_serving(shared, cpus=8).workers == 4 and plan_serving(shared, cpus=2).workers == 2
    forced = plan_serving({"DECKCHAT_ENGINE": "extractive", "DECKCHAT_WORKERS": "3"}, cpus=8)
    assert forced.workers == 3 and "in-memory rate limits" in forced.warnings[0]
    assert plan_serving({"DECKCHAT_THREADS": "4", "DECKCHAT_GRACE_SECONDS": "12.5"}).grace_seconds == 12


def test_secret_key_rule():
    assert secret_key_problem("sqlite:////data/deckchat.db", key_from_env_or_config=False) is None
    assert secret_key_problem("postgresql+psycopg://db/deckchat", key_from_env_or_config=True) is None
    assert "DECKCHAT_SECRET_KEY is required" in secret_key_problem("postgresql+psycopg://db/x", False)


def test_serve_dry_run_prints_the_plan(runner, monkeypatch):
    monkeypatch.delenv("DECKCHAT_WORKERS", raising=False)
    result = runner.invoke("serve", "--dry-run", "--json", "--threads", "6", "--grace", "20",
                           "--port", "8123")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["threads"] == 6 and plan["grace_seconds"] == 20 and plan["bind"] == "127.0.0.1:8123"
    refused = runner.invoke("serve", "--dry-run", "--workers", "2")
    assert refused.exit_code == 0 and "in-memory rate limits" in refused.stderr  # allowed, with a warning


def test_serve_refuses_a_second_model_copy(runner, monkeypatch):
    monkeypatch.setenv("DECKCHAT_ENGINE", "hf")
    result = runner.invoke("serve", "--dry-run", "--workers", "2")
    assert result.exit_code != 0 and "one worker" in result.stderr


def test_backup_copies_the_live_sqlite_database(app, runner, owner, tmp_path):
    dest = tmp_path / "backup.db"
    result = runner.invoke("backup", str(dest), "--json")
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        assert result.exit_code != 0 and "pg_dump" in result.stderr
        return
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["bytes"] == dest.stat().st_size
    assert sqlite3.connect(dest).execute("SELECT email FROM users").fetchall() == [("owner@example.com",)]
    assert runner.invoke("backup", str(dest)).exit_code != 0  # never overwrites


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory):
    """A tiny random gpt2 model folder (the real from_pretrained path loads it)."""
    from deckchat.ml.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("serving-tiny") / "gpt2", "gpt2"))


def test_readiness_is_false_until_the_model_has_loaded(app_factory, tiny_causal, monkeypatch):
    from deckchat.ml import models
    from deckchat.ml.runtime import get_runtime

    gate, real_load = threading.Event(), models.load_model

    def held_load(*args, **kwargs):
        gate.wait(60)  # the test decides when loading may finish
        return real_load(*args, **kwargs)

    monkeypatch.setattr(models, "load_model", held_load)
    app = app_factory(ENGINE="hf", MODEL=tiny_causal, DTYPE="float32", DEVICE_MAP="")
    client = app.test_client()
    try:
        loading = client.get("/readyz")
        engine = loading.get_json()["checks"]["engine"]
        assert loading.status_code == 503 and engine["ready"] is False, engine
        assert client.get("/healthz").status_code == 200
        gate.set()
        deadline = time.monotonic() + 120
        while (response := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        engine = response.get_json()["checks"]["engine"]
        assert response.status_code == 200, engine
        assert engine["fallback"] is False and engine["error"] is None and engine["model"]
        assert engine["engine"] not in ("extractive",)
    finally:
        gate.set()
        get_runtime(app).close()


def test_a_model_that_cannot_load_is_reported(app_factory, tmp_path):
    from deckchat.ml.runtime import get_runtime

    app = app_factory(ENGINE="hf", MODEL=str(tmp_path / "no-such-model"))
    runtime = get_runtime(app)
    runtime.start(background=False)
    response = app.test_client().get("/readyz")
    body = response.get_json()
    # Still ready: slides and tracking work and the extractive engine answers; the fallback is reported.
    assert response.status_code == 200 and body["checks"]["engine"]["engine"] == "extractive"
    engine = body["checks"]["engine"]
    assert engine["fallback"] is True and "could not be loaded" in engine["error"]
    runtime.close()
