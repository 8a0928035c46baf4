"""RemoteEngine: the engine interface over OpenAI-compatible servers (vLLM, transformers serve, llama.cpp).

Base models go through /v1/completions, instruct models through /v1/chat/completions; both stream.
Stop strings are also applied here, since not every server honours them. A 503 or 429 from the server,
or more requests in flight than `max_concurrency`, becomes EngineBusy with the server's Retry-After.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

from .detok import TextAssembler
from .engine import (
    Engine,
    EngineBusy,
    EngineError,
    GenerationRequest,
    GenerationResult,
    GenerationTimeout,
    Stream,
)
from .models import get_preset


class RemoteStream(Stream):
    """A stream read straight from the server's event stream in the reader's thread."""

    def __init__(
        self,
        request: GenerationRequest,
        engine: RemoteEngine,
        response: Any,
        chat: bool,
        assembler: TextAssembler,
        deadline: float,
        started: float,
    ):
        super().__init__(request)
        self._engine, self._response, self._chat = engine, response, chat
        self._assembler, self._deadline, self._started = assembler, deadline, started

    def cancel(self) -> None:
        """Stop reading and close the connection, which tells the server to stop generating."""
        super().cancel()
        self._close()

    def _close(self) -> None:
        if self._response is not None:
            response, self._response = self._response, None
            try:
                response.close()
            finally:
                self._engine._release()

    def __iter__(self) -> Iterator[str]:
        if self._closed:
            if self._error is not None:
                raise self._error
            return
        first: float | None = None
        reason, usage, completion, server_stop = "stop", None, 0, False
        if self._response is None:  # cancelled before anyone read it
            reason = "cancelled"
        try:
            for chunk in self._response or ():
                if self.cancelled:
                    reason = "cancelled"
                    break
                if time.perf_counter() > self._deadline:
                    reason = "timeout"
                    break
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                piece = (choice.delta.content if self._chat else choice.text) or ""
                if piece:
                    first = first or time.perf_counter()
                    completion += 1
                    delta = self._assembler.add_text(piece)
                    if delta:
                        yield delta
                if choice.finish_reason:
                    reason = "length" if choice.finish_reason == "length" else "stop"
                    server_stop = choice.finish_reason == "stop"
                if self._assembler.stopped:
                    reason = "stop"
                    break
        except GeneratorExit:
            self.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - network and protocol errors reach the reader as one type
            self._closed, self._error = True, EngineError(f"remote engine failed: {exc}")
            self._close()
            raise self._error from exc
        finally:
            self._close()
        tail = self._assembler.finish(cut_stop_prefix=server_stop) if reason != "cancelled" else ""
        if tail:
            yield tail
        result = GenerationResult(
            text=self._assembler.sent,
            finish_reason=reason,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or completion,
            ttft_s=None if first is None else first - self._started,
            total_s=time.perf_counter() - self._started,
            engine=self._engine.name,
            model=self._engine.model_name,
        )
        self._closed = True
        if reason == "timeout":
            self._error = GenerationTimeout("no answer within the time limit", result)
            raise self._error
        self._result = result


class RemoteEngine(Engine):
    """Talks to an OpenAI-compatible server; `chat=None` uses chat completions when messages are given."""

    name = "remote"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "",
        chat: bool | None = None,
        timeout_s: float = 120.0,
        max_concurrency: int = 64,
        extra_body: dict | None = None,
    ):
        from openai import OpenAI  # noqa: PLC0415

        self.base_url, self.model_name, self.chat = base_url, model, chat
        self.timeout_s, self.extra_body = timeout_s, extra_body or {}
        self.client = OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=0
        )
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self.max_concurrency = max_concurrency

    def _release(self) -> None:
        self._slots.release()

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        preset = get_preset(request.preset)
        params: dict[str, Any] = {
            "max_tokens": request.max_new_tokens or preset.max_new_tokens,
            "temperature": preset.temperature if preset.do_sample else 0.0,
        }
        if preset.do_sample and preset.top_p < 1.0:
            params["top_p"] = preset.top_p
        stop = list(request.stop) if request.stop is not None else list(preset.stop)
        if stop:
            params["stop"] = stop[:4]  # the API takes at most four
        return params

    def submit(self, request: GenerationRequest) -> Stream:
        """Open a streaming request; raises EngineBusy on 503/429 or too many requests in flight."""
        import openai  # noqa: PLC0415

        if not self._slots.acquire(blocking=False):
            raise EngineBusy(retry_after=2)
        started = time.perf_counter()
        preset = get_preset(request.preset)
        chat = self.chat if self.chat is not None else bool(request.messages)
        params = self._params(request)
        timeout = request.timeout_s or self.timeout_s
        try:
            if chat:
                messages = request.messages or [{"role": "user", "content": request.prompt}]
                response = self.client.chat.completions.create(
                    model=self.model_name,
                    messages=messages,
                    stream=True,
                    # Token counts come in a last chunk only when asked for: OpenAI's rule, which vLLM and
                    # transformers serve 5.25 follow (earlier transformers serve releases sent them unasked).
                    stream_options={"include_usage": True},
                    timeout=timeout,
                    extra_body=self.extra_body or None,
                    **params,
                )
            else:
                response = self.client.completions.create(
                    model=self.model_name,
                    prompt=request.prompt,
                    stream=True,
                    # Token counts come in a last chunk only when asked for: OpenAI's rule, which vLLM and
                    # transformers serve 5.25 follow (earlier transformers serve releases sent them unasked).
                    stream_options={"include_usage": True},
                    timeout=timeout,
                    extra_body=self.extra_body or None,
                    **params,
                )
        except openai.APIStatusError as exc:
            self._release()
            if exc.status_code in (429, 503):
                retry = exc.response.headers.get("retry-after", "5")
                raise EngineBusy(retry_after=int(retry) if retry.isdigit() else 5) from exc
            raise EngineError(f"remote engine refused the request: {exc.status_code} {exc.message}") from exc
        except openai.APIError as exc:
            self._release()
            raise EngineError(f"remote engine unreachable: {exc}") from exc
        stop = tuple(request.stop) if request.stop is not None else preset.stop
        assembler = TextAssembler(None, stop, preset.clean_up_spaces)
        return RemoteStream(request, self, response, chat, assembler, started + timeout, started)

    def stats(self) -> dict[str, Any]:
        """Where the engine points and how many requests may still start."""
        return {
            "engine": self.name,
            "model": self.model_name,
            "base_url": self.base_url,
            "alive": True,
            "max_concurrency": self.max_concurrency,
        }
