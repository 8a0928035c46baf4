"""Health (`/healthz`: the process is up) and readiness (`/readyz`: database at the code's schema, index store
and engine answer)."""
from __future__ import annotations

import os
import threading
import time
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify

from ..extensions import db

bp = Blueprint("health", __name__)

# Set when the server starts a graceful shutdown, so load balancers stop sending new visitors here.
DRAINING = threading.Event()
_PING_TTL_S = 5.0
_pings: dict[str, tuple[float, dict[str, Any]]] = {}


def _short(exc: BaseException) -> str:
    """An error in one line, without tracebacks or connection strings' tails."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:160]}"


@lru_cache(maxsize=1)
def _code_heads() -> frozenset[str]:
    """The migration heads this code expects (read once per process)."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    from .setup import MIGRATIONS  # noqa: PLC0415

    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def _check_database() -> dict[str, Any]:
    try:
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready, with the reason
        return {"ok": False, "error": _short(exc)}
    schema = frozenset(r[0] for r in rows)
    if schema != _code_heads():
        # New code on an old schema (or the reverse) fails on its first write: keep traffic away.
        return {"ok": False, "error": f"schema at {sorted(schema)}, code expects {sorted(_code_heads())}: "
                                      "run `deckchat init`"}
    return {"ok": True, "dialect": db.engine.dialect.name, "schema": sorted(schema)}


def _check_index_store() -> dict[str, Any]:
    root = Path(current_app.instance_path) / "indexes"
    try:
        if not root.exists():
            # No deck indexed yet: fine as long as the instance folder can hold the first index.
            ok = os.access(current_app.instance_path, os.W_OK | os.X_OK)
            return {"ok": ok, "decks": 0} if ok else {"ok": False, "error": "instance folder is not writable"}
        return {"ok": True, "decks": sum(1 for p in root.iterdir() if p.is_dir())}
    except OSError as exc:
        return {"ok": False, "error": _short(exc)}


def _ping_remote(base_url: str) -> dict[str, Any]:
    """GET <base_url>/models on the OpenAI-compatible server, cached for a few seconds per URL."""
    now = time.monotonic()
    cached = _pings.get(base_url)
    if cached and now - cached[0] < _PING_TTL_S:
        return cached[1]
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=2) as resp:
            result = {"ok": 200 <= resp.status < 300}
    except Exception as exc:  # noqa: BLE001 - unreachable, refused, timed out: all mean not answering
        result = {"ok": False, "error": _short(exc)}
    _pings[base_url] = (now, result)
    return result


def _check_engine() -> dict[str, Any]:
    try:
        from ..ml.runtime import get_runtime  # noqa: PLC0415 - the runtime pulls in the ML stack
    except ImportError:
        engine = (current_app.config.get("ENGINE") or "extractive").lower()
        return {"ok": engine == "extractive", "ready": engine == "extractive", "engine": engine, "model": "",
                "error": None if engine == "extractive" else "no engine runtime in this build"}
    runtime = get_runtime(current_app)
    runtime.start()  # idempotent; this is the serving process, where the model belongs
    state = dict(runtime.state())
    state["ok"] = bool(state.get("ready"))
    if state["ok"] and state.get("engine") == "remote" and not state.get("fallback"):
        remote = _ping_remote(current_app.config.get("ENGINE_URL") or "")
        state["ok"], state["remote"] = remote["ok"], remote
    return state


@bp.route("/healthz")
def healthz():
    """The process is up and serving requests (no dependencies checked)."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """200 when the database, the index store and the engine all answer; 503 with the failing checks."""
    checks = {"database": _check_database(), "index_store": _check_index_store(), "engine": _check_engine()}
    ready = all(c["ok"] for c in checks.values()) and not DRAINING.is_set()
    response = jsonify(ready=ready, draining=DRAINING.is_set(), checks=checks)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
