"""Owner analytics pages."""
from __future__ import annotations

from flask import Blueprint, render_template

from ..domain.analytics import deck_analytics
from ..models import Deck
from .guards import owner_deck

bp = Blueprint("analytics", __name__)


@bp.route("/decks/<int:deck_id>/analytics")
@owner_deck
def deck_page(deck: Deck):
    """Per-slide visits, visitors and visible time."""
    return render_template("owner/analytics.html", deck=deck, stats=deck_analytics(deck))


@bp.route("/api/decks/<int:deck_id>/analytics")
@owner_deck
def deck_json(deck: Deck):
    """The same figures as JSON, for owners only."""
    return deck_analytics(deck)
