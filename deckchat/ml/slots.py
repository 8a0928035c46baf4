"""Continuous batching for causal models: a fixed array of KV-cache slots, one sequence per slot.

Each sequence owns a slot row of the cache and its own position, so a request can join or leave the
running batch between any two decode steps. The model's own forward does the work; only the cache
object and the attention mask are ours. On CUDA the decode step is captured once per batch-size bucket
as a CUDA graph (static shapes, no launch overhead), which is what brings gpt2-xl near the bandwidth floor.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

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

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Store this step's keys/values (batch, heads, q, dim) and return what attention should read."""
        keys, values = self.runner.buffers(layer_idx, key, value)
        if self.rows is not None:  # prefill: whole prompts, starting at position 0 of their slots
            n = key.shape[2]
            keys[self.rows, :, :n] = key
            values[self.rows, :, :n] = value
            return key, value
        b = key.shape[0]
        k_view, v_view = keys[:b, :, : self.length], values[:b, :, : self.length]
        index = self.pos.view(b, 1, 1, 1).expand(b, key.shape[1], 1, key.shape[3])
        k_view.scatter_(2, index, key)
        v_view.scatter_(2, index, value)
        return k_view, v_view

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Unused: the runner always passes position_ids."""
        return 0


class SlotRunner:
    """Owns the KV slots of one causal model; the engine thread is its only caller."""

    def __init__(
        self,
        model: Any,
        max_batch: int,
        max_len: int,
        cuda_graphs: bool = True,
        max_prefill_tokens: int = 8192,
    ):
        self.model, self.max_batch, self.max_len = model, max_batch, max_len
        self.device = model.device
        self.dtype = next(model.parameters()).dtype
        self.active: list[Any] = []  # sequences in slot order: active[i].slot == i
        self.max_prefill_tokens = max_prefill_tokens
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x
        self._neg = torch.finfo(self.dtype).min
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._ids = torch.zeros(max_batch, 1, dtype=torch.long, device=self.device)  # (slots, 1)
        self._pos = torch.zeros(max_batch, dtype=torch.long, device=self.device)  # (slots,)
        self._arange = torch.arange(max_len, device=self.device)  # (len,)

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
        last = sorted(set(x - 1 for x in lengths))
        logits = self._forward(
            ids, positions, mask, _SlotKV(self, rows, None, n), keep=torch.tensor(last, device=self.device)
        )  # (b, len(last), vocab)
        pick = torch.tensor([last.index(x - 1) for x in lengths], device=self.device)
        return logits[torch.arange(len(seqs), device=self.device), pick]  # (b, vocab)

    def _decode_step(self, b: int, length: int) -> torch.Tensor:
        config = self.model.config
        if self.device.type == "cpu" and config._attn_implementation == "sdpa":
            # One query row per sequence: two small matmuls beat the CPU flash kernel with a mask.
            config._attn_implementation = "eager"
            try:
                return self._decode_step(b, length)
            finally:
                config._attn_implementation = "sdpa"
        pos = self._pos[:b]
        visible = self._arange[:length][None, :] <= pos[:, None]  # (b, length)
        mask = torch.zeros(visible.shape, dtype=self.dtype, device=self.device).masked_fill(
            ~visible, self._neg
        )
        logits = self._forward(
            self._ids[:b], pos[:, None], mask[:, None, None, :], _SlotKV(self, None, pos, length)
        )
        return logits[:, -1]  # (b, vocab)

    @torch.inference_mode()
    def decode(self) -> torch.Tensor:
        """One decode step for every active sequence; returns logits (active, vocab) in slot order."""
        b = len(self.active)
        self._ids[:b, 0] = torch.tensor([s.last for s in self.active]).to(self.device, non_blocking=True)
        self._pos[:b] = torch.tensor([s.pos for s in self.active]).to(self.device, non_blocking=True)
        bucket = next((k for k in sorted(self._graphs) if k >= b), None)
        if bucket is not None:
            self._ids[b:bucket].zero_()  # idle rows write harmless junk at position 0 of free slots
            self._pos[b:bucket].zero_()
            graph, logits = self._graphs[bucket]
            graph.replay()
            logits = logits[:b]
        else:
            # Eager: attend only to the longest live prefix, not the whole buffer; a multiple of 64 keeps
            # the mask aligned for the fused GPU attention kernels (the extra keys are masked).
            length = max(s.pos for s in self.active) + 1
            if self.device.type == "cuda":
                length = min(self.max_len, -(-length // 64) * 64)
            logits = self._decode_step(b, length)
        for s in self.active:
            s.pos += 1
        return logits

    def advance(self, seq: Any, token: int) -> None:
        """Record the sampled token that the next decode step feeds in."""
        seq.last = token

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

    @property
    def graph_sizes(self) -> list[int]:
        """Batch sizes with a captured decode graph."""
        return list(self._graphs)

    def drop_graphs(self) -> None:
        """Forget captured graphs (after a failed capture) and decode eagerly."""
        self._graphs.clear()
        self.use_graphs = False
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    @torch.inference_mode()
    def capture_graphs(self, buckets: list[int]) -> None:
        """Record the decode step as one CUDA graph per batch size in `buckets` (largest first)."""
        if not self.use_graphs or not self._keys:
            return
        self._pos.zero_()
        self._ids.zero_()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for b in buckets:
                for _ in range(2):
                    self._decode_step(b, self.max_len)
        torch.cuda.current_stream().wait_stream(stream)
        pool = None
        for b in sorted(buckets, reverse=True):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                logits = self._decode_step(b, self.max_len)
            pool = graph.pool()
            self._graphs[b] = (graph, logits)
        torch.cuda.synchronize()


class _Probe:
    """A stand-in sequence for the equivalence check."""

    def __init__(self, prompt_ids: list[int]):
        self.prompt_ids, self.slot, self.pos, self.last = prompt_ids, None, 0, 0


@torch.inference_mode()
def equivalence_error(runner: SlotRunner, prompts: list[list[int]], steps: int = 4) -> float:
    """Largest gap between slot-path logits and a plain forward over the same tokens, scaled by logit size."""
    probes = [_Probe(p) for p in prompts]
    first = runner.prefill(probes)  # (len(prompts), vocab)
    got = [[row] for row in first]
    for probe, row in zip(probes, first):
        runner.advance(probe, int(row.argmax()))
    tokens = [[p.last] for p in probes]
    for _ in range(steps):
        logits = runner.decode()
        for i, probe in enumerate(probes):
            got[i].append(logits[i].clone())  # a graph's output buffer is overwritten by the next replay
            runner.advance(probe, int(logits[i].argmax()))
            tokens[i].append(probe.last)
    for probe in probes:
        runner.remove(probe)
    worst = 0.0
    for prompt, rows, toks in zip(prompts, got, tokens):
        full = torch.tensor([prompt + toks[:-1]], device=runner.device)
        ref = runner.model(input_ids=full).logits[0, len(prompt) - 1 :].float()  # (steps + 1, vocab)
        err = (torch.stack(rows).float() - ref).abs().max() / (1.0 + ref.abs().max())
        worst = max(worst, float(err))
    return worst
