"""LocalEngine: one thread owns the in-process model and batches every waiting request (see engine.py)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from typing import Any

import torch

from .decoding import SamplingParams, sample_batch
from .detok import TextAssembler
from .engine import (
    Engine,
    EngineBusy,
    EngineDead,
    EngineError,
    GenerationRequest,
    GenerationResult,
    GenerationTimeout,
    Stream,
    _chat_text,
    _Seq,
    retry_after,
)
from .graphs import COMPILE_MODES
from .models import LoadedModel, get_preset
from .slot_setup import SlotSetup
from .slots import SlotRunner
from .waves import WaveRunner

log = logging.getLogger(__name__)
_MAX_FAILED_STEPS = 3  # consecutive failed model steps before the engine gives up (a broken device)


def _close_at_exit(ref: weakref.ref) -> None:
    engine = ref()
    if engine is not None:
        engine.close(2.0)


class LocalEngine(SlotSetup, Engine):
    """Serves one loaded model from a single engine thread; web threads only submit and read streams."""

    name = "local"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_batch: int = 16,
        max_queue: int = 64,
        timeout_s: float = 120.0,
        batching: str = "auto",
        max_len: int | None = None,
        cuda_graphs: bool = True,
        check: bool = True,
        batch_window_s: float = 0.02,
        compile: bool | str = "auto",
        compile_mode: str = "decode",
        compile_budget_s: float = 60.0,
    ):
        self.loaded, self.model_name = loaded, loaded.name
        self.max_batch, self.max_queue, self.timeout_s = max_batch, max_queue, timeout_s
        self.max_len = min(max_len or 2048, loaded.max_positions)
        self.batching, self.cuda_graphs, self.check = batching, cuda_graphs, check
        self.batch_window_s = batch_window_s
        # torch.compile of the small decode buckets, within compile_budget_s: "auto" compiles on CUDA with
        # graphs only, the long-lived serving case (on a CPU, or for a one-off engine, the compile time
        # buys little); a failure or a failed equivalence check falls back to the plain step.
        if compile not in (True, False, "auto", "on", "off"):
            raise ValueError("compile must be True, False, 'auto', 'on' or 'off'")
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"unknown compile mode {compile_mode!r}; choose from {', '.join(COMPILE_MODES)}")
        cuda = str(loaded.device).startswith("cuda")
        on = compile in (True, "on") or (compile == "auto" and cuda and cuda_graphs)
        self.compile, self.compile_mode, self.compile_budget_s = on, compile_mode, compile_budget_s
        self.mode = ""  # "slots" or "waves", chosen by the engine thread
        self.check_error: float | None = None
        self.graphs_error = ""
        self.compile_error = ""
        self._lock = threading.Condition()
        self._tok_lock = threading.Lock()
        self._waiting: deque[_Seq] = deque()
        self._slots: SlotRunner | None = None
        self._waves = WaveRunner(loaded.model, loaded.tokenizer, loaded.kind)
        self._dead: BaseException | None = None
        self._closing = False
        self._failed_steps = 0
        self._per_request_s = 5.0  # moving average, for Retry-After
        self._completed = 0
        self.ready = threading.Event()
        eos = loaded.model.generation_config.eos_token_id
        self._eos = sorted(
            {
                *(eos if isinstance(eos, list) else [eos] if eos is not None else []),
                *([loaded.tokenizer.eos_token_id] if loaded.tokenizer.eos_token_id is not None else []),
            }
        )
        self._thread = threading.Thread(target=self._run, name="deckchat-engine", daemon=True)
        self._thread.start()
        # A model call cut off at interpreter exit aborts the process ("terminate called ...").
        atexit.register(_close_at_exit, weakref.ref(self))

    # ---- web-thread side ----
    def alive(self) -> bool:
        """Whether the engine thread is serving."""
        return self._thread.is_alive() and self._dead is None

    def submit(self, request: GenerationRequest) -> Stream:
        """Queue a request; raises EngineBusy when the queue is full and EngineDead after a crash."""
        seq = self._prepare(request)
        with self._lock:
            if self._dead is not None or self._closing:
                raise EngineDead(f"the generation engine stopped: {self._dead or 'closed'}")
            if len(self._waiting) >= self.max_queue:
                raise EngineBusy(
                    retry_after=retry_after(len(self._waiting), self._per_request_s, self.max_batch)
                )
            self._waiting.append(seq)
            self._lock.notify()
        return seq.stream

    def _prepare(self, request: GenerationRequest) -> _Seq:
        """Tokenize and fit the prompt in the caller's thread, so the engine thread only generates."""
        preset = get_preset(request.preset)
        tok, kind = self.loaded.tokenizer, self.loaded.kind
        with self._tok_lock:  # fast tokenizers are not safe to call from several threads at once
            if request.prompt_ids is not None:
                ids = list(request.prompt_ids)
            elif request.messages and getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
                ids = tok(text, add_special_tokens=False)["input_ids"]
            else:
                ids = tok(_chat_text(request.messages) if request.messages else request.prompt)["input_ids"]
        max_new = request.max_new_tokens or preset.max_new_tokens
        if kind == "causal":
            max_new = max(1, min(max_new, self.max_len - 1))
            budget = self.max_len - max_new
        else:
            budget = self.loaded.max_positions
        # Keep the end of the prompt: the question and the "Answer:" cue sit there.
        trimmed = max(0, len(ids) - budget)
        ids = ids[trimmed:] or [tok.eos_token_id or 0]
        stop = tuple(request.stop) if request.stop is not None else preset.stop
        params = SamplingParams(
            preset.do_sample,
            preset.temperature,
            preset.top_k,
            preset.top_p,
            max_new if request.ignore_eos else preset.min_new_tokens,
        )
        deadline = time.perf_counter() + (request.timeout_s or self.timeout_s)
        return _Seq(
            request,
            Stream(request, self.alive),
            ids,
            trimmed,
            max_new,
            preset,
            TextAssembler(tok, stop, preset.clean_up_spaces),
            params,
            deadline,
        )

    def stats(self) -> dict[str, Any]:
        """Queue depth, active rows, batching mode and health."""
        return {
            "engine": self.name,
            "model": self.model_name,
            "alive": self.alive(),
            "mode": self.mode,
            "waiting": len(self._waiting),
            "active": len(self._slots.active) if self._slots else 0,
            "completed": self._completed,
            "max_batch": self.max_batch,
            "check_error": self.check_error,
            "cuda_graphs": self._slots.graph_sizes if self._slots else [],
            "graphs_error": self.graphs_error,
            "compiled": self._slots.compiled_sizes if self._slots else [],
            "compile_mode": self.compile_mode if self.compile else "",
            "compile_s": round(self._slots.compile_s, 2) if self._slots else 0.0,
            "compile_error": self.compile_error,
        }

    def close(self, timeout: float = 10.0) -> None:
        """Stop the engine thread; requests still waiting get EngineDead."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join(timeout)

    # ---- engine thread ----
    def _run(self) -> None:
        try:
            with torch.inference_mode():
                self._serve()
        except BaseException as exc:  # noqa: BLE001 - any crash must reach every waiting reader
            log.exception("generation engine died")
            self._abort(EngineDead(f"the generation engine stopped: {exc}"), exc)
        finally:
            self.ready.set()

    def _serve(self) -> None:
        self._setup()
        self.ready.set()
        while True:
            with self._lock:
                while not self._closing and not self._waiting and not self._busy():
                    self._lock.wait(0.25)
                if self._closing:
                    break
            self._iteration()
        self._abort(EngineDead("the generation engine was closed"))

    def _abort(self, error: EngineError, cause: BaseException | None = None) -> None:
        """Mark the engine dead and fail every request it holds."""
        with self._lock:
            self._dead = cause or error
            pending = list(self._waiting) + (list(self._slots.active) if self._slots else [])
            self._waiting.clear()
        for seq in pending:
            if not seq.done:
                seq.done = True
                seq.stream.fail(error)

    def _busy(self) -> bool:
        return bool(self._slots and self._slots.active)

    def _iteration(self) -> None:
        """One scheduling round: admit, prefill, decode (slots) or one whole wave."""
        self._expire_waiting()
        if self.mode == "slots":
            self._slot_round()
        else:
            self._wave_round()

    def _expire_waiting(self) -> None:
        with self._lock:
            keep = deque(s for s in self._waiting if not self._expired(s))
            self._waiting = keep

    def _expired(self, seq: _Seq) -> bool:
        """Finish the request if it was cancelled or is past its deadline; True when it is done."""
        if not seq.done:
            if seq.stream.cancelled:
                self._finish(seq, "cancelled")
            elif time.perf_counter() > seq.deadline:
                self._finish(seq, "timeout")
        return seq.done

    def _slot_round(self) -> None:
        runner = self._slots
        assert runner is not None
        new: list[_Seq] = []
        with self._lock:
            while self._waiting and len(new) < runner.free and self._waiting[0].preset.num_beams == 1:
                new.append(self._waiting.popleft())
            beam_next = bool(self._waiting) and self._waiting[0].preset.num_beams > 1
        for seq in list(runner.active):
            if self._expired(seq):
                runner.remove(seq)
        if new:
            self._model_step(new, lambda: self._sample_host(new, runner.prefill(new)))
        if runner.active:
            self._model_step(list(runner.active), self._decode_tokens)
        elif beam_next:  # beam search runs as a wave once the slots have drained
            self._wave_round()

    def _sample_host(self, seqs: list[_Seq], logits: torch.Tensor) -> list[int]:
        return sample_batch(logits, [s.params for s in seqs], [len(s.ids) for s in seqs], self._eos)

    def _decode_tokens(self) -> list[int]:
        """One decode step for every active sequence; sampling stays on the device where it can."""
        runner = self._slots
        assert runner is not None
        if runner.samples_on_device():
            return runner.step()
        seqs = list(runner.active)
        return self._sample_host(seqs, runner.decode())

    def _model_step(self, seqs: list[_Seq], forward: Any) -> None:
        """Run one forward for `seqs` that picks a token for each, and stream it; a failure fails only them."""
        runner = self._slots
        try:
            tokens = forward()  # one per sequence
            self._failed_steps = 0
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory on a large batch
            self._step_failed(seqs, exc)
            return
        for seq, token in zip(seqs, tokens):
            self._on_token(seq, token)
            if seq.done:
                runner.remove(seq)
            else:
                runner.advance(seq, token)

    def _step_failed(self, seqs: list[_Seq], exc: Exception) -> None:
        log.exception("generation step failed")
        self._failed_steps += 1
        for seq in seqs:
            if self._slots and seq.slot is not None:
                self._slots.remove(seq)
            if not seq.done:
                seq.done = True
                seq.stream.fail(EngineError(f"generation failed: {exc}"))
        if self._failed_steps >= _MAX_FAILED_STEPS:
            raise EngineDead(f"{self._failed_steps} generation steps failed in a row; last: {exc}")

    def _wave_round(self) -> None:
        with self._lock:
            if not self._waiting:
                return
            # Requests that arrive together reach the queue a few ms apart; a late one would otherwise
            # wait for the whole wave (about 4 s of TTFT for flan-t5-xl).
            end = time.perf_counter() + self.batch_window_s
            while len(self._waiting) < self.max_batch and (left := end - time.perf_counter()) > 0:
                self._lock.wait(left)
            head = self._waiting.popleft()
            key = (head.preset.name, head.request.ignore_eos)
            group = [head]
            for seq in list(self._waiting):
                if len(group) >= self.max_batch:
                    break
                if (seq.preset.name, seq.request.ignore_eos) == key:
                    group.append(seq)
                    self._waiting.remove(seq)
        kwargs = head.preset.generate_kwargs()
        if head.request.ignore_eos:
            kwargs["min_new_tokens"] = max(s.max_new_tokens for s in group)
        try:
            self._waves.run(group, kwargs, self._on_token, self._expired)
            self._failed_steps = 0
        except Exception as exc:  # noqa: BLE001
            self._step_failed([s for s in group if not s.done], exc)
        for seq in group:
            if not seq.done:
                self._finish(seq, "length" if len(seq.ids) >= seq.max_new_tokens else "stop")

    def _on_token(self, seq: _Seq, token: int) -> None:
        """Stream one generated token and finish the request on end-of-sequence, stop string or length."""
        if seq.first_token is None:
            seq.first_token = time.perf_counter()
        if token in self._eos and not seq.request.ignore_eos:
            self._finish(seq, "stop")
            return
        seq.ids.append(token)
        delta = seq.assembler.add(token)
        if delta:
            seq.stream.push(delta)
        if seq.assembler.stopped:
            self._finish(seq, "stop")
        elif len(seq.ids) >= seq.max_new_tokens:
            self._finish(seq, "length")

    def _finish(self, seq: _Seq, reason: str) -> None:
        seq.done = True
        if reason != "cancelled":
            tail = seq.assembler.finish()
            if tail:
                seq.stream.push(tail)
        now = time.perf_counter()
        result = GenerationResult(
            text=seq.assembler.sent,
            finish_reason=reason,
            prompt_tokens=len(seq.prompt_ids),
            completion_tokens=len(seq.ids),
            total_s=now - seq.submitted,
            trimmed_tokens=seq.trimmed,
            ttft_s=None if seq.first_token is None else seq.first_token - seq.submitted,
            engine=self.name,
            model=self.model_name,
            token_ids=list(seq.ids),
        )
        self._completed += 1
        self._per_request_s = 0.9 * self._per_request_s + 0.1 * result.total_s
        if reason == "timeout":
            seq.stream.fail(
                GenerationTimeout(f"no answer within {seq.deadline - seq.submitted:.0f} s", result)
            )
        else:
            seq.stream.finish(result)
