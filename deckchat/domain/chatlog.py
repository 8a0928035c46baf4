"""Stored chat exchanges: history of a visit, recording answers, feedback, deck chat settings."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import ChatExchange, Deck, Guardrail, ShareLink, Visit

MAX_QUESTION_CHARS = 1000


class ChatInputError(ValueError):
    """A question or feedback that cannot be accepted, with a message for the investor."""


def clean_question(text: object) -> str:
    """A question with collapsed white space; raise ChatInputError when empty or too long."""
    if not isinstance(text, str) or not text.strip():
        raise ChatInputError("Type a question first.")
    question = " ".join(text.split())
    if len(question) > MAX_QUESTION_CHARS:
        raise ChatInputError(f"Questions can be at most {MAX_QUESTION_CHARS} characters.")
    return question


def visit_for_link(link: ShareLink, visit_key: object) -> Visit | None:
    """The visit with this key if it was opened through this link."""
    if not isinstance(visit_key, str) or len(visit_key) > 64:
        return None
    return db.session.scalar(select(Visit).where(Visit.key == visit_key, Visit.link_id == link.id))


def visit_history(visit_id: int, limit: int = 6) -> list[tuple[str, str]]:
    """This visit's previous model-answered (question, answer) turns, oldest first."""
    rows = db.session.execute(
        select(ChatExchange.question, ChatExchange.answer)
        .where(ChatExchange.visit_id == visit_id, ChatExchange.kind.in_(("model", "faq")))
        .order_by(ChatExchange.id.desc()).limit(limit)
    ).all()
    return [(q, a) for q, a in reversed(rows)]


def visit_turns(visit_id: int, limit: int = 20) -> list[dict]:
    """This visit's last exchanges, oldest first, as the chat panel shows them again after a reload: question,
    answer, whether it was answerable, the cited sources (with their passages) and any feedback given."""
    rows = db.session.scalars(
        select(ChatExchange).where(ChatExchange.visit_id == visit_id).order_by(ChatExchange.id.desc()).limit(limit)
    ).all()
    return [{"exchange": ex.id, "question": ex.question, "answer": ex.answer, "answerable": ex.answerable,
             "kind": ex.kind, "sources": [s for s in ex.sources or [] if isinstance(s, dict)],
             "feedback": ex.feedback} for ex in reversed(rows)]


def record_exchange(*, deck_id: int, visit_id: int | None, slide: int | None, question: str, answer,
                    sources: list[dict] | None = None) -> ChatExchange:
    """Store one exchange from a finished (or failed) ChatAnswer-like object; `sources` (the cited sources as the
    browser got them, passages included) instead of the answer's own when given."""
    exchange = ChatExchange(
        deck_id=deck_id, visit_id=visit_id, slide=slide, question=question, answer=answer.text,
        answerable=answer.answerable, kind=answer.kind,
        sources=list(answer.sources if sources is None else sources), engine=answer.engine,
        model=answer.model, ttft_ms=answer.ttft_ms, total_ms=answer.total_ms, prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
    )
    db.session.add(exchange)
    db.session.commit()
    return exchange


def set_feedback(exchange_id: int, visit: Visit, value: object) -> ChatExchange:
    """Record thumbs up (+1) or down (-1) on an exchange of this visit."""
    if type(value) is not int or value not in (1, -1):  # not True, not 1.0
        raise ChatInputError("Feedback must be 1 or -1.")
    exchange = db.session.get(ChatExchange, exchange_id) if 0 < exchange_id < 2**63 else None
    if exchange is None or exchange.visit_id != visit.id:
        raise LookupError("no such answer in this visit")
    exchange.feedback = value
    db.session.commit()
    return exchange


def guardrail_pairs(deck: Deck) -> list[tuple[str, str]]:
    """The deck's guardrails as (topic, reply) pairs."""
    return [(g.topic, g.reply) for g in deck.guardrails]


def update_chat_settings(deck: Deck, persona: str | None, guardrails: list[tuple[str, str]] | None = None) -> None:
    """Replace the deck's persona, and its guardrails when given."""
    deck.persona = (persona or "").strip()[:4000] or None
    if guardrails is not None:
        deck.guardrails = [Guardrail(topic=t.strip()[:300], reply=r.strip())
                           for t, r in guardrails if t.strip() and r.strip()]
    db.session.commit()


def add_guardrail(deck: Deck, topic: str, reply: str) -> Guardrail:
    """Add a topic the bot must not discuss, with the reply it gives instead."""
    topic, reply = " ".join(topic.split()), reply.strip()
    if not topic or not reply:
        raise ChatInputError("A guardrail needs a topic and a reply.")
    guardrail = Guardrail(topic=topic[:300], reply=reply[:2000])
    deck.guardrails.append(guardrail)
    db.session.commit()
    return guardrail


def delete_guardrail(deck: Deck, guardrail_id: int) -> bool:
    """Remove one of the deck's guardrails; False when it is not this deck's."""
    guardrail = db.session.get(Guardrail, guardrail_id)
    if guardrail is None or guardrail.deck_id != deck.id:
        return False
    db.session.delete(guardrail)
    db.session.commit()
    return True
