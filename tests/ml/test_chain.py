"""The chain on real tiny models (causal and seq2seq) through the real loading path, and its policies."""
from __future__ import annotations

import pytest

from deckchat.domain.content import DeckContent, FaqEntry, SlideContent
from deckchat.ml.chain import DeckChain
from deckchat.ml.engine import create_engine
from deckchat.ml.index import build_index
from deckchat.ml.policy import match_faq, match_guardrail
from deckchat.ml.runtime import Runtime, profile_of

CONTENT = DeckContent(
    7, "Acme", 1,
    slides=[SlideContent(1, "Acme", "Warehouse robots", "We founded Acme in 2021."),
            SlideContent(2, "Traction", "12 customers", "Revenue is 2.1M ARR growing 9% a month. " * 20),
            SlideContent(3, "Team", "Founders", "The team has ten engineers from robotics labs.")],
    faq=[FaqEntry("How much have you raised so far?", "A 1.5M seed round.")],
    examples=[FaqEntry("What do you do?", "We build warehouse robots.")],
)


@pytest.fixture(scope="module")
def index_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("indexes")
    build_index(CONTENT, root)
    return root


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_chain_fits_and_streams_on_tiny_models(tiny_models, index_root, arch):
    engine = create_engine("local", tiny_models(arch), device="cpu", max_len=256)
    try:
        profile = profile_of(engine)
        assert profile.seq2seq == (arch == "t5")
        chain = DeckChain(engine, profile, index_root, answer_tokens=20, preset="greedy")
        history = [("What is the revenue?", "Revenue is 2.1M ARR. " * 10)] * 4
        plan = chain.plan(CONTENT, "How fast is revenue growing?", history=history)
        assert plan.kind == "model"
        budget = profile.max_input if profile.seq2seq else profile.max_input - 20
        assert profile.count_tokens(plan.prompt.text) <= budget
        assert plan.prompt.dropped_history > 0 and plan.prompt.text.rstrip().endswith("growing?\nAnswer:")
        holder: dict = {}
        deltas = list(chain.stream(plan, holder))
        answer = holder["answer"]
        assert answer.text == "".join(deltas).strip()
        assert answer.completion_tokens and answer.engine == "local" and answer.ttft_ms is not None
    finally:
        engine.close()


def test_chat_model_gets_messages(tiny_models, index_root):
    engine = create_engine("local", tiny_models("llama"), device="cpu", max_len=512)
    try:
        profile = profile_of(engine)
        assert profile.chat
        chain = DeckChain(engine, profile, index_root, answer_tokens=8, preset="greedy")
        plan = chain.plan(CONTENT, "How many engineers are on the team?")
        assert plan.prompt.messages[0]["role"] == "system" and plan.prompt.messages[-1]["role"] == "user"
        assert [m["content"] for m in plan.prompt.messages[1:3]] == ["What do you do?", "We build warehouse robots."]
        answer = chain.ask(CONTENT, "How many engineers are on the team?")
        assert answer.kind == "model" and answer.completion_tokens
    finally:
        engine.close()


def test_faq_and_guardrail_matching():
    faq = [("How much have you raised so far?", "A 1.5M seed.")]
    assert match_faq("how much have you raised so far", faq).answer == "A 1.5M seed."
    assert match_faq("How much money have you raised so far??", faq) is not None
    assert match_faq("Who are your competitors?", faq) is None
    rails = [("valuation", "Not over chat."), ("other investors", "Ask me in person.")]
    assert match_guardrail("What's the valuation?", rails) == ("valuation", "Not over chat.")
    assert match_guardrail("Which other investors are in the round?", rails)[0] == "other investors"
    assert match_guardrail("How big is the team?", rails) is None


def test_runtime_falls_back_to_extractive_when_the_model_cannot_load(tmp_path):
    runtime = Runtime({"ENGINE": "hf", "MODEL": str(tmp_path / "no-such-model")})
    assert runtime.state()["ready"] is False
    runtime.start(background=False)
    state = runtime.state()
    assert state["ready"] and state["fallback"] and state["engine"] == "extractive"
    assert "could not be loaded" in state["error"]
    with pytest.raises(ValueError):
        Runtime({"ENGINE": "gpt-5-api"})


def test_runtime_loads_a_local_model(tiny_models):
    runtime = Runtime({"ENGINE": "hf", "MODEL": tiny_models("gpt2")})
    runtime.start(background=False)
    try:
        state = runtime.state()
        assert state == {"ready": True, "engine": "local", "model": tiny_models("gpt2"), "error": None,
                         "fallback": False}
    finally:
        runtime.close()
