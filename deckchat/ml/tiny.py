"""Tiny random-weight models saved as ordinary model folders, for tests and CPU benchmarks.

No model hub is reachable here, so tests build a small config, random weights and a byte-level BPE
tokenizer trained on a built-in corpus, save them with `save_pretrained`, and load them back through the
same `from_pretrained` path that real models take.
"""

from __future__ import annotations

from pathlib import Path

# A few sentences in the shape of the deck Q&A prompts, so the tokenizer learns useful merges.
_CORPUS = """\
Question: What does the company do? Answer: We build software that helps teams share pitch decks.
Question: How big is the market? Answer: The market is worth twelve billion dollars and growing fast.
Question: Who are the founders? Answer: The founders met at university and worked on search engines.
Question: What is the revenue? Answer: Revenue grew from one million to four million in two years.
Context: Slide 3 shows the product. The team has ten engineers. The FAQ explains pricing per seat.
The investors asked about churn, margins, hiring plans and the runway of eighteen months.
Speaker notes: mention the pilot customers, the waiting list and the partnership with a bank.
"""

SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>", "<s>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
ARCHITECTURES = ("gpt2", "gptj", "gpt_neo", "llama", "qwen2", "t5")


def build_tokenizer(vocab_size: int = 384, seq2seq: bool = False, chat: bool = False):
    """Train a byte-level BPE tokenizer on the built-in corpus and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    if seq2seq:
        # T5 encoders expect the input to end with </s>.
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>",
        model_max_length=512 if seq2seq else 1024,
        clean_up_tokenization_spaces=False,  # TextAssembler does the classic cleanup itself
    )
    if chat:
        wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def tiny_config(
    arch: str, vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, max_positions: int = 1024
):
    """A small config of the given architecture whose special-token ids match `build_tokenizer`."""
    from transformers import AutoConfig  # noqa: PLC0415

    ids = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 3}
    if arch == "gpt2":
        return AutoConfig.for_model(
            "gpt2",
            vocab_size=vocab_size,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=max_positions,
            **ids,
        )
    if arch == "gptj":
        return AutoConfig.for_model(
            "gptj",
            vocab_size=vocab_size,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=max_positions,
            rotary_dim=hidden // heads // 2,
            **ids,
        )
    if arch == "gpt_neo":
        # window_size is below the prompt lengths tests use, so local attention really matters.
        return AutoConfig.for_model(
            "gpt_neo",
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            attention_types=[[["global", "local"], layers // 2]],
            window_size=16,
            max_position_embeddings=max_positions,
            **ids,
        )
    if arch in ("llama", "qwen2"):
        return AutoConfig.for_model(
            arch,
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=max_positions,
            tie_word_embeddings=True,
            **ids,
        )
    if arch == "t5":
        return AutoConfig.for_model(
            "t5",
            vocab_size=vocab_size,
            d_model=hidden,
            d_ff=hidden * 2,
            d_kv=hidden // heads,
            num_layers=layers,
            num_heads=heads,
            decoder_start_token_id=0,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
            pad_token_id=0,
            eos_token_id=1,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")


def build_tiny_model(
    folder: str | Path,
    arch: str = "gpt2",
    *,
    chat: bool | None = None,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    vocab_size: int = 384,
) -> Path:
    """Save a tiny random model of `arch` with its tokenizer into `folder` and return the folder."""
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, GenerationConfig  # noqa: PLC0415

    folder = Path(folder)
    seq2seq = arch == "t5"
    chat = arch in ("llama", "qwen2") if chat is None else chat
    tokenizer = build_tokenizer(vocab_size, seq2seq=seq2seq, chat=chat)
    config = tiny_config(arch, len(tokenizer), hidden, layers, heads)
    torch.manual_seed(seed)
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_config(config)
    # Random weights give nearly uniform logits; scaling the output layer makes greedy choices clear-cut
    # so that batched and unbatched runs pick the same tokens.
    with torch.no_grad():
        out = model.get_output_embeddings()
        if out is not None and out.weight is not model.get_input_embeddings().weight:
            out.weight.mul_(8.0)
        if seq2seq:  # T5 ties output and input embeddings; random ones make <pad> win every step
            model.get_input_embeddings().weight[0].fill_(0.0)
    model.generation_config = GenerationConfig(
        pad_token_id=0, eos_token_id=1, bos_token_id=3, decoder_start_token_id=0 if seq2seq else None
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
