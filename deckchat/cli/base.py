"""`deckchat ...` commands: thin wrappers over domain/ and ml/ that print text or one JSON object."""
from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
from flask.cli import FlaskGroup

from .. import create_app


def emit(obj: dict[str, Any], as_json: bool, text: str | None = None) -> None:
    """Print a result: one JSON object with --json, else a human line."""
    if as_json:
        click.echo(json.dumps(obj))
    else:
        click.echo(text if text is not None else json.dumps(obj, indent=2))


def fail(message: str, code: int = 1) -> NoReturn:
    """Exit non-zero with one line on stderr."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False, add_version_option=False)
def main() -> None:
    """Deck Chat: share pitch decks and answer investors' questions about them."""
