"""Model registry, generation presets and loading (dtype, device_map, 8-bit, dummy weights)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Architecture configs of the registry's models, so the `dummy` load format works with no model hub.
_GPT2_XL = dict(
    model_type="gpt2",
    vocab_size=50257,
    n_positions=1024,
    n_embd=1600,
    n_layer=48,
    n_head=25,
    bos_token_id=50256,
    eos_token_id=50256,
)
_GPT_NEO_27 = dict(
    model_type="gpt_neo",
    vocab_size=50257,
    max_position_embeddings=2048,
    hidden_size=2560,
    num_layers=32,
    num_heads=20,
    attention_types=[[["global", "local"], 16]],
    window_size=256,
    bos_token_id=50256,
    eos_token_id=50256,
)
_FLAN_T5_XL = dict(
    model_type="t5",
    vocab_size=32128,
    d_model=2048,
    d_kv=64,
    d_ff=5120,
    num_layers=24,
    num_decoder_layers=24,
    num_heads=32,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
)
_GPT_J_6B = dict(
    model_type="gptj",
    vocab_size=50400,
    n_positions=2048,
    n_embd=4096,
    n_layer=28,
    n_head=16,
    rotary_dim=64,
    bos_token_id=50256,
    eos_token_id=50256,
    tie_word_embeddings=False,
)
_QWEN25_05B = dict(
    model_type="qwen2",
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    bos_token_id=151643,
    eos_token_id=151645,
)
_SMOLLM2_17B = dict(
    model_type="llama",
    vocab_size=49152,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=24,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=8192,
    rope_theta=130000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
)


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: where the weights live and how the model is driven."""

    name: str  # short name used on the command line and in config
    hub_id: str  # hub id or local folder passed to from_pretrained
    kind: str = "causal"  # "causal" or "seq2seq"
    dtype: str = "float16"  # default dtype on a GPU; CPUs use float32
    chat: bool = False  # instruct model whose tokenizer carries a chat template
    config: dict = field(default_factory=dict, repr=False)  # architecture, for the dummy load format


REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("gpt2-xl", "gpt2-xl", config=_GPT2_XL),
        ModelSpec("gpt-neo-2.7b", "EleutherAI/gpt-neo-2.7B", config=_GPT_NEO_27),
        ModelSpec("flan-t5-xl", "google/flan-t5-xl", kind="seq2seq", config=_FLAN_T5_XL),
        ModelSpec("gpt-j-6b", "EleutherAI/gpt-j-6B", config=_GPT_J_6B),
        ModelSpec(
            "qwen2.5-0.5b-instruct",
            "Qwen/Qwen2.5-0.5B-Instruct",
            dtype="bfloat16",
            chat=True,
            config=_QWEN25_05B,
        ),
        ModelSpec(
            "smollm2-1.7b-instruct",
            "HuggingFaceTB/SmolLM2-1.7B-Instruct",
            dtype="bfloat16",
            chat=True,
            config=_SMOLLM2_17B,
        ),
    ]
}
_ALIASES = {spec.hub_id.lower(): name for name, spec in REGISTRY.items()}


@dataclass(frozen=True)
class GenerationPreset:
    """Decoding settings; `stop` strings end the answer and are cut from it."""

    name: str
    do_sample: bool = True
    max_new_tokens: int = 100
    min_new_tokens: int = 0
    num_beams: int = 1
    temperature: float = 1.0
    top_k: int = 50  # transformers' default for sampling
    top_p: float = 1.0
    renormalize_logits: bool = False
    stop: tuple[str, ...] = ()
    clean_up_spaces: bool = False

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for transformers' `generate`."""
        kw: dict[str, Any] = dict(
            do_sample=self.do_sample,
            max_new_tokens=self.max_new_tokens,
            num_beams=self.num_beams,
            renormalize_logits=self.renormalize_logits,
        )
        if self.min_new_tokens:
            kw["min_new_tokens"] = self.min_new_tokens
        if self.do_sample:
            kw.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        return kw


PRESETS: dict[str, GenerationPreset] = {
    p.name: p
    for p in [
        # The classic comparison: sample, stop at the next "Question:", return only the completion.
        GenerationPreset("sampling", min_new_tokens=2, stop=("Question:",), clean_up_spaces=True),
        GenerationPreset("beams", num_beams=2, temperature=0.9, renormalize_logits=True),
        # Deterministic decoding, for equivalence checks and tests.
        GenerationPreset("greedy", do_sample=False, stop=("Question:",), clean_up_spaces=True),
    ]
}


def get_preset(name: str) -> GenerationPreset:
    """The named generation preset, or a ValueError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


def resolve(name: str) -> ModelSpec:
    """A registry entry by short name or hub id; any other hub id or local folder gets a plain spec."""
    key = _ALIASES.get(name.lower(), name)
    if key in REGISTRY:
        return REGISTRY[key]
    return ModelSpec(name=name, hub_id=name, kind="", dtype="")


@dataclass
class LoadedModel:
    """A loaded model with its tokenizer and what loading it cost."""

    spec: ModelSpec
    model: Any
    tokenizer: Any
    kind: str  # "causal" or "seq2seq"
    device: str
    dtype: str
    load_format: str
    params: int
    weight_bytes: int
    device_bytes_after_load: int | None
    load_seconds: float
    chat: bool

    @property
    def name(self) -> str:
        """The model's short name (registry name, hub id or folder)."""
        return self.spec.name

    @property
    def max_positions(self) -> int:
        """Longest sequence the model accepts: prompt plus completion for causal models, input for seq2seq."""
        return max_input_length(self.model.config, self.tokenizer, self.kind)

    def info(self) -> dict[str, Any]:
        """The JSON object of `deckchat models info`."""
        arch = (getattr(self.model.config, "architectures", None) or [type(self.model).__name__])[0]
        mib = self.device_bytes_after_load
        return {
            "name": self.name,
            "architecture": arch,
            "model_type": self.model.config.model_type,
            "kind": self.kind,
            "params_millions": round(self.params / 1e6, 2),
            "dtype": self.dtype,
            "weights_mib": round(self.weight_bytes / 2**20, 1),
            "device": self.device,
            "device_mib_after_load": None if mib is None else round(mib / 2**20, 1),
            "load_format": self.load_format,
            "load_seconds": round(self.load_seconds, 2),
            "max_positions": self.max_positions,
            "chat": self.chat,
        }


