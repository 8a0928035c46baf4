"""A deck's example Q&A: the presenter's own answers, used as few-shot turns in the chat prompt."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import Deck, ExampleQA

MAX_EXAMPLES = 20  # each one costs prompt tokens on every question


class ExampleError(ValueError):
    """An example that cannot be stored, with a message for the presenter."""


def list_examples(deck_id: int) -> list[ExampleQA]:
    """The deck's examples, oldest first."""
    query = select(ExampleQA).where(ExampleQA.deck_id == deck_id).order_by(ExampleQA.id)
    return list(db.session.scalars(query))


def add_example(deck: Deck, question: str, answer: str) -> ExampleQA:
    """Store an example answer and mark the deck's material as changed."""
    question, answer = " ".join(question.split()), answer.strip()
    if not question or not answer:
        raise ExampleError("An example needs both a question and an answer.")
    if len(list_examples(deck.id)) >= MAX_EXAMPLES:
        raise ExampleError(f"A deck can have at most {MAX_EXAMPLES} example answers.")
    example = ExampleQA(deck_id=deck.id, question=question, answer=answer)
    db.session.add(example)
    deck.content_version += 1
    db.session.commit()
    return example


def delete_example(deck: Deck, example_id: int) -> bool:
    """Remove one of the deck's examples; False when it is not the deck's."""
    example = db.session.get(ExampleQA, example_id)
    if example is None or example.deck_id != deck.id:
        return False
    db.session.delete(example)
    deck.content_version += 1
    db.session.commit()
    return True
