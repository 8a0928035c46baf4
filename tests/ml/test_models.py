"""Model registry, presets and loading, on tiny models saved to disk and loaded back."""

from __future__ import annotations

import json

import pytest
import torch

from deckchat.ml import models
from deckchat.ml.detok import TextAssembler, clean_up_spaces


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine wait on each other for every small op
    yield
    torch.set_num_threads(before)


def test_registry_has_the_classic_four_and_an_instruct_model():
    names = {m["name"] for m in models.list_models()}
    assert {"gpt2-xl", "gpt-neo-2.7b", "flan-t5-xl", "gpt-j-6b"} <= names
    assert any(m["chat"] for m in models.list_models())
    assert models.resolve("EleutherAI/gpt-j-6B").name == "gpt-j-6b"
    assert models.resolve("some/other-model").hub_id == "some/other-model"


def test_presets_match_the_classic_comparison():
    sampling = models.get_preset("sampling").generate_kwargs()
    assert sampling["do_sample"] and sampling["max_new_tokens"] == 100 and sampling["min_new_tokens"] == 2
    assert models.get_preset("sampling").stop == ("Question:",)
    beams = models.get_preset("beams").generate_kwargs()
    assert beams["num_beams"] == 2 and beams["do_sample"] and beams["temperature"] == 0.9
    assert beams["renormalize_logits"] and beams["max_new_tokens"] == 100
    with pytest.raises(ValueError, match="unknown preset"):
        models.get_preset("nope")


@pytest.mark.parametrize("arch,kind", [("gpt2", "causal"), ("t5", "seq2seq"), ("llama", "causal")])
def test_load_from_folder_reports_size(tiny_models, arch, kind):
    loaded = models.load_model(tiny_models(arch), device="cpu")
    info = loaded.info()
    assert loaded.kind == kind and info["kind"] == kind
    assert info["params_millions"] > 0 and info["weights_mib"] > 0 and info["dtype"] == "float32"
    assert info["device"] == "cpu" and info["device_mib_after_load"] is not None
    assert loaded.weight_bytes == sum(p.numel() * 4 for p in loaded.model.parameters())
    assert info["chat"] == (arch == "llama")
    if kind == "causal":
        assert loaded.tokenizer.padding_side == "left"
    json.dumps(info)


def test_dummy_load_of_a_registry_architecture_needs_no_hub(monkeypatch):
    small = dict(models._GPT2_XL, n_layer=2, n_embd=64, n_head=4)
    monkeypatch.setitem(models.REGISTRY, "gpt2-xl", models.ModelSpec("gpt2-xl", "gpt2-xl", config=small))
    loaded = models.load_model("gpt2-xl", load_format="dummy", device="cpu")
    assert loaded.load_format == "dummy" and loaded.model.config.n_layer == 2
    assert loaded.model.config.vocab_size == 50257 and loaded.max_positions == 1024
    assert loaded.tokenizer("Question: hi")["input_ids"]


def test_max_input_length_falls_back_to_the_tokenizer():
    class Config:
        pass

    class Tok:
        model_max_length = 512

    assert models.max_input_length(Config(), Tok(), "seq2seq") == 512


def test_eight_bit_is_refused_without_a_gpu(tiny_models):
    with pytest.raises(ValueError, match="8-bit"):
        models.load_model(tiny_models("gpt2"), device="cpu", quantization="8bit")


def test_text_assembler_cuts_stop_strings_across_tokens(tiny_models):
    tok = models.load_model(tiny_models("gpt2"), device="cpu").tokenizer
    ids = tok("The team has ten engineers. Question: what", add_special_tokens=False)["input_ids"]
    asm = TextAssembler(tok, stop=("Question:",), clean_up=True)
    deltas = [asm.add(i) for i in ids]
    deltas.append(asm.finish())
    assert asm.stopped and "".join(deltas) == asm.sent == "The team has ten engineers."
    assert clean_up_spaces("Hello , world . It 's") == "Hello, world. It's"
