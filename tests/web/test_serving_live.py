"""`deckchat serve` for real: JSON logs, the model loading in the worker only, and graceful shutdown."""
from __future__ import annotations

import http.client
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clients import Visitor, read_sse, visit_key
from live import LiveServer, free_port

QUESTION = "How long does it take to train a new item?"
BEFORE, AFTER = ["alpha", "beta", "gamma"], ["delta", "epsilon", "zeta"]


class HeldEngine:
    """An OpenAI-compatible stub: each answer streams three words, then waits for `release` for the rest."""

    def __init__(self):
        self.release, self.streaming = threading.Event(), threading.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def _json(self, obj: dict) -> None:
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._json({"object": "list", "data": [{"id": "held", "object": "model"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                chat = self.path.endswith("/chat/completions")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()

                def send(word: str | None, finish: str | None = None) -> None:
                    choice = {"index": 0, "finish_reason": finish}
                    if chat:
                        choice["delta"] = {"content": word} if word else {}
                    else:
                        choice["text"] = word or ""
                    chunk = {"id": "x", "object": "chat.completion.chunk" if chat else "text_completion",
                             "created": 0, "model": "held", "choices": [choice]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()

                for word in BEFORE:
                    send(word + " ")
                engine.streaming.set()
                engine.release.wait(120)
                for word in AFTER:
                    send(word + " ")
                send(None, "stop")
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True

    def __enter__(self) -> HeldEngine:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _has_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def _get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_ready(server: LiveServer) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, body = _get(server.url + "/readyz")
        if status == 200:
            return body
        time.sleep(0.3)
    raise AssertionError(f"never ready: {body}\n{server.log()[-3000:]}")


def _prepare(server: LiveServer, files: dict, index: bool) -> str:
    """An owner, the pitch deck (indexed for chat when asked) and an open link; returns the token."""
    server.init()
    server.cli("user", "create", "owner@example.com", "--password", "password123")
    extra = () if index else ("--no-index",)
    deck = server.cli("deck", "import", str(files["pdf"]), "--owner", "owner@example.com",
                      "--notes", str(files["notes"]), "--faq", str(files["faq"]), *extra)
    return server.cli("deck", "share", str(deck["deck_id"]))["token"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc to see where torch is loaded")
def test_in_process_model_loads_in_the_worker_after_fork(tmp_path, pitch_files):
    from deckchat.ml.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny-gpt2", "gpt2")
    env = {"DECKCHAT_ENGINE": "hf", "DECKCHAT_MODEL": str(model), "DECKCHAT_DTYPE": "float32"}
    with LiveServer(tmp_path / "instance", env) as server:
        body = _wait_ready(server)
        engine = body["checks"]["engine"]
        assert engine["fallback"] is False and engine["engine"] != "extractive"
        [worker] = _children(server.proc.pid)
        assert _has_torch(worker) and not _has_torch(server.proc.pid)
        status, _ = _get(server.url + "/healthz", {"X-Request-ID": "probe-7"})
        assert status == 200
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert any(ln.get("request_id") == "probe-7" and ln.get("route") == "/healthz" for ln in lines)
    assert any(ln["msg"] == "starting" and ln.get("workers") == 1 for ln in lines)


@pytest.mark.slow
def test_sigterm_lets_a_streamed_answer_finish(tmp_path, pitch_files):
    with HeldEngine() as engine:
        env = {"DECKCHAT_ENGINE": "openai", "DECKCHAT_ENGINE_URL": engine.url, "DECKCHAT_MODEL": "held"}
        server = LiveServer(tmp_path / "instance", env, serve_args=("--grace", "60"))
        token = _prepare(server, pitch_files, index=True)
        with server:
            assert _wait_ready(server)["checks"]["engine"]["remote"]["ok"]
            visitor = Visitor()
            page = visitor.get(f"{server.url}/s/{token}")
            response = visitor.stream(f"{server.url}/s/{token}/chat",
                                      {"question": QUESTION, "slide": 3, "visit": visit_key(page)})
            assert response.status == 200, response.read()
            events = read_sse(response)
            first = next(events)
            assert first[0] == "delta"
            assert engine.streaming.wait(60)
            server.proc.send_signal(signal.SIGTERM)
            # The master closes its listening socket at once; new visitors go elsewhere.
            _wait_refused(server.url)
            engine.release.set()
            rest = list(events)
            assert server.proc.wait(timeout=60) == 0
        assert rest[-1][0] == "done", rest
        text = rest[-1][1]["text"]
        assert [w for w in BEFORE + AFTER if w in text] == BEFORE + AFTER
        [(kind, engine_name)] = server.query("SELECT kind, engine FROM chat_exchanges")
        assert kind == "model" and engine_name != "extractive"


@pytest.mark.slow
def test_sigterm_cuts_an_answer_that_outlasts_the_grace_period(tmp_path, pitch_files):
    with HeldEngine() as engine:
        env = {"DECKCHAT_ENGINE": "openai", "DECKCHAT_ENGINE_URL": engine.url, "DECKCHAT_MODEL": "held"}
        server = LiveServer(tmp_path / "instance", env, serve_args=("--grace", "1"))
        token = _prepare(server, pitch_files, index=True)
        with server:
            _wait_ready(server)
            visitor = Visitor()
            page = visitor.get(f"{server.url}/s/{token}")
            response = visitor.stream(f"{server.url}/s/{token}/chat",
                                      {"question": QUESTION, "slide": 3, "visit": visit_key(page)})
            events = read_sse(response)
            assert next(events)[0] == "delta" and engine.streaming.wait(60)
            server.proc.send_signal(signal.SIGTERM)
            # Never released: the grace period, not the answer, ends the worker.
            assert server.proc.wait(timeout=60) is not None
            try:
                rest = [event for event, _ in events]
            except (OSError, http.client.HTTPException):
                rest = []
        assert "done" not in rest


def _wait_refused(url: str) -> None:
    """Poll until connecting fails: the server has stopped accepting."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=5).close()
        except urllib.error.HTTPError:
            pass
        except OSError:
            return
        time.sleep(0.1)
    raise AssertionError("the server kept accepting connections after SIGTERM")
