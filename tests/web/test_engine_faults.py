"""The engine crashing mid-answer: the investor gets a clear error, the exchange is kept, the viewer works."""
from __future__ import annotations

import json
import re

import pytest
from clients import sse_events

from deckchat.domain import sharing
from deckchat.extensions import db
from deckchat.ml.indexing import reindex
from deckchat.ml.runtime import get_runtime
from deckchat.models import ChatExchange, Deck


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from deckchat.ml.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "gpt2", "gpt2"))


def test_engine_crash_mid_answer(app_factory, owner_deck_factory, tiny_gpt2, monkeypatch):
    app, deck_id = owner_deck_factory(app_factory(ENGINE="hf", MODEL=tiny_gpt2))
    runtime = get_runtime(app)
    runtime.start(background=False)
    engine, _ = runtime.get()
    assert engine.name == "local"
    model = engine.loaded.model
    real_forward = model.forward
    calls = {"n": 0}

    def crashing_forward(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:  # the prompt and a few tokens go through, then the device fails
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", crashing_forward)
    try:
        with app.app_context():
            reindex(deck_id, app.instance_path)
            token = sharing.create_link(db.session.get(Deck, deck_id)).token
        client = app.test_client()
        visit = re.search(rb'data-visit="([^"]+)"', client.get(f"/s/{token}").data).group(1).decode()
        response = client.post(f"/s/{token}/chat", json={"question": "How long does training a new item take?",
                                                         "visit": visit})
        if response.status_code == 503:  # the engine died before the first token: a clear refusal
            assert "unavailable" in response.get_json()["error"]
        else:
            events = sse_events(response.data)
            assert events[-1][0] == "error" and "interrupted" in events[-1][1]["message"]
            with app.app_context():
                row = db.session.get(ChatExchange, events[-1][1]["exchange"])
                assert row.kind == "error" and row.question.startswith("How long")
        assert calls["n"] > 3
        assert client.get(f"/s/{token}/slides/2.png").status_code == 200  # the viewer keeps working
        assert client.post("/api/track", data=json.dumps(
            {"visit": visit, "view": "after-crash", "slide": 2, "visible_ms": 500}),
            content_type="text/plain").status_code == 200
    finally:
        runtime.close()
