"""Padded batching through transformers' own `generate`: seq2seq models, beam search, other architectures.

A wave is a group of waiting requests with the same decoding settings, run as one left-padded batch
(causal) or one padded encoder batch (seq2seq). Rows leave the wave when they stop, are cancelled or time
out (per-row stopping criteria); requests that arrive meanwhile wait for the next wave.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer


class _RowStreamer(BaseStreamer):
    """Receives each step's tokens (batch,) from `generate` and hands them to the engine."""

    def __init__(self, on_step: Callable[[list[int]], None]):
        self.on_step, self.started = on_step, False

    def put(self, value: torch.Tensor) -> None:
        """First call: the prompt (ignored); then one token per row."""
        if not self.started:
            self.started = True
            return
        self.on_step(value.view(-1).tolist())

    def end(self) -> None:
        """Nothing to flush: the engine finishes rows itself."""


class _RowStop(StoppingCriteria):
    """Per-row stop flags owned by the engine (stop string, cancellation, timeout, length)."""

    def __init__(self, done: Callable[[], list[bool]], beams: int):
        self.done, self.beams = done, beams

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        flags = self.done()
        if self.beams > 1:  # beam search keeps rows together: stop only when every request is done
            return torch.full((input_ids.shape[0],), all(flags), dtype=torch.bool, device=input_ids.device)
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


class WaveRunner:
    """Runs one padded batch through `generate`, streaming tokens row by row when decoding allows."""

    def __init__(self, model: Any, tokenizer: Any, kind: str):
        self.model, self.tokenizer, self.kind = model, tokenizer, kind

    @torch.inference_mode()
    def run(
        self,
        seqs: list[Any],
        generate_kwargs: dict[str, Any],
        on_token: Callable[[Any, int], None],
        is_done: Callable[[Any], bool],
    ) -> None:
        """Generate for `seqs` (same settings); call on_token(seq, id) per new token until is_done(seq)."""
        side = "left" if self.kind == "causal" else "right"
        batch = self.tokenizer.pad(
            {"input_ids": [s.prompt_ids for s in seqs]}, padding=True, padding_side=side, return_tensors="pt"
        ).to(self.model.device)
        kwargs = dict(generate_kwargs)
        beams = kwargs.get("num_beams", 1)
        kwargs["max_new_tokens"] = max(s.max_new_tokens for s in seqs)
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)

        def step(tokens: list[int]) -> None:
            for s, tok in zip(seqs, tokens):
                if not is_done(s):
                    on_token(s, tok)

        stop = StoppingCriteriaList([_RowStop(lambda: [is_done(s) for s in seqs], beams)])
        streamer = _RowStreamer(step) if beams == 1 else None
        out = self.model.generate(**batch, **kwargs, stopping_criteria=stop, streamer=streamer)
        if streamer is None:  # beam search cannot stream: hand over each finished row at once
            start = batch["input_ids"].shape[1] if self.kind == "causal" else 1
            for s, row in zip(seqs, out[:, start:].tolist()):
                for tok in row:
                    if is_done(s):
                        break
                    on_token(s, tok)
