"""The generation engine on tiny models: batching equals plain generate, streams, stops, limits, failures."""

from __future__ import annotations

import json
import threading
import time

import pytest
from clients import PROMPTS, plain_generate

from deckchat.ml.engine import (
    EngineBusy,
    EngineDead,
    EngineError,
    GenerationRequest,
    GenerationTimeout,
    create_engine,
)
from deckchat.ml.extractive import NO_ANSWER, ExtractiveEngine

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "arch,mode",
    [("gpt2", "slots"), ("gptj", "slots"), ("llama", "slots"), ("gpt_neo", "waves"), ("t5", "waves")],
)
def test_concurrent_greedy_equals_plain_generate(engine_for, loaded, arch, mode):
    engine = engine_for(arch, max_batch=4)
    assert engine.mode == mode
    if mode == "slots":
        assert engine.check_error < 1e-3
    streams = [
        engine.submit(GenerationRequest(prompt=p, preset="greedy", max_new_tokens=12, stop=[]))
        for p in PROMPTS
    ]
    for prompt, stream in zip(PROMPTS, streams):
        result = stream.result()
        assert result.token_ids == plain_generate(loaded(arch), prompt, 12)
        assert result.engine == "local" and result.model == engine.model_name
        assert result.ttft_s is not None and result.prompt_tokens > 0


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_streaming_equals_non_streaming(engine_for, arch):
    engine = engine_for(arch, max_batch=4)
    request = GenerationRequest(prompt=PROMPTS[0], preset="greedy", max_new_tokens=20, stop=[])
    stream = engine.submit(request)
    deltas = list(stream)
    assert "".join(deltas) == stream.result().text
    assert engine.generate(request).text == stream.result().text
    sampled = engine.submit(GenerationRequest(prompt=PROMPTS[1], preset="sampling", max_new_tokens=20))
    assert "".join(sampled) == sampled.result().text


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_stop_sequence_cuts_the_answer(engine_for, arch):
    engine = engine_for(arch, max_batch=2)
    full = engine.generate(GenerationRequest(prompt=PROMPTS[1], preset="greedy", max_new_tokens=24, stop=[]))
    assert full.finish_reason == "length" and len(full.text) > 6
    stop = full.text[len(full.text) // 2 :][:3]
    cut = engine.generate(
        GenerationRequest(prompt=PROMPTS[1], preset="greedy", max_new_tokens=24, stop=[stop])
    )
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)].rstrip()
    assert stop not in cut.text


def test_presets_run_through_the_engine(engine_for):
    engine = engine_for("gpt2", max_batch=4)
    streams = [
        engine.submit(GenerationRequest(prompt=p, preset=preset, max_new_tokens=16))
        for p in PROMPTS[:2]
        for preset in ("sampling", "beams")
    ]
    results = [s.result() for s in streams]
    assert all(r.completion_tokens <= 16 and r.finish_reason in ("stop", "length") for r in results)
    assert all("Question:" not in r.text for r in results[::2])


