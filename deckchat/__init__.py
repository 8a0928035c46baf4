"""Deck Chat: share pitch decks, see what investors look at, answer their questions."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app: config, extensions, blueprints and CLI (the model loads later, on first use)."""
    # Imported here so that deckchat.ml runs where Flask is not installed (the GPU benchmark machine).
    from flask import Flask  # noqa: PLC0415

    from .config import Config, instance_path  # noqa: PLC0415

    app = Flask(
        __name__,
        instance_path=str(instance_path()),
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_object(Config)
    app.config.from_pyfile("config.py", silent=True)
    if config:
        app.config.update(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(app.instance_path) / 'deckchat.db'}"
    from .web.setup import init_web  # noqa: PLC0415 - keeps `import deckchat` light for the CLI

    init_web(app)
    return app
