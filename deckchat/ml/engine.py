"""The generation engine: the only owner of the in-process model.

Web threads call `submit(request)` and read their own `Stream` of text deltas. One engine thread batches
whatever is waiting: causal models of a verified architecture run continuous batching over KV-cache slots
(`slots.py`, CUDA graphs on GPUs); seq2seq models, beam search and other architectures run padded waves
through `generate` (`waves.py`). The queue is bounded (EngineBusy with retry_after), each request has a
deadline, a cancelled stream frees its slot at the next step, and if the thread dies every waiting
request gets an error instead of hanging.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


class EngineError(RuntimeError):
    """Generation failed; the message is safe to show."""


class EngineBusy(EngineError):
    """The queue is full: answer HTTP 503 with `Retry-After: retry_after`."""

    def __init__(
        self, message: str = "busy: too many questions at once, try again shortly", retry_after: int = 5
    ):
        super().__init__(message)
        self.retry_after = retry_after


class EngineDead(EngineError):
    """The engine stopped (crashed or closed); no request will be served."""


class GenerationTimeout(EngineError):
    """The request ran past its deadline; `result` holds what was generated until then."""

    def __init__(self, message: str, result: GenerationResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class GenerationRequest:
    """One question for an engine: a prompt (or chat messages, or token ids) and how to decode it."""

    prompt: str = ""
    messages: list[dict[str, str]] | None = None  # chat models: rendered with the tokenizer's template
    prompt_ids: list[int] | None = None  # benchmarks: exact token ids
    preset: str = "sampling"
    max_new_tokens: int | None = None  # None: the preset's
    stop: list[str] | None = None  # None: the preset's
    timeout_s: float | None = None  # None: the engine's default
    ignore_eos: bool = False  # benchmarks: always generate max_new_tokens
    question: str = ""  # extractive engine: the question...
    passages: list[tuple[str, str, float]] = field(default_factory=list)  # ...and (source, text, score)


@dataclass
class GenerationResult:
    """What a finished request produced; `text` equals the concatenated stream deltas."""

    text: str
    finish_reason: str  # "stop", "length", "cancelled" or "timeout"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None  # submit to first generated token
    total_s: float = 0.0
    trimmed_tokens: int = 0  # prompt tokens dropped from the left to fit the model
    engine: str = ""
    model: str = ""
    token_ids: list[int] = field(default_factory=list, repr=False)


class Stream:
    """One request's token stream: iterate for text deltas, then `result()`; `cancel()` frees the slot."""

    def __init__(self, request: GenerationRequest, alive: Callable[[], bool] | None = None):
        self.request = request
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._alive = alive
        self._cancel = threading.Event()
        self._result: GenerationResult | None = None
        self._error: BaseException | None = None
        self._closed = False

    # Producer side (the engine thread).
    def push(self, delta: str) -> None:
        """Queue a text delta for the reader."""
        self._items.put(("delta", delta))

    def finish(self, result: GenerationResult) -> None:
        """End the stream with a result."""
        self._items.put(("done", result))

    def fail(self, error: BaseException) -> None:
        """End the stream with an error that the reader will raise."""
        self._items.put(("error", error))

    # Reader side (a web thread).
    def cancel(self) -> None:
        """Ask the engine to stop this request (the client went away)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel()` was called."""
        return self._cancel.is_set()

    def __iter__(self) -> Iterator[str]:
        while not self._closed:
            try:
                kind, value = self._items.get(timeout=0.5)
            except queue.Empty:
                if self._alive is not None and not self._alive():
                    kind, value = "error", EngineDead("the generation engine stopped")
                else:
                    continue
            if kind == "delta":
                yield value
                continue
            self._closed = True
            if kind == "done":
                self._result = value
            else:
                self._error = value
        if self._error is not None:
            raise self._error

    def result(self) -> GenerationResult:
        """Wait for the end and return the result (raises the stream's error, if any)."""
        for _ in self:
            pass
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._closed:
            self.cancel()


class Engine(ABC):
    """What the chat chain needs from any engine: submit a request, read its stream."""

    name: str = "engine"
    model_name: str = ""

    @abstractmethod
    def submit(self, request: GenerationRequest) -> Stream:
        """Queue a request and return its stream; raises EngineBusy or EngineDead at once."""

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Submit and wait for the whole answer."""
        return self.submit(request).result()

    def stats(self) -> dict[str, Any]:
        """Engine state for health checks and logs."""
        return {"engine": self.name, "model": self.model_name, "alive": True}

    def close(self) -> None:
        """Stop serving; pending requests get EngineDead."""


class _Seq:
    """Engine-side state of one request."""

    def __init__(
        self,
        request: GenerationRequest,
        stream: Stream,
        prompt_ids: list[int],
        trimmed: int,
        max_new_tokens: int,
        preset: Any,
        assembler: Any,
        params: Any,
        deadline: float,
    ):
        self.request, self.stream, self.preset = request, stream, preset
        self.prompt_ids, self.trimmed, self.max_new_tokens = prompt_ids, trimmed, max_new_tokens
        self.assembler, self.params, self.deadline = assembler, params, deadline
        self.submitted = time.perf_counter()
        self.first_token: float | None = None
        self.ids: list[int] = []
        self.done = False
        self.slot: int | None = None  # slot runner state
        self.pos = 0
        self.last = 0


def _chat_text(messages: list[dict[str, str]]) -> str:
    """A plain rendering of chat messages for models without a chat template."""
    return "\n\n".join(m["content"] for m in messages)


def create_engine(
    kind: str, model: str = "", *, base_url: str = "", api_key: str = "", **options: Any
) -> Engine:
    """Build the configured engine: "extractive", "local" (in-process model) or "remote" (OpenAI API)."""
    if kind == "extractive":
        from .extractive import ExtractiveEngine  # noqa: PLC0415

        return ExtractiveEngine()
    if kind == "local":
        from .local import LocalEngine  # noqa: PLC0415
        from .models import load_model  # noqa: PLC0415

        load_keys = {"device", "dtype", "load_format", "device_map", "quantization", "attn_implementation"}
        loaded = load_model(model, **{k: v for k, v in options.items() if k in load_keys})
        return LocalEngine(loaded, **{k: v for k, v in options.items() if k not in load_keys})
    if kind == "remote":
        from .remote import RemoteEngine  # noqa: PLC0415

        return RemoteEngine(base_url, model, api_key=api_key, **options)
    raise ValueError(f"unknown engine {kind!r}; choose extractive, local or remote")


def retry_after(waiting: int, per_request_s: float, batch: int) -> int:
    """Seconds until the queue has likely drained by one batch, between 1 and 60."""
    return int(min(60, max(1, math.ceil(per_request_s * max(1, waiting) / max(1, batch)))))


def __getattr__(name: str) -> Any:
    # LocalEngine lives in local.py (it pulls in torch); importing it from here keeps one public module.
    if name == "LocalEngine":
        from .local import LocalEngine  # noqa: PLC0415

        return LocalEngine
    if name == "ExtractiveEngine":
        from .extractive import ExtractiveEngine  # noqa: PLC0415

        return ExtractiveEngine
    raise AttributeError(name)
