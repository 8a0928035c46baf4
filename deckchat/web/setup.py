"""Bind extensions, blueprints, error pages and security headers to the app."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from ..extensions import csrf, db, limiter, login_manager, migrate

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


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


def init_web(app: Flask) -> None:
    """Wire extensions, blueprints, error handlers and headers into `app`."""
    from ..database import configure_engine  # noqa: PLC0415
    from ..models import User  # noqa: PLC0415
    from . import health  # noqa: PLC0415
    from .observability import init_observability  # noqa: PLC0415
    from . import analytics, api, assistant, auth, chat, compare, decks, viewer  # noqa: PLC0415

    app.config["SECRET_KEY"] = _secret_key(app)
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
        return db.session.get(User, int(user_id)) if user_id.isdigit() else None

    @login_manager.unauthorized_handler
    def _unauthorized():
        if request.path.startswith("/api/"):
            return jsonify(error="Unauthorized", message="Log in as the deck's owner."), 401
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))

    for bp in (auth.bp, decks.bp, assistant.bp, viewer.bp, chat.bp, analytics.bp, api.bp, compare.bp):
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
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            response = jsonify(error="Service Unavailable", message=message)
        else:
            response = app.make_response(render_template("error.html", code=503, title="Service Unavailable",
                                                          message=message))
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            return jsonify(error=exc.name, message=exc.description), exc.code
        return render_template("error.html", code=exc.code, title=exc.name, message=exc.description), exc.code

    @app.route("/")
    def index():
        return redirect(url_for("decks.list_decks" if current_user.is_authenticated else "auth.login"))
