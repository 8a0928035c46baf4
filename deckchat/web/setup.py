"""Bind extensions, blueprints, error pages and security headers to the app."""
from __future__ import annotations

import os
import hmac
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, current_app, jsonify, redirect, render_template, request, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from ..extensions import csrf, db, limiter, login_manager, migrate

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


# Endpoints whose callers are scripts (fetch, sendBeacon, SSE readers), never a page a person reads.
JSON_BLUEPRINTS = frozenset({"chat", "api"})

# What a person can act on, for errors whose werkzeug description is written for developers.
FRIENDLY = {
    400: "The request could not be understood. Reload the page and try again.",
    401: "Log in to continue.",
    403: "You do not have access to this.",
    404: "Nothing is here. Check the address.",
    405: "That action is not allowed here.",
    410: "This link is no longer active. Ask the presenter for a new one.",
    429: "Too many requests at once. Please wait a moment and try again.",
    500: "Something went wrong on our side. Please try again.",
    503: "The service is briefly unavailable; please try again in a moment.",
}


def wants_json() -> bool:
    """Whether the error should be JSON: API, chat and tracking endpoints, or a client that prefers
    JSON or an event stream over HTML. No Accept header at all (curl, test clients) gets HTML."""
    if request.path.startswith("/api/") or request.blueprint in JSON_BLUEPRINTS:
        return True
    accept = request.accept_mimetypes
    if not accept:
        return False
    best = accept.best_match(["text/html", "application/json", "text/event-stream"])
    return best in ("application/json", "text/event-stream")


def upload_limit_mb() -> float:
    """The configured upload limit (MAX_CONTENT_LENGTH) in megabytes."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return limit / (1024 * 1024)


def _format_mb(mb: float) -> str:
    return f"{mb:.0f}" if mb >= 10 or mb == int(mb) else f"{mb:.1f}"


def human_message(exc: HTTPException) -> str:
    """The message shown to the person: the app's own description, else a plain-words default."""
    if exc.code == 413:
        limit = upload_limit_mb()
        if limit:
            return (f"The file is larger than the {_format_mb(limit)} MB upload limit. "
                    "Choose a smaller file, or compress its images, and try again.")
        return "The file is too large to upload."
    if isinstance(exc, RateLimitExceeded):
        own = exc.limit.error_message
        return (own() if callable(own) else own) if own else FRIENDLY[429]
    description = exc.description
    if description and description != type(exc).description:
        return description
    return FRIENDLY.get(exc.code, exc.name)


def _retry_after(exc: HTTPException) -> int | None:
    """Seconds to wait before retrying, for 429 (from the limit's window) and 503."""
    if exc.code == 429:
        current = getattr(limiter, "current_limit", None)
        if current is not None and getattr(current, "reset_at", None):
            return max(1, int(current.reset_at - time.time()))  # as the limiter's Retry-After header
        return 60
    if exc.code == 503:
        try:
            return int(exc.retry_after) if getattr(exc, "retry_after", None) else None
        except (TypeError, ValueError):
            return None
    return None


def _upload_back_url() -> str:
    """Where the too-large upload came from: the same-site page that posted it, else the upload form."""
    referrer = request.referrer or ""
    parts = urlsplit(referrer)
    if referrer and parts.netloc == request.host and parts.scheme in ("http", "https"):
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return url_for("decks.new_deck")


def _secret_key(app: Flask) -> str:
    """The configured secret key, else one generated once and kept in the instance folder."""
    if app.config.get("SECRET_KEY"):
        return app.config["SECRET_KEY"]
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def count_of(n: int, noun: str) -> str:
    """"1 document", "3 documents": a count with its noun in the right number (a template filter)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def init_web(app: Flask) -> None:
    """Wire extensions, blueprints, error handlers and headers into `app`."""
    from ..database import configure_engine  # noqa: PLC0415
    from ..domain.material import NOTES_MAX  # noqa: PLC0415
    from ..models import User  # noqa: PLC0415
    from . import health  # noqa: PLC0415
    from .observability import init_observability  # noqa: PLC0415
    from . import analytics, api, assistant, auth, chat, compare, decks, links, viewer  # noqa: PLC0415

    app.config["SECRET_KEY"] = _secret_key(app)
    app.add_template_filter(count_of)
    app.jinja_env.globals["notes_max"] = NOTES_MAX
    init_observability(app)  # first, so every later hook and log line sees the request id
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to see your decks."

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        # "id:session key": a session from before the password changed names the old key and ends here.
        number, _, key = user_id.partition(":")
        user = db.session.get(User, int(number)) if number.isdigit() else None
        return user if user is not None and hmac.compare_digest(key, user.session_key) else None

    @login_manager.unauthorized_handler
    def _unauthorized():
        if request.path.startswith("/api/"):
            message = "Log in as the deck's owner."
            return jsonify(error=message, message=message, status=401), 401
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))

    for bp in (auth.bp, decks.bp, links.bp, assistant.bp, viewer.bp, chat.bp, analytics.bp, api.bp, compare.bp):
        app.register_blueprint(bp)
    app.register_blueprint(health.bp)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.errorhandler(OperationalError)
    def _database_unavailable(exc: OperationalError):
        # Locked past the busy timeout, or the server gone: nothing was written; the client may retry.
        app.logger.error("database unavailable: %s", exc)
        db.session.rollback()
        message = "The service is briefly unavailable; please try again in a moment."
        if wants_json():
            response = jsonify(error=message, status=503, retry_after=5)
        else:
            response = app.make_response(render_template("error.html", code=503, title="Service Unavailable",
                                                          message=message))
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        message = human_message(exc)
        retry_after = _retry_after(exc)
        if wants_json():
            body = {"error": message, "status": exc.code}
            if retry_after is not None:
                body["retry_after"] = retry_after
            response = jsonify(body)
        elif exc.code == 413:
            back = _upload_back_url()
            label = "Back to the upload form" if back == url_for("decks.new_deck") else "Go back"
            response = app.make_response(render_template(
                "error.html", code=413, title="File too large", message=message, back_url=back, back_label=label))
        else:
            response = app.make_response(render_template("error.html", code=exc.code, title=exc.name,
                                                          message=message))
        response.status_code = exc.code
        if retry_after is not None:
            response.headers.setdefault("Retry-After", str(retry_after))
        return response

    @app.route("/")
    def index():
        return redirect(url_for("decks.list_decks" if current_user.is_authenticated else "auth.login"))
