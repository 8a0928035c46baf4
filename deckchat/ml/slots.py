"""Continuous batching for causal models: a fixed array of KV-cache slots, one sequence per slot.

Each sequence owns a slot row of the cache and its own position, so a request can join or leave the
running batch between any two decode steps. The model's own forward does the work; only the cache
object and the attention mask are ours. On CUDA the decode step runs as a captured CUDA graph, over
decoder layers compiled with torch.compile where that is on (`graphs.py`). Sampling runs on the device
right after the step and writes the next step's inputs, so a steady decode step costs the host two graph
replays and one small copy back.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from .decoding import DeviceSampler, device_samplable
from .graphs import CompiledSteps, repeated_layers

# Architectures whose forward takes per-row position_ids and an additive 4D mask and applies no attention
# rule of its own on top; GPT-Neo's local layers slice a causal buffer by key length, so it is left out.
SLOT_ARCHS = {"gpt2", "gptj", "llama", "qwen2", "qwen3", "mistral", "phi3", "olmo2", "granite"}


def slots_supported(config: Any) -> bool:
    """Whether the slot runner may be tried for this model (the equivalence check still decides)."""
    if config.model_type not in SLOT_ARCHS or getattr(config, "is_encoder_decoder", False):
        return False
    sliding = getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)
    return not sliding and "sliding_attention" not in (getattr(config, "layer_types", None) or [])


class _SlotKV:
    """Duck-typed transformers Cache over the runner's slot buffers (keys/values: slots, heads, len, dim)."""

    is_compileable = False

    def __init__(self, runner: SlotRunner, rows: torch.Tensor | None, pos: torch.Tensor | None, length: int):
        self.runner, self.rows, self.pos, self.length = runner, rows, pos, length
        # Set by the runner before each compiled layer: that layer's buffers. The compiled code never
        # reads the layer index, so one compiled layer serves them all.
        self.layer_kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Store this step's keys/values (batch, heads, q, dim) and return what attention should read."""
        if self.layer_kv is not None:
            keys, values = self.layer_kv
        else:
            keys, values = self.runner.buffers(layer_idx, key, value)
        if self.rows is not None:  # prefill: whole prompts, starting at position 0 of their slots
            n = key.shape[2]
            keys[self.rows, :, :n] = key
            values[self.rows, :, :n] = value
            return key, value
        b = key.shape[0]
        # An index_put on the whole buffer, not a scatter into a slice of it: a compiled step then writes
        # the new row in place instead of copying the slice around it.
        rows = self.runner.rows[:b]
        keys[rows, :, self.pos] = key[:, :, 0]
        values[rows, :, self.pos] = value[:, :, 0]
        return keys[:b, :, : self.length], values[:b, :, : self.length]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Unused: the runner always passes position_ids."""
        return 0


class SlotRunner(CompiledSteps):
    """Owns the KV slots of one causal model; the engine thread is its only caller."""

    def __init__(
        self,
        model: Any,
        max_batch: int,
        max_len: int,
        cuda_graphs: bool = True,
        max_prefill_tokens: int = 8192,
        eos_ids: list[int] | tuple[int, ...] = (),
        compile_mode: str = "decode",
    ):
        self.model, self.max_batch, self.max_len = model, max_batch, max_len
        self.device = model.device
        self.dtype = next(model.parameters()).dtype
        self.active: list[Any] = []  # sequences in slot order: active[i].slot == i
        self.max_prefill_tokens = max_prefill_tokens
        self.compile_mode = compile_mode
        self.compile_s = 0.0
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x
        self._neg = torch.finfo(self.dtype).min
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}  # bucket -> graph, logits
        self._pick_graphs: dict[tuple[int, bool], torch.cuda.CUDAGraph] = {}  # (bucket, sample) -> graph
        self._compiled: set[int] = set()  # buckets whose decoder layers run compiled
        self._layers = repeated_layers(model)
        self._layer_fn: Callable | None = None  # the compiled forward of the layer class
        # The thread running a compiled step. The layers are the model's own modules, shared with every
        # other user of the model (a plain generate in a web or test thread): while a step runs, their
        # patched forward sends only this thread through the compiled code.
        self._step_thread: int | None = None
        self._kv: _SlotKV | None = None  # the cache object of the step in progress
        self._buckets: list[int] = []  # sizes with a static decode step, ascending
        self._ids = torch.zeros(max_batch, 1, dtype=torch.long, device=self.device)  # (slots, 1)
        self._pos = torch.zeros(max_batch, dtype=torch.long, device=self.device)  # (slots,)
        self._tokens = torch.zeros(max_batch, dtype=torch.long, device=self.device)  # (slots,) last picks
        on_gpu = self.device.type == "cuda"
        self._host_tokens = torch.zeros(max_batch, dtype=torch.long, pin_memory=on_gpu)  # (slots,)
        self._picked = torch.cuda.Event() if on_gpu else None
        self._arange = torch.arange(max_len, device=self.device)  # (len,)
        self.rows = torch.arange(max_batch, device=self.device)  # (slots,)
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        vocab = getattr(head, "out_features", None) or model.config.vocab_size
        self.sampler = DeviceSampler(max_batch, vocab, self.device, list(eos_ids))
        self.logits: torch.Tensor | None = None  # the last decode step's logits (active, vocab)
        self._out: torch.Tensor | None = None  # ... of every row it computed (bucket, vocab)
        self._sample = False  # whether any active row samples: picks the sampler variant
        self._dirty = True  # the device-side ids/positions/settings lag behind `active`

    @property
    def free(self) -> int:
        """Slots open for new sequences."""
        return self.max_batch - len(self.active)

    def buffers(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's cache buffers (slots, kv heads, max_len, head dim), allocated at first use."""
        while len(self._keys) <= layer:
            shape = (self.max_batch, key.shape[1], self.max_len, key.shape[3])
            self._keys.append(torch.zeros(shape, dtype=key.dtype, device=key.device))
            self._values.append(torch.zeros(shape, dtype=value.dtype, device=value.device))
        return self._keys[layer], self._values[layer]

    def _forward(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache: _SlotKV, keep: Any = 1
    ) -> torch.Tensor:
        out = self.model(
            input_ids=ids,
            position_ids=positions,
            attention_mask=mask,
            use_cache=True,
            logits_to_keep=keep,
            **{self._cache_kw: cache},
        )
        return out.logits

    @torch.inference_mode()
    def prefill(self, seqs: list[Any]) -> torch.Tensor:
        """Give each sequence a slot, run its prompt, and return next-token logits (len(seqs), vocab)."""
        if len(seqs) > self.free:
            raise ValueError("not enough free slots")
        self._dirty = True
        out: list[torch.Tensor] = []
        start = 0
        while start < len(seqs):  # chunks bound the activation memory of one prefill
            end = start + 1
            longest = len(seqs[start].prompt_ids)
            while (
                end < len(seqs)
                and max(longest, len(seqs[end].prompt_ids)) * (end + 1 - start) <= self.max_prefill_tokens
            ):
                longest = max(longest, len(seqs[end].prompt_ids))
                end += 1
            out.append(self._prefill_chunk(seqs[start:end]))
            start = end
        return torch.cat(out)

    def _prefill_chunk(self, seqs: list[Any]) -> torch.Tensor:
        lengths = [len(s.prompt_ids) for s in seqs]
        n = max(lengths)
        # Right padding: real tokens sit at 0..len-1 of their slot and never see the pads (causal mask).
        ids = torch.zeros(len(seqs), n, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : lengths[i]] = torch.tensor(s.prompt_ids)
            s.slot = len(self.active)
            s.pos = lengths[i]
            self.active.append(s)
        ids = ids.to(self.device)
        rows = torch.tensor([s.slot for s in seqs], device=self.device)
        positions = torch.arange(n, device=self.device)[None].expand(len(seqs), n)  # (b, n)
        causal = torch.ones(n, n, dtype=torch.bool, device=self.device).tril()
        mask = torch.zeros(n, n, dtype=self.dtype, device=self.device).masked_fill(~causal, self._neg)
        mask = mask[None, None].expand(len(seqs), 1, n, n)  # (b, 1, n, n)
        last = sorted({x - 1 for x in lengths})
        logits = self._forward(
            ids, positions, mask, _SlotKV(self, rows, None, n), keep=torch.tensor(last, device=self.device)
        )  # (b, len(last), vocab)
        pick = torch.tensor([last.index(x - 1) for x in lengths], device=self.device)
        return logits[torch.arange(len(seqs), device=self.device), pick]  # (b, vocab)


    def _decode_step(self, b: int, length: int) -> torch.Tensor:
        """Logits (b, vocab) for the inputs in slot rows 0..b-1, attending to the first `length` positions."""
        pos = self._pos[:b]
        visible = self._arange[:length][None, :] <= pos[:, None]  # (b, length)
        mask = torch.zeros(visible.shape, dtype=self.dtype, device=self.device).masked_fill(
            ~visible, self._neg
        )
        self._kv = _SlotKV(self, None, pos, length)
        logits = self._forward(self._ids[:b], pos[:, None], mask[:, None, None, :], self._kv)
        return logits[:, -1]  # (b, vocab)
    def _pick(self, n: int, sample: bool, logits: torch.Tensor) -> None:
        """Sample rows 0..n-1 on the device and make the picks the next step's inputs (graph-safe)."""
        tokens = self.sampler.pick(logits, self._pos[:n], sample)
        live = self.sampler.live[:n]
        self._tokens[:n] = tokens
        self._ids[:n, 0] = torch.where(live, tokens, 0)  # idle rows write harmless junk at position 0
        self._pos[:n] = torch.where(live, (self._pos[:n] + 1).clamp_(max=self.max_len - 1), 0)

    def _upload(self) -> None:
        """Write every slot's input token, position and decoding settings to the device."""
        rows, pad = self.active, self.max_batch - len(self.active)
        self._ids[:, 0].copy_(torch.tensor([s.last for s in rows] + [0] * pad))
        self._pos.copy_(torch.tensor([s.pos for s in rows] + [0] * pad))
        params = [getattr(s, "params", None) for s in rows]
        # A token sampled with its input at position p is the (p - prompt + 1)th of the completion.
        until = [len(s.prompt_ids) + (p.min_new_tokens if p else 0) - 1 for s, p in zip(rows, params)]
        self.sampler.load(params, until)
        self._sample = any(p is not None and p.do_sample for p in params)
        self._dirty = False

    def samples_on_device(self) -> bool:
        """Whether `step` can sample for every active sequence (else: `decode` and sample on the host)."""
        return all(device_samplable(getattr(s, "params", None)) for s in self.active)

    @torch.inference_mode()
    def decode(self) -> torch.Tensor:
        """One decode step for every active sequence; returns logits (active, vocab) in slot order."""
        b = len(self.active)
        if self._dirty:
            self._upload()
        n = next((k for k in self._buckets if k >= b), None)
        if n is not None and n in self._graphs:
            graph, logits = self._graphs[n]
            graph.replay()
        elif n is not None:
            logits = self._run_step(n, self.max_len)  # compiled, without graphs (CPU, or graphs off)
        else:
            # Eager: attend only to the longest live prefix, not the whole buffer; a multiple of 64 keeps
            # the mask aligned for the fused GPU attention kernels (the extra keys are masked).
            n, length = b, max(s.pos for s in self.active) + 1
            if self.device.type == "cuda":
                length = min(self.max_len, -(-length // 64) * 64)
            logits = self._run_step(b, length)
        for s in self.active:
            s.pos += 1
        self._dirty = True  # the device inputs are stale until `step` writes the picks there
        self._out, self.logits = logits, logits[:b]
        return self.logits

    @torch.inference_mode()
    def step(self) -> list[int]:
        """One decode step with sampling on the device; returns each active sequence's next token."""
        self.decode()
        n, b = self._out.shape[0], len(self.active)
        graph = self._pick_graphs.get((n, self._sample))
        if graph is not None and self._out is self._graphs[n][1]:
            graph.replay()
        else:
            self._pick(n, self._sample, self._out)
        if self._picked is not None:
            # The step's one sync, on an event: it lets go of the GIL, so stream readers run meanwhile.
            self._host_tokens[:b].copy_(self._tokens[:b], non_blocking=True)
            self._picked.record()
            self._picked.synchronize()
            tokens = self._host_tokens[:b].tolist()
        else:
            tokens = self._tokens[:b].tolist()
        for s, token in zip(self.active, tokens):
            s.last = token
        self._dirty = False
        return tokens

    def advance(self, seq: Any, token: int) -> None:
        """Record the sampled token that the next decode step feeds in."""
        if seq.last != token:
            seq.last = token
            self._dirty = True

    def remove(self, seq: Any) -> None:
        """Free the sequence's slot, moving the last active sequence into it to keep slots packed."""
        i, last = seq.slot, len(self.active) - 1
        mover = self.active[last]
        if i != last:
            n = mover.pos
            for buf in (*self._keys, *self._values):
                buf[i, :, :n] = buf[last, :, :n]
            mover.slot = i
            self.active[i] = mover
        self.active.pop()
        seq.slot = None
        self._dirty = True
