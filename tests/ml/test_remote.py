"""RemoteEngine against a real OpenAI-compatible server: `transformers serve` with tiny local models."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from deckchat.ml.engine import EngineBusy, EngineError, GenerationRequest
from deckchat.ml.remote import RemoteEngine

serving = pytest.importorskip("transformers.utils.import_utils")
if not serving.is_serve_available():
    pytest.skip("transformers[serving] is not installed", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    """`transformers serve` on this machine's loopback, serving any local model folder it is asked for."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("w")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/v1/models", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"transformers serve did not start; see {log.name}")
            time.sleep(0.5)
    yield f"{url}/v1"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_completions_stream_for_a_base_model(server, tiny_models):
    engine = RemoteEngine(server, tiny_models("gpt2"))
    assert engine.name == "remote" and engine.model_name == tiny_models("gpt2")
    request = GenerationRequest(
        prompt="Question: What is the revenue? Answer:", preset="greedy", max_new_tokens=12, stop=[]
    )
    stream = engine.submit(request)
    deltas = list(stream)
    result = stream.result()
    assert deltas and "".join(deltas) == result.text
    assert result.finish_reason == "length" and result.completion_tokens == 12 and result.prompt_tokens > 0
    assert result.ttft_s is not None and result.engine == "remote"
    assert engine.generate(request).text == result.text  # greedy: the same answer again


def test_chat_completions_stream_for_an_instruct_model(server, tiny_models):
    engine = RemoteEngine(server, tiny_models("llama"))
    stream = engine.submit(
        GenerationRequest(
            messages=[{"role": "user", "content": "What is the revenue?"}],
            preset="sampling",
            max_new_tokens=8,
        )
    )
    text = "".join(stream)
    result = stream.result()
    assert text == result.text and result.completion_tokens > 0 and result.prompt_tokens > 0


def test_stop_strings_are_cut_on_the_client(server, tiny_models):
    engine = RemoteEngine(server, tiny_models("gpt2"))
    prompt = "The investors asked about churn and margins"
    full = engine.generate(GenerationRequest(prompt=prompt, preset="greedy", max_new_tokens=16, stop=[]))
    stop = full.text[len(full.text) // 2 :][:2]
    cut = engine.generate(GenerationRequest(prompt=prompt, preset="greedy", max_new_tokens=16, stop=[stop]))
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.find(stop)].rstrip()


def test_too_many_requests_in_flight_is_busy(server, tiny_models):
    engine = RemoteEngine(server, tiny_models("gpt2"), max_concurrency=1)
    first = engine.submit(GenerationRequest(prompt="Hi", preset="greedy", max_new_tokens=50, stop=[]))
    with pytest.raises(EngineBusy):
        engine.submit(GenerationRequest(prompt="Hi", preset="greedy", max_new_tokens=5))
    first.cancel()
    assert first.result().finish_reason == "cancelled"
    assert engine.generate(GenerationRequest(prompt="Hi", preset="greedy", max_new_tokens=3, stop=[])).text


def test_server_503_becomes_busy_with_its_retry_after():
    class Overloaded(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            self.send_response(503)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "overloaded"}}')

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Overloaded)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        engine = RemoteEngine(f"http://127.0.0.1:{httpd.server_port}/v1", "any")
        with pytest.raises(EngineBusy) as info:
            engine.submit(GenerationRequest(prompt="Hi"))
        assert info.value.retry_after == 7
    finally:
        httpd.shutdown()


def test_unreachable_server_is_an_engine_error():
    engine = RemoteEngine(f"http://127.0.0.1:{_free_port()}/v1", "any", timeout_s=2)
    with pytest.raises(EngineError, match="unreachable"):
        engine.submit(GenerationRequest(prompt="Hi"))
