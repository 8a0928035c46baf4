"""Compiled decode steps and the device sampler on tiny models: equal to plain generate, safe beside other
threads, a fallback when compiling fails, end-of-sequence and sampling settings followed on the device."""

from __future__ import annotations

import threading

import pytest
import torch
from clients import PROMPTS, plain_generate

from deckchat.ml.engine import GenerationRequest
from deckchat.ml.local import LocalEngine

pytestmark = pytest.mark.usefixtures("one_thread")


def test_compiled_decode_equals_plain_generate(engine_for, loaded):
    # aot_eager traces and compiles the step as inductor would, without minutes of C++ code generation.
    engine = engine_for("gpt2", max_batch=2, compile=True, compile_mode="aot_eager")
    stats = engine.stats()
    assert stats["compiled"] == [1, 2] and stats["compile_error"] == "" and engine.check_error < 1e-3
    alone = engine.generate(GenerationRequest(prompt=PROMPTS[3], preset="greedy", max_new_tokens=12, stop=[]))
    assert alone.token_ids == plain_generate(loaded("gpt2"), PROMPTS[3], 12)
    streams = [
        engine.submit(GenerationRequest(prompt=p, preset="greedy", max_new_tokens=12, stop=[]))
        for p in PROMPTS[:3]
    ]
    for prompt, stream in zip(PROMPTS, streams):
        assert stream.result().token_ids == plain_generate(loaded("gpt2"), prompt, 12)


def test_compiled_layers_serve_only_the_stepping_thread(engine_for, loaded, monkeypatch):
    # The engine patches the forward of the model's own layers during a compiled step; another thread
    # using the same model meanwhile (a plain generate) must run them eagerly, not the step's compiled code.
    engine = engine_for("gpt2", max_batch=1, compile=True, compile_mode="aot_eager")
    runner, calls = engine._slots, []
    compiled = runner._layer_fn
    monkeypatch.setattr(runner, "_layer_fn", lambda *a, **k: calls.append(1) or compiled(*a, **k))
    expected = plain_generate(loaded("gpt2"), PROMPTS[0], 8)
    inside, done = threading.Event(), threading.Event()

    def step():
        with runner._compiled_layers():
            inside.set()
            done.wait(60)

    holder = threading.Thread(target=step)
    holder.start()
    try:
        assert inside.wait(10)
        assert plain_generate(loaded("gpt2"), PROMPTS[0], 8) == expected
    finally:
        done.set()
        holder.join()
    assert calls == []


def test_compile_is_off_on_cpu_by_default_and_checked(engine_for, loaded):
    assert engine_for("gpt2", max_batch=2).stats()["compiled"] == []
    with pytest.raises(ValueError, match="compile mode"):
        LocalEngine(loaded("gpt2"), compile=True, compile_mode="fastest")


def test_a_failed_compile_falls_back_to_the_plain_step(engine_for, loaded, monkeypatch):
    from deckchat.ml import graphs

    def broken(gm, example_inputs):
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(graphs, "_compile_backend", lambda mode: broken)
    engine = engine_for("gpt2", max_batch=2, compile=True)
    stats = engine.stats()
    assert stats["mode"] == "slots" and stats["compiled"] == []
    assert "inductor exploded" in stats["compile_error"]
    result = engine.generate(GenerationRequest(prompt=PROMPTS[0], preset="greedy", max_new_tokens=8, stop=[]))
    assert result.token_ids == plain_generate(loaded("gpt2"), PROMPTS[0], 8)


def test_single_row_addmm_becomes_mm_plus_bias():
    from deckchat.ml.graphs import single_row_addmm_to_mm

    weight, bias = torch.randn(8, 12), torch.randn(12)
    counts = []

    def backend(gm, example_inputs):
        counts.append(single_row_addmm_to_mm(gm))
        assert all(node.target is not torch.addmm for node in gm.graph.nodes) or counts[-1] == 0
        return gm.forward

    def conv1d(x):
        return torch.addmm(bias, x.view(-1, 8), weight).relu()

    fn = torch.compile(conv1d, backend=backend, fullgraph=True, dynamic=False)
    for rows in (1, 3):  # only the single-row product becomes a reduction; wider ones stay GEMMs
        x = torch.randn(rows, 8)
        torch.testing.assert_close(fn(x), conv1d(x))
    assert counts == [1, 0]


class _Row:
    """A sequence as the slot runner sees it."""

    def __init__(self, prompt_ids, params):
        self.prompt_ids, self.params, self.slot, self.pos, self.last = prompt_ids, params, None, 0, 0


@pytest.mark.parametrize("min_new", [1, 2])
def test_device_sampler_blocks_eos_until_min_new_tokens(loaded, min_new):
    from deckchat.ml.decoding import SamplingParams
    from deckchat.ml.slots import SlotRunner

    lm = loaded("gpt2")
    prompt = lm.tokenizer(PROMPTS[0])["input_ids"]
    with torch.inference_mode():
        free = SlotRunner(lm.model, 1, 64)
        row = _Row(prompt, SamplingParams(do_sample=False))
        free.advance(row, int(free.prefill([row])[0].argmax()))
        second = free.step()[0]  # the greedy second token; now call it end-of-sequence
        runner = SlotRunner(lm.model, 1, 64, eos_ids=[second])
        row = _Row(prompt, SamplingParams(do_sample=False, min_new_tokens=min_new))
        runner.advance(row, int(runner.prefill([row])[0].argmax()))  # the engine samples token 1 itself
        picked = runner.step()[0]
    # Token 2 comes after one generated token: blocked while fewer than min_new_tokens came out.
    if min_new == 1:
        assert picked == second
    else:
        masked = runner.logits[0].float().clone()
        masked[second] = -float("inf")
        assert picked != second and picked == int(masked.argmax())


def test_device_sampler_follows_top_k_top_p_and_temperature():
    from deckchat.ml.decoding import DeviceSampler, SamplingParams

    torch.manual_seed(0)
    sampler = DeviceSampler(4, 10, torch.device("cpu"), eos_ids=[9])
    logits = torch.tensor([[0.0, 1.0, 3.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0]]).repeat(4, 1)
    sampler.load(
        [
            SamplingParams(do_sample=True, top_k=1),  # top-1 sampling is greedy
            SamplingParams(do_sample=True, top_k=2, temperature=1.0),  # only ids 2 and 3
            SamplingParams(do_sample=True, top_k=50, top_p=0.01),  # top-p keeps the best alone
            None,  # greedy
        ],
        eos_until=[0, 0, 0, 100],  # the last row is still below min_new_tokens: no end-of-sequence
    )
    logits[:3, 9] = -1.0  # eos only matters for the last row
    seen = set()
    for _ in range(200):
        picks = sampler.pick(logits, torch.zeros(4, dtype=torch.long), sample=True).tolist()
        assert picks[0] == 2 and picks[2] == 2 and picks[3] == 2
        seen.add(picks[1])
    assert seen == {2, 3}
    hot = DeviceSampler(1, 10, torch.device("cpu"), eos_ids=[])
    hot.load([SamplingParams(do_sample=True, top_k=10, temperature=100.0)], [0])
    spread = {int(hot.pick(logits[:1], torch.zeros(1, dtype=torch.long), True)) for _ in range(300)}
    assert len(spread) >= 8  # a high temperature flattens the distribution
