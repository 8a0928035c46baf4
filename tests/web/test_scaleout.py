"""Scale-out: two `deckchat serve` instances share PostgreSQL, Redis and one `transformers serve` engine.

Runs when DECKCHAT_TEST_DATABASE_URL names a PostgreSQL database (the suite's PostgreSQL pass); Redis comes
from DECKCHAT_TEST_REDIS_URL (default redis://127.0.0.1:6379/0). In CI a missing service fails the test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from clients import Visitor, read_sse, visit_key
from live import LiveServer, free_port, postgres_url

REDIS_URL = os.environ.get("DECKCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUESTION = "How long does it take to train a new item?"


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"scale-out test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def services():
    """PostgreSQL and Redis URLs, or skip (fail in CI) when either is missing."""
    url = postgres_url()
    if not url or not url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: set DECKCHAT_TEST_DATABASE_URL (the suite's PostgreSQL pass does)")
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable Redis
        _missing(f"Redis at {REDIS_URL} is not reachable: {exc}")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        _missing("`transformers serve` needs fastapi and uvicorn")
    return url, REDIS_URL


@pytest.fixture(scope="module")
def engine_server(tmp_path_factory):
    """`transformers serve` on a free loopback port with a tiny chat model; yields (base URL, model id)."""
    from deckchat.ml.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("scaleout-engine")
    model = str(build_tiny_model(root / "tiny-llama", "llama"))
    port = free_port()
    log = open(root / "transformers-serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "transformers.cli.transformers", "serve", model,
         "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "info"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "transformers-serve.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", model
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _instance(root: Path, name: str, shared: Path) -> Path:
    """An instance folder whose slide images and indexes live on storage shared by every host."""
    folder = root / name
    folder.mkdir()
    for sub in ("decks", "indexes"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub).symlink_to(shared / sub, target_is_directory=True)
    return folder


def _track(base: str, visit: str, view: str, slide: int, ms: int) -> int:
    body = json.dumps({"visit": visit, "view": view, "slide": slide, "visible_ms": ms}).encode()
    request = urllib.request.Request(f"{base}/api/track", data=body, headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return resp.status


def _ready(server: LiveServer) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(server.url + "/readyz", timeout=10) as resp:
                return json.loads(resp.read())
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{server.url} never became ready:\n{server.log()[-3000:]}")


@pytest.mark.slow
def test_two_instances_share_visits_limits_and_the_engine(tmp_path, services, engine_server, pitch_files):
    database, redis_url = services
    engine_url, model = engine_server
    env = {"DECKCHAT_ENGINE": "openai", "DECKCHAT_ENGINE_URL": engine_url, "DECKCHAT_MODEL": model,
           "DECKCHAT_RATELIMIT_STORAGE": redis_url, "DECKCHAT_UNLOCK_RATE_LIMIT": "3 per minute",
           "DECKCHAT_SECRET_KEY": "scale-out-shared-key"}
    shared = tmp_path / "shared"
    a = LiveServer(_instance(tmp_path, "a", shared), env, database_url=database,
                   serve_args=("--workers", "2"))
    b = LiveServer(_instance(tmp_path, "b", shared), env, database_url=database, reset_database=False)
    a.init()
    a.cli("user", "create", "owner@example.com", "--password", "password123")
    deck = a.cli("deck", "import", str(pitch_files["pdf"]), "--owner", "owner@example.com",
                 "--notes", str(pitch_files["notes"]), "--faq", str(pitch_files["faq"]))["deck_id"]
    locked = a.cli("deck", "share", str(deck), "--password", "open-sesame")["token"]
    guarded = a.cli("deck", "share", str(deck), "--password", "other-secret")["token"]
    with a, b:
        for server in (a, b):
            engine = _ready(server)["checks"]["engine"]
            assert engine["engine"] == "remote" and engine["remote"]["ok"], engine

        # Unlocked on A (which opens the visit), the same browser sees slides on B: one shared signing key.
        visitor = Visitor()
        visitor.get(f"{a.url}/s/{locked}")
        status, page = visitor.post(f"{a.url}/s/{locked}", data={"password": "open-sesame"})
        assert status == 200
        visit = visit_key(page)
        assert visitor.opener.open(f"{b.url}/s/{locked}/slides/2.png", timeout=30).status == 200
        [(visits,)] = a.query("SELECT COUNT(*) FROM visits")
        assert visits == 1

        # One visit, its reports spread over both instances: every report stored once, the largest kept.
        sent: list[int] = []

        def reporter(t: int) -> None:
            for i in range(20):
                base = (a, b)[(t + i) % 2].url
                sent.append(_track(base, visit, f"stay{t:02d}x{i // 4}", 1 + t % 5, 100 * (i % 4 + 1)))

        threads = [threading.Thread(target=reporter, args=(t,)) for t in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sent == [200] * 200
        [(rows, events, total_ms, visit_rows)] = a.query(
            "SELECT COUNT(*), SUM(events), SUM(visible_ms), COUNT(DISTINCT visit_id) FROM slide_views")
        assert (rows, events, visit_rows) == (50, 200, 1)
        assert total_ms == 50 * 400  # each stay's largest report, never summed twice
        assert b.cli("analytics", str(deck))["visits"] == 1

        # Chat through either instance reaches the one engine server.
        for server in (a, b):
            response = visitor.stream(f"{server.url}/s/{locked}/chat",
                                      {"question": QUESTION, "slide": 3, "visit": visit})
            assert response.status == 200, response.read()
            events = list(read_sse(response))
            assert events[-1][0] == "done", events[-3:]
        rows = a.query("SELECT engine, model, kind FROM chat_exchanges ORDER BY id")
        assert [(r.engine, r.model, r.kind) for r in rows] == [("remote", model, "model")] * 2

        # Password attempts count across instances (Redis): the fourth wrong one is refused on either.
        attempts = []
        for server in (a, b, a, b):
            guest = Visitor()
            guest.get(f"{server.url}/s/{guarded}")
            attempts.append(guest.post(f"{server.url}/s/{guarded}", data={"password": "wrong-guess"})[0])
        assert attempts == [401, 401, 401, 429]
