"""`deckchat analytics DECK_ID`: a deck's engagement figures; `deckchat analytics notify`: visit webhooks."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from ..domain.analytics import Scope, deck_analytics
from ..domain.notify import sweep
from ..domain.visit_history import deck_link
from .base import emit, fail, main
from .decks import get_deck


class _DeckOrSubcommand(AppGroup):
    """A group whose first argument may be a deck id (`analytics 5` = `analytics deck 5`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Route a leading deck id to the `deck` subcommand."""
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["deck", *args]
        return super().parse_args(ctx, args)


@main.group(
    "analytics", cls=_DeckOrSubcommand, subcommand_metavar="DECK_ID [--link ID] [--json] | notify ..."
)
def analytics_group() -> None:
    """A deck's engagement figures (`deckchat analytics DECK_ID`), and webhook delivery (`... notify`).

    \b
    deckchat analytics DECK_ID [--link LINK_ID] [--json]
    deckchat analytics notify [--idle-minutes M] [--json]
    """


@analytics_group.command("deck", hidden=True)
@click.argument("deck_id", type=int)
@click.option("--link", "link_id", type=int, help="Only the visits through this share link.")
@click.option("--json", "as_json", is_flag=True)
def analytics_cmd(deck_id: int, link_id: int | None, as_json: bool) -> None:
    """Visits, completion, and per slide: views, visitors, visible time, reach and questions."""
    deck = get_deck(deck_id)
    if link_id is not None and deck_link(deck, link_id) is None:
        fail(f"deck {deck_id} has no link with id {link_id}")
    stats = deck_analytics(deck, Scope(link_id=link_id))
    lines = [
        (
            f"{stats['visits']} visits, {stats['unique_visitors']} unique visitors, "
            f"{stats['completion_rate']:.0%} completed, {stats['questions']} questions"
        )
    ] + [
        f"slide {s['slide']:>3}: reached {s['reached']:>4} ({s['reached_rate']:>4.0%}), {s['views']} views, "
        f"{s['visitors']} visitors, {s['visible_seconds']:.1f} s "
        f"(median {s['visible_seconds_median']:.1f} s), "
        f"{s['questions']} questions"
        for s in stats["slides"]
    ]
    emit(stats, as_json, "\n".join(lines))


@analytics_group.command("notify")
@click.option(
    "--idle-minutes",
    type=float,
    default=None,
    help="A visit has ended after this long without reports (default: VISIT_IDLE_MINUTES, 30).",
)
@click.option("--json", "as_json", is_flag=True)
def notify_cmd(idle_minutes: float | None, as_json: bool) -> None:
    """Post end-of-visit summaries to the links' webhooks once (run it from cron, e.g. every minute)."""
    idle = (
        idle_minutes if idle_minutes is not None else float(current_app.config.get("VISIT_IDLE_MINUTES", 30))
    )
    if idle <= 0:
        fail("--idle-minutes must be positive")
    done = sweep(timedelta(minutes=idle))
    result = {
        "delivered": sum(d.ok for d in done),
        "failed": sum(not d.ok for d in done),
        "deliveries": [
            {"visit_id": d.visit_id, "ok": d.ok, "status": d.status, "error": d.error, "attempts": d.attempts}
            for d in done
        ],
    }
    emit(result, as_json, f"{result['delivered']} delivered, {result['failed']} failed (will be retried)")
