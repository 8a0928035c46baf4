"""The engine thread's start: slots or waves, then compilation and CUDA graphs where they pay, each checked.

Mixed into LocalEngine (local.py), whose options (batching, max_batch, max_len, cuda_graphs, check, compile,
compile_mode, compile_budget_s) it reads and whose report (mode, check_error, compile_error, graphs_error) it
writes. Slot batching is used only where an equivalence check against a plain forward passes; a compiled or
graphed decode step only where it agrees too, else the plain step goes on.
"""

from __future__ import annotations

import logging

import torch

from .graphs import equivalence_error
from .slots import SlotRunner, slots_supported

log = logging.getLogger(__name__)


class SlotSetup:
    """Chooses and prepares the engine's batching on the engine thread (see the module docstring)."""

    def _setup(self) -> None:
        """Choose slots or waves; slots only where the equivalence check against a plain forward passes."""
        model = self.loaded.model
        want = self.batching
        if (
            self.loaded.kind != "causal"
            or want == "waves"
            or (want == "auto" and not slots_supported(model.config))
        ):
            self.mode = "waves"
            return
        runner = SlotRunner(
            model,
            self.max_batch,
            self.max_len,
            cuda_graphs=self.cuda_graphs,
            eos_ids=self._eos,
            compile_mode=self.compile_mode,
        )
        vocab = min(model.config.vocab_size, len(self.loaded.tokenizer))
        gen = torch.Generator().manual_seed(0)
        lengths = [37, 5] + [3 + (11 * i) % 43 for i in range(2, self.max_batch)]
        lengths = [max(1, min(n, self.max_len - 8)) for n in lengths[: self.max_batch]]
        prompts = [torch.randint(4, vocab, (n,), generator=gen).tolist() for n in lengths]
        limit = 1e-3 if next(model.parameters()).dtype == torch.float32 else 0.1
        self.check_error = equivalence_error(runner, prompts[:2])  # eager decode; also allocates the cache
        self._eager_error = self.check_error
        if self.check and self.check_error > limit and want == "auto":
            log.warning("slot batching disagrees with plain forward (%.3g); using waves", self.check_error)
            self.mode = "waves"
            return
        buckets = [b for b in (1, 2, 4, 8, 16, 32, 64) if b < self.max_batch] + [self.max_batch]
        if self.compile:
            try:
                runner.compile(buckets, self.compile_budget_s)
                if not runner.use_graphs:  # the compiled steps run as they are: check them now
                    self._verify(runner, prompts, limit, "compiled decode")
            except Exception as exc:  # noqa: BLE001 - the plain step still works
                log.warning("torch.compile disabled: %s", exc, exc_info=True)
                self.compile_error = f"{type(exc).__name__}: {exc}"[:500]
                runner.drop_compiled()
        if runner.use_graphs:
            try:
                self._capture(runner, buckets, prompts, limit)
            except Exception as exc:  # noqa: BLE001
                if not runner.compiled_sizes:
                    raise
                # Compiled graphs failed to capture or to agree: plain graphs may still do.
                log.warning("compiled CUDA graphs disabled: %s", exc, exc_info=True)
                self.compile_error = f"{type(exc).__name__}: {exc}"[:500]
                runner.drop_graphs(disable=False)
                runner.drop_compiled()
                self._capture(runner, buckets, prompts, limit)
        self._slots, self.mode = runner, "slots"

    def _capture(self, runner: SlotRunner, buckets: list[int], prompts: list[list[int]], limit: float):
        """Capture the decode graphs and check them; a plain-graph failure leaves eager decoding."""
        try:
            runner.capture_graphs(buckets)
            self._verify(runner, prompts, limit, "graph decode")
        except Exception as exc:  # noqa: BLE001 - eager decoding still works
            if runner.compiled_sizes:
                raise
            log.warning("CUDA graphs disabled: %s", exc)
            self.graphs_error = str(exc)
            runner.drop_graphs()

    def _verify(self, runner: SlotRunner, prompts: list[list[int]], limit: float, what: str) -> None:
        """Check 2 rows and each compiled batch size against plain forwards; raise if they disagree."""
        worst = self._eager_error
        for n in sorted({2, *runner.compiled_sizes}):
            if n <= len(prompts):
                worst = max(worst, equivalence_error(runner, prompts[:n]))
        if self.check and worst > limit:
            raise RuntimeError(f"{what} disagrees with plain forward ({worst:.3g})")
        self.check_error = worst
