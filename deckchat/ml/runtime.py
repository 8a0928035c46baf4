"""The serving process's engine: chosen by configuration, loaded once (after fork), with a readiness state.

`hf` loads the model in-process (in a background thread, so the worker answers health checks meanwhile);
`openai` talks to a remote OpenAI-compatible server; `extractive` needs no model. When a configured model
cannot be loaded (no weights on this machine), the runtime says why and answers with the extractive engine.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from .engine import Engine, EngineError

log = logging.getLogger(__name__)

ENGINE_KINDS = {"hf": "local", "local": "local", "openai": "remote", "remote": "remote", "extractive": "extractive"}


class EngineNotReady(EngineError):
    """The model is still loading: answer HTTP 503 with Retry-After."""

    retry_after = 10


@dataclass(frozen=True)
class EngineProfile:
    """What prompt fitting needs to know about the engine."""

    name: str
    model: str
    chat: bool
    seq2seq: bool
    max_input: int
    count_tokens: Callable[[str], int]
    needs_prompt: bool = True  # False for the extractive engine


def _approx_tokens(text: str) -> int:
    # Remote servers tokenise on their side; ~3.5 characters per token errs on the safe side for English.
    return int(len(text) / 3.5) + 1


def profile_of(engine: Engine, max_input: int = 4096) -> EngineProfile:
    """The fitting profile of an engine: its tokenizer and limits when in-process, estimates when remote."""
    loaded = getattr(engine, "loaded", None)
    if loaded is not None:
        tokenizer = loaded.tokenizer
        limit = loaded.max_positions if loaded.kind == "seq2seq" else getattr(engine, "max_len", loaded.max_positions)
        return EngineProfile(engine.name, engine.model_name, bool(loaded.chat), loaded.kind == "seq2seq", limit,
                             lambda text: len(tokenizer(text, add_special_tokens=True)["input_ids"]))
    if engine.name == "extractive":
        return EngineProfile("extractive", "extractive", False, False, 10**9, _approx_tokens, needs_prompt=False)
    return EngineProfile(engine.name, engine.model_name, bool(getattr(engine, "chat", False)), False, max_input,
                         _approx_tokens)


class Runtime:
    """Owns the process's engine: start once, report state, hand the engine to requests."""

    def __init__(self, config: dict[str, Any]):
        self.kind = ENGINE_KINDS.get((config.get("ENGINE") or "extractive").lower())
        if self.kind is None:
            raise ValueError(f"DECKCHAT_ENGINE must be hf, openai or extractive, not {config.get('ENGINE')!r}")
        self.config = config
        self.model = config.get("MODEL") or ""
        self._engine: Engine | None = None
        self._profile: EngineProfile | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, background: bool = True) -> None:
        """Begin loading the engine (once); `background=False` waits for it. Only a local model loads slowly."""
        background = background and self.kind == "local"
        with self._lock:
            if self._thread is None and self._engine is None:
                self._thread = threading.Thread(target=self._load, name="deckchat-engine-load", daemon=True)
                self._thread.start()
            thread = self._thread
        if not background and thread is not None:
            thread.join()

    def _load(self) -> None:
        from .engine import create_engine  # noqa: PLC0415

        cfg = self.config
        try:
            if self.kind == "local" and not self.model:
                raise ValueError("DECKCHAT_MODEL is not set")
            options: dict[str, Any] = {}
            if self.kind == "local":
                options = {k: v for k, v in {"dtype": cfg.get("DTYPE"), "device_map": cfg.get("DEVICE_MAP"),
                                             "load_format": cfg.get("LOAD_FORMAT")}.items() if v}
            elif self.kind == "remote":
                options = {"base_url": cfg.get("ENGINE_URL") or "", "api_key": cfg.get("ENGINE_API_KEY") or ""}
            engine = create_engine(self.kind, self.model, **options)
            ready = getattr(engine, "ready", None)
            if ready is not None:
                ready.wait(timeout=600)  # the in-process engine finishes its own set-up (compile, checks)
            profile = profile_of(engine, int(cfg.get("MAX_INPUT_TOKENS") or 4096))
        except Exception as exc:  # noqa: BLE001 - any load failure falls back, with the reason kept
            log.warning("engine %s (%s) could not start: %s; answering with the extractive engine",
                        self.kind, self.model, exc)
            engine = create_engine("extractive")
            profile = profile_of(engine)
            self._error = f"{self.model or self.kind} could not be loaded ({exc}); answering with the extractive engine"
        with self._lock:
            self._engine, self._profile = engine, profile

    def state(self) -> dict[str, Any]:
        """Readiness for /readyz and the demo: ready, engine, model, error (why it fell back)."""
        with self._lock:
            engine, error = self._engine, self._error
        alive = engine is not None and getattr(engine, "alive", lambda: True)()
        return {"ready": bool(alive), "engine": engine.name if engine else self.kind,
                "model": engine.model_name if engine else self.model, "error": error,
                "fallback": error is not None}

    def get(self) -> tuple[Engine, EngineProfile]:
        """The engine and its profile; raises EngineNotReady while it loads."""
        self.start()
        with self._lock:
            if self._engine is None or self._profile is None:
                raise EngineNotReady("The assistant is starting up; ask again in a few seconds.")
            return self._engine, self._profile

    def close(self) -> None:
        """Stop the engine thread (tests, shutdown)."""
        with self._lock:
            engine = self._engine
        if engine is not None:
            engine.close()


_runtimes_lock = threading.Lock()


def get_runtime(app) -> Runtime:
    """The app's runtime, created on first use (it holds no model until `start`)."""
    runtime = app.extensions.get("deckchat.runtime")
    if runtime is None:
        with _runtimes_lock:
            runtime = app.extensions.get("deckchat.runtime")
            if runtime is None:
                runtime = Runtime(dict(app.config))
                app.extensions["deckchat.runtime"] = runtime
    return runtime


def weights_available(model: str) -> bool:
    """Whether a model's weights are on this machine (a local folder or the Hugging Face cache)."""
    from pathlib import Path  # noqa: PLC0415

    from .models import resolve  # noqa: PLC0415

    hub_id = resolve(model).hub_id
    if Path(hub_id).is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an odd id is simply not available
        return False


def describe_engine(config: dict[str, Any]) -> str:
    """One line for people: which engine will answer, and why not a model when one cannot be used."""
    kind = ENGINE_KINDS.get((config.get("ENGINE") or "extractive").lower(), "?")
    model = config.get("MODEL") or ""
    if kind == "extractive":
        return ("extractive (quotes the best passages; no language model configured — set DECKCHAT_ENGINE=hf and "
                "DECKCHAT_MODEL to a local model folder or a cached hub id to generate answers)")
    if kind == "remote":
        return f"remote model {model or '(server default)'} at {config.get('ENGINE_URL') or '(DECKCHAT_ENGINE_URL unset)'}"
    if not model:
        return "extractive: DECKCHAT_ENGINE=hf but DECKCHAT_MODEL is not set"
    if config.get("LOAD_FORMAT") != "dummy" and not weights_available(model):
        return (f"extractive: the weights of {model} are not on this machine and no model hub can be reached; "
                "put the model in a local folder and set DECKCHAT_MODEL to it")
    return f"in-process model {model}"
