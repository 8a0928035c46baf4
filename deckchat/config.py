"""Configuration read from the environment; `instance/config.py` may override any value."""
from __future__ import annotations

import os
from pathlib import Path


def _bool(name: str, default: bool = False) -> bool:
    """Read a yes/no environment variable."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _server_pool(url: str | None) -> dict:
    """Pool settings for a database server: one connection per worker thread, checked before use."""
    if not url or url.startswith("sqlite"):
        return {}
    # Without this, threads beyond the default 5 + 10 open and close a server connection per request.
    threads = int(os.environ.get("DECKCHAT_THREADS") or 16)
    return {"pool_size": threads, "max_overflow": 4, "pool_pre_ping": True, "pool_recycle": 1800}


def instance_path() -> Path:
    """The runtime data folder: `DECKCHAT_INSTANCE_PATH` or ./instance."""
    return Path(os.environ.get("DECKCHAT_INSTANCE_PATH", "instance")).resolve()


class Config:
    """Defaults for every deployment; each value can come from the environment."""

    SECRET_KEY = os.environ.get("DECKCHAT_SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")  # None: SQLite inside the instance folder
    SQLALCHEMY_ENGINE_OPTIONS: dict = _server_pool(os.environ.get("DATABASE_URL"))
    # Uploads: the request limit covers slides plus notes, FAQ and documents together.
    MAX_CONTENT_LENGTH = int(os.environ.get("DECKCHAT_MAX_UPLOAD_MB", "100")) * 1024 * 1024
    MAX_SLIDES = int(os.environ.get("DECKCHAT_MAX_SLIDES", "300"))
    # A PPTX is a zip: refuse archives that expand beyond this or compress suspiciously well.
    MAX_UNZIPPED_BYTES = int(os.environ.get("DECKCHAT_MAX_UNZIPPED_MB", "500")) * 1024 * 1024
    SLIDE_IMAGE_WIDTH = int(os.environ.get("DECKCHAT_SLIDE_WIDTH", "1600"))
    THUMB_WIDTH = 240
    SOFFICE = os.environ.get("DECKCHAT_SOFFICE", "soffice")
    # Rate limits (Flask-Limiter): memory for one worker, redis://... for several.
    RATELIMIT_STORAGE_URI = os.environ.get("DECKCHAT_RATELIMIT_STORAGE", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_ENABLED = _bool("DECKCHAT_RATELIMIT_ENABLED", True)
    UNLOCK_RATE_LIMIT = os.environ.get("DECKCHAT_UNLOCK_RATE_LIMIT", "10 per minute")
    TRACK_RATE_LIMIT = os.environ.get("DECKCHAT_TRACK_RATE_LIMIT", "600 per minute")
    CHAT_RATE_LIMIT_VISITOR = os.environ.get("DECKCHAT_CHAT_RATE_LIMIT_VISITOR", "10 per minute;60 per hour")
    CHAT_RATE_LIMIT_LINK = os.environ.get("DECKCHAT_CHAT_RATE_LIMIT_LINK", "120 per minute")
    # Per address, whatever visitor cookie a request carries (an office behind one address has room to spare).
    CHAT_RATE_LIMIT_ADDRESS = os.environ.get("DECKCHAT_CHAT_RATE_LIMIT_ADDRESS", "30 per minute;300 per hour")
    OPEN_RATE_LIMIT = os.environ.get("DECKCHAT_OPEN_RATE_LIMIT", "120 per minute")
    # Tracking: a heartbeat every few seconds bounds what a crashed tab loses.
    HEARTBEAT_SECONDS = float(os.environ.get("DECKCHAT_HEARTBEAT_SECONDS", "5"))
    # A visit has ended after this long without reports; then its link's webhook gets the summary.
    VISIT_IDLE_MINUTES = float(os.environ.get("DECKCHAT_VISIT_IDLE_MINUTES", "30"))
    WEBHOOK_SWEEP_SECONDS = float(os.environ.get("DECKCHAT_WEBHOOK_SWEEP_SECONDS", "60"))
    WEBHOOK_THREAD = _bool("DECKCHAT_WEBHOOK_THREAD", True)
    # Webhooks to loopback, private, link-local (cloud metadata) addresses are refused, when saved and when
    # sent, so owners cannot make the server call its own network; allow them for on-premises receivers and
    # the tests' receiver on 127.0.0.1.
    WEBHOOK_ALLOW_PRIVATE = _bool("DECKCHAT_WEBHOOK_ALLOW_PRIVATE", False)
    # Extra model folders or hub ids owners may pick on the comparison page (comma-separated).
    COMPARE_MODELS = os.environ.get("DECKCHAT_COMPARE_MODELS", "")
    MAX_VIEW_SECONDS = 4 * 3600
    # Behind nginx: how many proxies' X-Forwarded-* headers to trust (rate limits key on the client address).
    TRUSTED_PROXIES = int(os.environ.get("DECKCHAT_TRUSTED_PROXIES", "0"))
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("DECKCHAT_SECURE_COOKIES", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    PUBLIC_URL = os.environ.get("DECKCHAT_PUBLIC_URL", "")
    EMBED_MODEL = os.environ.get("DECKCHAT_EMBED_MODEL", "")  # empty: the packaged all-MiniLM-L6-v2
    # Chat engine: "extractive" (no model), "hf" (in-process model) or "openai" (remote server).
    ENGINE = os.environ.get("DECKCHAT_ENGINE", "extractive")
    MODEL = os.environ.get("DECKCHAT_MODEL", "")  # registry name, hub id or local folder
    DTYPE = os.environ.get("DECKCHAT_DTYPE", "")
    DEVICE_MAP = os.environ.get("DECKCHAT_DEVICE_MAP", "")
    LOAD_FORMAT = os.environ.get("DECKCHAT_LOAD_FORMAT", "")  # "dummy": random weights, for benchmarks
    ENGINE_URL = os.environ.get("DECKCHAT_ENGINE_URL", "")    # e.g. http://127.0.0.1:8001/v1
    ENGINE_API_KEY = os.environ.get("DECKCHAT_ENGINE_API_KEY", "")
    MAX_INPUT_TOKENS = int(os.environ.get("DECKCHAT_MAX_INPUT_TOKENS", "4096"))  # remote models' context
