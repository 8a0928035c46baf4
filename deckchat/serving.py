"""How `deckchat serve` runs gunicorn: worker and thread counts from the engine, and the start-up rules."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

IN_PROCESS_ENGINES = {"hf", "local"}
DEFAULT_THREADS = 16  # a streamed answer holds a thread for its whole length
MAX_DEFAULT_WORKERS = 4


@dataclass(frozen=True)
class ServePlan:
    """The gunicorn shape for one deployment."""

    engine: str
    workers: int
    threads: int
    grace_seconds: int
    warnings: list[str] = field(default_factory=list)


def plan_serving(env: Mapping[str, str], cpus: int | None = None) -> ServePlan:
    """Workers, threads and grace period from the environment; ValueError when the shape cannot work."""
    engine = (env.get("DECKCHAT_ENGINE") or "extractive").strip().lower()
    requested = env.get("DECKCHAT_WORKERS", "").strip()
    threads = int(env.get("DECKCHAT_THREADS") or DEFAULT_THREADS)
    grace = int(float(env.get("DECKCHAT_GRACE_SECONDS") or 30))
    if threads < 1 or grace < 0 or (requested and int(requested) < 1):
        raise ValueError("DECKCHAT_WORKERS and DECKCHAT_THREADS must be at least 1, "
                         "DECKCHAT_GRACE_SECONDS at least 0")
    warnings: list[str] = []
    shared_limits = not (env.get("DECKCHAT_RATELIMIT_STORAGE") or "memory://").startswith("memory")
    if engine in IN_PROCESS_ENGINES:
        # Each worker would load its own copy of the model into the same GPU.
        if requested and int(requested) != 1:
            raise ValueError("DECKCHAT_ENGINE=hf keeps the model in the web process: use one worker "
                             "(more threads if needed), or serve the model with DECKCHAT_ENGINE=openai")
        workers = 1
    elif requested:
        workers = int(requested)
    elif shared_limits:
        workers = max(1, min(cpus or os.cpu_count() or 1, MAX_DEFAULT_WORKERS))
    else:
        workers = 1  # in-memory rate limits are only right when one process counts them all
    if workers > 1 and not shared_limits:
        warnings.append(f"{workers} workers with in-memory rate limits: each worker counts on its own; "
                        "set DECKCHAT_RATELIMIT_STORAGE=redis://... to share the limits")
    return ServePlan(engine, workers, threads, grace, warnings)


def uses_sqlite(database_uri: str) -> bool:
    """Whether the app's database is SQLite (one host by construction)."""
    return database_uri.startswith("sqlite")


def secret_key_problem(database_uri: str, key_from_env_or_config: bool) -> str | None:
    """Why serving must not start with the generated secret key, or None when it may."""
    if uses_sqlite(database_uri) or key_from_env_or_config:
        return None
    # A shared database means several hosts; each would sign sessions with its own generated key, so a
    # visitor who unlocked a link on one host would be locked out on the next.
    return ("DECKCHAT_SECRET_KEY is required with a shared database (every host must sign sessions with the "
            "same key); generate one with: python -c 'import secrets; print(secrets.token_hex(32))'")
