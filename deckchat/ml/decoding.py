"""Batched sampling for the slot runner: one device sync per step for the whole batch."""

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