def max_input_length(config: Any, tokenizer: Any, kind: str) -> int:
    """The model's maximum input length from its config, else the tokenizer's, else 512."""
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    # T5 has relative positions: its tokenizer states the length it was trained on.
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return 512


def _device_bytes(device: str) -> int:
    """Memory the process holds on `device`: CUDA allocations, else resident set size."""
    import gc  # noqa: PLC0415

    import torch  # noqa: PLC0415

    gc.collect()  # a model dropped just before must not count against the next one
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/statm") as f:  # Linux; other systems report nothing
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _load_tokenizer(spec: ModelSpec, path: str, config: Any, local_only: bool):
    """The model's tokenizer; dummy loads without a cached one fall back to a small local tokenizer."""
    from transformers import AutoTokenizer  # noqa: PLC0415

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    except (OSError, ValueError):
        if not spec.config:
            raise
    from .tiny import build_tokenizer  # noqa: PLC0415

    # Random weights make any tokenizer as good as another; only the ids must fit the vocabulary.
    return build_tokenizer(min(2048, config.vocab_size), seq2seq=spec.kind == "seq2seq", chat=spec.chat)


def load_model(
    name: str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    load_format: str = "auto",
    device_map: str | dict | None = None,
    quantization: str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a registry model, hub id or local folder; `load_format="dummy"` gives random weights."""
    import torch  # noqa: PLC0415
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM  # noqa: PLC0415

    spec = resolve(name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype in (None, "auto"):
        dtype = (spec.dtype or "float16") if device.startswith("cuda") else "float32"
    torch_dtype = getattr(torch, dtype)
    if load_format not in ("auto", "dummy"):
        raise ValueError("load_format must be 'auto' or 'dummy'")
    path = spec.hub_id
    if load_format == "dummy":
        try:  # a cached or local config wins; the hub is not asked (random weights need no download)
            config = AutoConfig.from_pretrained(
                path, trust_remote_code=trust_remote_code, local_files_only=True
            )
        except (OSError, ValueError):
            if not spec.config:
                raise ValueError(
                    f"no config for {name!r}: not in the registry and not found locally"
                ) from None
            extra = dict(spec.config)
            config = AutoConfig.for_model(extra.pop("model_type"), **extra)
    else:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    kind = spec.kind or ("seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal")
    spec = spec if spec.kind else ModelSpec(spec.name, spec.hub_id, kind, dtype)
    if getattr(config, "activation_function", None) == "gelu_new":
        # The same tanh approximation in one fused kernel instead of six elementwise ones.
        config.activation_function = "gelu_pytorch_tanh"
    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    before = _device_bytes(device)
    started = time.perf_counter()
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_format == "dummy":
        # Built on the target device: random init of billions of weights on a CPU takes minutes.
        with torch.device(device):
            model = auto.from_config(config, **kwargs)
    else:
        if quantization == "8bit":
            kwargs["quantization_config"] = _eight_bit_config(device)
            device_map = device_map or "auto"
        elif quantization:
            raise ValueError("quantization must be '8bit' or None")
        if device_map is not None:
            kwargs["device_map"] = device_map  # accelerate places (and may offload) the layers
        model = auto.from_pretrained(path, config=config, **kwargs)
        if device_map is None:
            model.to(device)
    model.eval()
    tokenizer = _load_tokenizer(spec, path, config, local_only=load_format == "dummy")
    if kind == "causal":
        tokenizer.padding_side = "left"  # batched causal generation continues from the right edge
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    seen: set[int] = set()
    params = weight_bytes = 0
    for p in model.parameters():
        if id(p) not in seen:  # tied weights count once
            seen.add(id(p))
            params += p.numel()
            weight_bytes += p.numel() * p.element_size()
    after = _device_bytes(device)
    return LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        device=str(model.device),
        dtype=dtype,
        load_format=load_format,
        params=params,
        weight_bytes=weight_bytes,
        device_bytes_after_load=after - before,
        load_seconds=time.perf_counter() - started,
        chat=spec.chat or bool(getattr(tokenizer, "chat_template", None)),
    )


def _eight_bit_config(device: str):
    """bitsandbytes 8-bit settings, refused where bitsandbytes or a GPU is missing."""
    import importlib.util  # noqa: PLC0415

    from transformers import BitsAndBytesConfig  # noqa: PLC0415

    if not device.startswith("cuda") or importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("8-bit loading needs bitsandbytes and a CUDA GPU")
    return BitsAndBytesConfig(load_in_8bit=True)


def list_models() -> list[dict[str, Any]]:
    """The registry as JSON-ready dicts."""
    return [{k: v for k, v in asdict(s).items() if k != "config"} for s in REGISTRY.values()]


def is_local_folder(name: str) -> bool:
    """Whether `name` points at a model folder on this machine."""
    return Path(name).is_dir()
