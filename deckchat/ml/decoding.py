"""Batched sampling for the slot runner: on the host after prefill, on the device (graph-safe) per decode step."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SamplingParams:
    """Per-row decoding settings the batched sampler understands."""

    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_new_tokens: int = 0


@torch.inference_mode()
def sample_batch(
    logits: torch.Tensor, params: list[SamplingParams], generated: list[int], eos_ids: list[int]
) -> list[int]:
    """Pick one token per row of `logits` (rows, vocab) under each row's settings; one device sync."""
    logits = logits.to(torch.float32, copy=True)  # (rows, vocab); the runner's output buffer stays untouched
    rows, vocab = logits.shape
    if eos_ids:
        early = [i for i, (p, n) in enumerate(zip(params, generated)) if n < p.min_new_tokens]
        if early:
            rows_t = torch.tensor(early, device=logits.device)[:, None]
            logits[rows_t, torch.tensor(eos_ids, device=logits.device)] = -float("inf")
    if not any(p.do_sample for p in params):
        return logits.argmax(dim=-1).tolist()
    first = params[0]
    if all(p == first for p in params):  # the common case: one setting for the whole batch, fewer kernels
        top_vals, top_idx = torch.topk(
            logits / max(first.temperature, 1e-5), min(vocab, first.top_k or vocab)
        )
        probs = torch.softmax(top_vals, dim=-1)  # (rows, k)
        if first.top_p < 1.0:
            probs = probs.masked_fill((probs.cumsum(-1) - probs) >= first.top_p, 0.0)
        return top_idx.gather(-1, torch.multinomial(probs, 1)).squeeze(-1).tolist()
    greedy = logits.argmax(dim=-1)  # (rows,)
    temps = torch.tensor([max(p.temperature, 1e-5) for p in params], device=logits.device)[:, None]
    k_max = min(vocab, max((p.top_k or vocab) for p in params))
    top_vals, top_idx = torch.topk(logits / temps, k_max, dim=-1)  # (rows, k_max), sorted descending
    ks = torch.tensor([min(p.top_k or vocab, k_max) for p in params], device=logits.device)[:, None]
    ranks = torch.arange(k_max, device=logits.device)[None, :]
    top_vals = top_vals.masked_fill(ranks >= ks, -float("inf"))
    probs = torch.softmax(top_vals, dim=-1)
    if any(p.top_p < 1.0 for p in params):
        top_ps = torch.tensor([p.top_p for p in params], device=logits.device)[:, None]
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        drop = (probs.cumsum(-1) - probs) >= top_ps
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    picked = top_idx.gather(-1, torch.multinomial(probs, 1)).squeeze(-1)  # (rows,)
    do_sample = torch.tensor([p.do_sample for p in params], device=logits.device)
    return torch.where(do_sample, picked, greedy).tolist()


TOP_K_MAX = 64  # the device sampler's top-k width; rows with no or a wider top-k sample on the host


def device_samplable(params: SamplingParams | None) -> bool:
    """Whether `DeviceSampler` can pick this row's tokens (greedy, or top-k of at most TOP_K_MAX)."""
    return params is None or not params.do_sample or 0 < params.top_k <= TOP_K_MAX


class DeviceSampler:
    """Per-slot decoding settings held on the device, and a sampler over them that a CUDA graph can capture.

    The rules of `sample_batch` (end-of-sequence blocked until min_new_tokens, temperature, top-k, top-p),
    with the exponential race (argmax of p / Exp(1)) in place of multinomial: the same distribution, no sync.
    """

    def __init__(self, slots: int, vocab: int, device: torch.device, eos_ids: list[int]):
        f32 = {"dtype": torch.float32, "device": device}
        i64 = {"dtype": torch.long, "device": device}
        self.k = min(TOP_K_MAX, vocab)
        self.temperature = torch.ones(slots, **f32)
        self.top_k = torch.full((slots,), self.k, **i64)
        self.top_p = torch.ones(slots, **f32)
        self.do_sample = torch.zeros(slots, dtype=torch.bool, device=device)
        self.eos_until = torch.zeros(slots, **i64)  # end-of-sequence is blocked below this input position
        self.live = torch.zeros(slots, dtype=torch.bool, device=device)  # rows holding a sequence
        eos = sorted({i for i in eos_ids if 0 <= i < vocab})
        self.has_eos = bool(eos)
        self.eos = torch.zeros(vocab, dtype=torch.bool, device=device)  # (vocab,)
        if eos:
            self.eos[torch.tensor(eos, device=device)] = True
        self._ranks = torch.arange(self.k, device=device)  # (k,)

    def load(self, params: list[SamplingParams | None], eos_until: list[int]) -> None:
        """Set the settings of rows 0..len(params)-1 (None: greedy) and mark the other rows idle."""
        pad = len(self.live) - len(params)
        rows = [p or SamplingParams(do_sample=False) for p in params]
        for dst, values, fill in (
            (self.temperature, [max(p.temperature, 1e-5) for p in rows], 1.0),
            (
                self.top_k,
                [min(p.top_k, self.k) if p.do_sample and p.top_k > 0 else self.k for p in rows],
                self.k,
            ),
            (self.top_p, [p.top_p for p in rows], 1.0),
            (self.do_sample, [p.do_sample for p in rows], False),
            (self.eos_until, list(eos_until), 0),
            (self.live, [True] * len(rows), False),
        ):
            dst.copy_(torch.tensor(values + [fill] * pad, dtype=dst.dtype))

    def pick(self, logits: torch.Tensor, pos: torch.Tensor, sample: bool) -> torch.Tensor:
        """The next token of each row of `logits` (n, vocab) whose input sat at `pos` (n,); no host sync.

        `sample=False` is the greedy-only variant: fewer kernels when no row samples.
        """
        n = logits.shape[0]
        x = logits.float()  # (n, vocab)
        if self.has_eos:
            x = x.masked_fill((pos < self.eos_until[:n])[:, None] & self.eos, -float("inf"))
        greedy = x.argmax(dim=-1)  # (n,)
        if not sample:
            return greedy
        top_vals, top_idx = torch.topk(x / self.temperature[:n, None], self.k, dim=-1)  # (n, k), descending
        top_vals = top_vals.masked_fill(self._ranks >= self.top_k[:n, None], -float("inf"))
        probs = torch.softmax(top_vals, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        probs = probs.masked_fill((probs.cumsum(-1) - probs) >= self.top_p[:n, None], 0.0)
        race = probs / torch.empty_like(probs).exponential_().clamp_min_(1e-30)
        picked = top_idx.gather(-1, race.argmax(dim=-1, keepdim=True)).squeeze(-1)  # (n,)
        return torch.where(self.do_sample[:n], picked, greedy)