def test_chat_messages_use_the_template(engine_for, loaded):
    engine = engine_for("llama", max_batch=2)
    messages = [{"role": "user", "content": "What is the revenue?"}]
    result = engine.generate(GenerationRequest(messages=messages, preset="greedy", max_new_tokens=5))
    tok = loaded("llama").tokenizer
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert result.prompt_tokens == len(tok(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_long_prompts_are_trimmed_from_the_left(engine_for, arch):
    engine = engine_for(arch, max_batch=2, max_len=64)
    result = engine.generate(GenerationRequest(prompt="pitch deck " * 400, preset="greedy", max_new_tokens=8))
    assert result.trimmed_tokens > 0
    if arch == "gpt2":
        assert result.prompt_tokens + 8 <= 64
    else:
        assert result.prompt_tokens <= 512


def _long(preset="greedy", **kw):
    return GenerationRequest(
        prompt=PROMPTS[0], preset=preset, max_new_tokens=1000, ignore_eos=True, stop=[], **kw
    )


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_cancellation_frees_the_slot(engine_for, arch):
    engine = engine_for(arch, max_batch=1, max_len=1024)
    first = engine.submit(_long())
    waiting = engine.submit(GenerationRequest(prompt=PROMPTS[2], preset="greedy", max_new_tokens=4))
    next(iter(first), None)
    first.cancel()
    assert first.result().finish_reason == "cancelled"
    assert first.result().completion_tokens < 1000
    assert waiting.result().completion_tokens <= 4
    assert engine.stats()["active"] == 0 and engine.alive()


def test_context_manager_cancels_an_abandoned_stream(engine_for):
    engine = engine_for("gpt2", max_batch=1, max_len=1024)
    with engine.submit(_long()) as stream:
        next(iter(stream), None)
    assert stream.cancelled
    assert (
        engine.generate(GenerationRequest(prompt="Hi", preset="greedy", max_new_tokens=3)).completion_tokens
        <= 3
    )


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_timeout_ends_the_request_with_partial_text(engine_for, arch):
    engine = engine_for(arch, max_batch=2, max_len=1024)
    stream = engine.submit(_long(timeout_s=0.3))
    with pytest.raises(GenerationTimeout) as info:
        list(stream)
    assert info.value.result.finish_reason == "timeout"
    assert 0 < info.value.result.completion_tokens < 1000
    assert engine.alive()


def test_busy_queue_refuses_with_retry_after(engine_for):
    engine = engine_for("gpt2", max_batch=1, max_queue=1, max_len=1024)
    running = engine.submit(_long())
    next(iter(running))  # admitted: the queue is empty again
    queued = engine.submit(_long())
    with pytest.raises(EngineBusy) as info:
        engine.submit(_long())
    assert info.value.retry_after >= 1 and "busy" in str(info.value)
    running.cancel()
    queued.cancel()
    assert queued.result().finish_reason == "cancelled"


def test_engine_death_fails_every_waiting_request(engine_for):
    engine = engine_for("gpt2", max_batch=1)

    def crash():
        raise RuntimeError("device lost")

    with engine._lock:  # re-entrant: queue three requests before the engine thread looks again
        streams = [engine.submit(_long()) for _ in range(3)]
        engine._iteration = crash
    for stream in streams:
        with pytest.raises(EngineDead, match="device lost"):
            stream.result()
    with pytest.raises(EngineDead):
        engine.submit(_long())
    assert not engine.alive() and engine.stats()["alive"] is False


def test_a_failed_step_fails_only_its_requests(engine_for, monkeypatch):
    engine = engine_for("gpt2", max_batch=2)
    real = engine._slots.decode
    monkeypatch.setattr(engine._slots, "decode", lambda: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with pytest.raises(EngineError, match="generation failed"):
        engine.generate(GenerationRequest(prompt="Hi", preset="greedy", max_new_tokens=5))
    monkeypatch.setattr(engine._slots, "decode", real)
    assert engine.generate(
        GenerationRequest(prompt="Hi", preset="greedy", max_new_tokens=3)
    ).completion_tokens
    assert engine.alive()


def test_readers_never_hang_when_the_thread_vanishes(engine_for):
    engine = engine_for("gpt2", max_batch=1)
    # As if the thread had been killed without cleaning up: it produces nothing more and fails nobody.
    stalled = threading.Event()
    engine._iteration = lambda: stalled.wait(30)
    stream = engine.submit(_long())
    engine._dead = RuntimeError("gone")
    done = threading.Event()

    def read():
        with pytest.raises(EngineError):
            list(stream)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert done.wait(10)
    finally:
        stalled.set()


def test_extractive_engine_quotes_the_best_passages():
    engine = create_engine("extractive")
    assert isinstance(engine, ExtractiveEngine) and engine.name == "extractive"
    passages = [
        ("faq:pricing", "Pricing is per seat. Teams pay monthly.", 0.4),
        ("slide:3", "Revenue grew to four million. The team has ten engineers. We are hiring.", 0.9),
    ]
    request = GenerationRequest(question="How big is the team?", passages=passages)
    stream = engine.submit(request)
    text = "".join(stream)
    assert text == stream.result().text == engine.generate(request).text
    # Prose from the best passage's best sentences; sources are cited beside the answer, not in it.
    assert text == "The team has ten engineers." and "[" not in text
    assert engine.generate(GenerationRequest(question="Anything?")).text == NO_ANSWER


def test_extractive_engine_quotes_no_fragments_and_code_only_when_asked_about_it():
    engine = ExtractiveEngine()
    passages = [
        ("slide:15", "Styling text\nfont-size: 1.5em;\nEm sizes scale with the parent element's font.\n1.", 0.5),
        ("slide:3", "We are a team of 12 engineers.\nfont-size: 3em;", 0.4),
    ]
    # "1." and the CSS lines are not prose: a question about the team quotes the team sentence only.
    assert engine.answer("How big is the team?", passages) == "We are a team of 12 engineers."
    # Nothing shares a word with the question: the best passage's first prose sentence stands alone.
    assert engine.answer("Quick question 1?", passages) == "Em sizes scale with the parent element's font."
    # A question about the code itself gets the code, with its own punctuation.
    assert engine.answer("How do I set the font size?", passages).startswith("font-size: 1.5em; Em sizes")


def test_cli_models_list_info_and_generate(runner, tiny_models):
    listed = runner.invoke("models", "list", "--json")
    assert listed.exit_code == 0 and "gpt2-xl" in {m["name"] for m in json.loads(listed.stdout)["models"]}
    info = runner.invoke("models", "info", tiny_models("gpt2"), "--device", "cpu", "--json")
    assert info.exit_code == 0, info.stderr
    data = json.loads(info.stdout)
    assert {
        "name",
        "architecture",
        "params_millions",
        "dtype",
        "weights_mib",
        "device",
        "device_mib_after_load",
    } <= set(data)
    out = runner.invoke(
        "generate",
        "--model",
        tiny_models("gpt2"),
        "--preset",
        "greedy",
        "--max-new-tokens",
        "5",
        "--device",
        "cpu",
        "Question: hi? Answer:",
        "--json",
    )
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["completion_tokens"] <= 5
    missing = runner.invoke("models", "info", "/nonexistent/model-folder", "--json")
    assert missing.exit_code != 0 and missing.stderr.startswith("error:")


def test_generate_waits_at_most_its_timeout(engine_for):
    engine = engine_for("gpt2", max_batch=1, max_len=1024)
    started = time.perf_counter()
    with pytest.raises(GenerationTimeout):
        engine.generate(_long(timeout_s=0.2))
    assert time.perf_counter() - started < 30
