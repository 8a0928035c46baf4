"""`deckchat ...` commands: thin wrappers over domain/ and ml/, one module per area."""
from . import analytics, chat, compare, decks, links, models, retrieval, serve  # noqa: F401,E402 - registers their commands on `main`
from .base import main

__all__ = ["main"]
