"""`deckchat deck index` and `deckchat retrieve`: the per-deck knowledge index."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app

from ..domain.decks import deck_content
from .base import emit, fail, main
from .decks import deck


def _root() -> Path:
    """Where this app keeps every deck's index."""
    return Path(current_app.instance_path) / "indexes"


def _content(deck_id: int):
    """The deck's material, or a one-line failure."""
    try:
        return deck_content(deck_id)
    except LookupError as exc:
        fail(str(exc))


@deck.command("index")
@click.argument("deck_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def index_cmd(deck_id: int, as_json: bool) -> None:
    """Rebuild a deck's knowledge index from its slides, notes, FAQ and documents."""
    from ..ml.index import build_index  # noqa: PLC0415 - loads the embedding stack only when needed

    content = _content(deck_id)
    stats = build_index(content, _root(), embed_model=current_app.config.get("EMBED_MODEL") or None,
                        progress=not as_json)
    emit(stats, as_json, f"Indexed deck {deck_id}: {stats['sources']} sources, {stats['nodes']} nodes "
                         f"in {stats['seconds']} s")


@main.command("retrieve")
@click.argument("deck_id", type=int)
@click.argument("question")
@click.option("--k", default=3, show_default=True, type=click.IntRange(1, 50), help="How many sources.")
@click.option("--slide", type=int, default=None, help="The slide the investor is looking at.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def retrieve_cmd(deck_id: int, question: str, k: int, slide: int | None, as_json: bool) -> None:
    """Show the sources the chat would answer a question from, and whether it would answer."""
    from ..ml.index import IndexMissingError, StaleIndexError  # noqa: PLC0415
    from ..ml.retrieval import retrieve  # noqa: PLC0415

    content = _content(deck_id)
    try:
        found = retrieve(content, question, _root(), k=k, slide=slide,
                         embed_model=current_app.config.get("EMBED_MODEL") or None)
    except (IndexMissingError, StaleIndexError) as exc:
        fail(str(exc))
    lines = [f"{'answerable' if found.answerable else 'NOT answerable'} (confidence {found.confidence:.2f})"]
    lines += [f"{h.score:.4f}  {h.source}: {' '.join(h.text.split())[:100]}" for h in found.results]
    emit(found.to_dict(), as_json, "\n".join(lines))
