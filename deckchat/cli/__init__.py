"""`deckchat ...` commands: thin wrappers over domain/ and ml/, one module per area."""
from .base import main
from . import analytics, chat, compare, decks, models, retrieval, serve  # noqa: F401,E402 - registers their commands on `main`

__all__ = ["main"]
