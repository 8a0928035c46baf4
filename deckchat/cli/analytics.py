"""`deckchat analytics`: a deck's engagement figures."""
from __future__ import annotations

import click

from ..domain.analytics import deck_analytics
from .base import emit, main
from .decks import get_deck


@main.command("analytics")
@click.argument("deck_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def analytics_cmd(deck_id: int, as_json: bool) -> None:
    """Per-slide views, visitors and visible seconds of a deck."""
    stats = deck_analytics(get_deck(deck_id))
    lines = [f"{stats['visits']} visits"] + [
        f"slide {s['slide']:>3}: {s['views']} views, {s['visitors']} visitors, {s['visible_seconds']:.1f} s"
        for s in stats["slides"]
    ]
    emit(stats, as_json, "\n".join(lines))
