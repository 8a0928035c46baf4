"""Cross-cutting route rules as decorators: owner-only access to a deck."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from ..domain.decks import owned_deck


def owner_deck(view):
    """Require login and pass the current owner's deck `deck_id` as `deck`; 404 for anyone else's."""

    @wraps(view)
    @login_required
    def wrapper(deck_id: int, *args, **kwargs):
        deck = owned_deck(current_user.id, deck_id)
        if deck is None:
            abort(404, "No such deck.")  # the same answer whether it exists or not: nothing leaks
        return view(deck, *args, **kwargs)

    return wrapper
