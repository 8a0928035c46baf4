"""`deckchat ask`: ask a deck's bot a question from the command line (not logged as a visit)."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app

from ..domain.chatlog import guardrail_pairs
from ..domain.decks import deck_content
from ..ml.chain import DeckChain
from ..ml.engine import EngineError
from ..ml.runtime import Runtime
from .base import emit, fail, main
from .decks import get_deck


@main.command("ask")
@click.argument("deck_id", type=int)
@click.argument("question")
@click.option("--slide", type=int, help="The slide on screen (its material is favoured).")
@click.option("--model", help="Answer with this model (registry name, hub id or folder) in-process.")
@click.option("--load-format", type=click.Choice(["auto", "dummy"]), default=None)
@click.option("--json", "as_json", is_flag=True)
def ask_cmd(deck_id: int, question: str, slide: int | None, model: str | None, load_format: str | None,
            as_json: bool) -> None:
    """Answer QUESTION about deck DECK_ID with its sources."""
    deck = get_deck(deck_id)
    if not question.strip():
        fail("the question is empty")
    config = dict(current_app.config)
    if model:
        config.update(ENGINE="hf", MODEL=model, LOAD_FORMAT=load_format or "")
    runtime = Runtime(config)
    runtime.start(background=False)
    state = runtime.state()
    if model and state["fallback"]:
        fail(state["error"])
    engine, profile = runtime.get()
    chain = DeckChain(engine, profile, Path(current_app.instance_path) / "indexes",
                      embed_model=current_app.config["EMBED_MODEL"] or None)
    try:
        answer = chain.ask(deck_content(deck.id), question, slide=slide, persona=deck.persona,
                           guardrails=guardrail_pairs(deck))
    except (EngineError, ValueError) as exc:
        fail(str(exc))
    finally:
        runtime.close()
    if state["fallback"]:
        click.echo(f"warning: {state['error']}", err=True)
    emit({"answer": answer.text, "answerable": answer.answerable, "sources": answer.sources,
          "engine": answer.engine, "model": answer.model, "kind": answer.kind}, as_json,
         answer.text + ("\n\nSources: " + ", ".join(s["source"] for s in answer.sources) if answer.sources else ""))
