"""Knowledge gaps: questions the bot could not answer, grouped by similarity, closed by an owner's FAQ answer.

Grouping is single-link clustering over a similarity the caller chooses: word overlap here (no ML in
domain/), sentence embeddings in `deckchat.ml.gaps`. Closing a group adds one FAQ item, bumps the deck's
content version (so the chat index counts as stale) and stamps the group's questions as closed; the caller
then rebuilds the index.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select

from ..extensions import db
from ..models import ChatExchange, Deck, FaqItem, utcnow
from .analytics import iso

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a about an and any are as at be by can could do does for from has have how i in is it its me many much "
    "of on or our please some tell that the their them there this to us was we what when where which who why "
    "will with would you your".split()
)
LEXICAL_THRESHOLD = 0.5  # Jaccard overlap of content words
NOT_GAPS = ("guardrail", "error")  # deliberate refusals and engine failures are not missing knowledge
MAX_QUESTION = 1000
MAX_ANSWER = 10_000


class GapError(ValueError):
    """A close request that cannot be applied, with a message for the owner."""


@dataclass(frozen=True)
class Gap:
    """One unanswered question as asked."""

    id: int
    question: str
    slide: int | None
    visit_id: int | None
    asked_at: str | None


@dataclass
class GapGroup:
    """Similar unanswered questions, shown and closed together."""

    gaps: list[Gap] = field(default_factory=list)

    @property
    def question(self) -> str:
        """The question to propose as the FAQ heading: the most common wording, else the first asked."""
        counts: dict[str, int] = {}
        for g in self.gaps:
            counts[g.question] = counts.get(g.question, 0) + 1
        best = self.gaps[0].question
        for g in self.gaps:  # in asking order, so the earliest wording wins a tie
            if counts[g.question] > counts[best]:
                best = g.question
        return best

    @property
    def ids(self) -> list[int]:
        """The exchange ids of the group."""
        return [g.id for g in self.gaps]

    def to_dict(self) -> dict:
        """The group as plain data."""
        return {
            "question": self.question,
            "count": len(self.gaps),
            "ids": self.ids,
            "questions": [g.__dict__ for g in self.gaps],
        }


def open_gaps(deck_id: int) -> list[Gap]:
    """The deck's unanswered questions that no owner has answered yet, oldest first."""
    rows = db.session.execute(
        select(
            ChatExchange.id,
            ChatExchange.question,
            ChatExchange.slide,
            ChatExchange.visit_id,
            ChatExchange.created_at,
        )
        .where(
            ChatExchange.deck_id == deck_id,
            ChatExchange.answerable.is_(False),
            ChatExchange.gap_closed_at.is_(None),
            ChatExchange.kind.not_in(NOT_GAPS),
        )
        .order_by(ChatExchange.created_at, ChatExchange.id)
    ).all()
    return [Gap(i, q, s, v, iso(t)) for i, q, s, v, t in rows]


def open_gap_count(deck_id: int) -> int:
    """How many unanswered questions wait for the owner."""
    return (
        db.session.scalar(
            select(func.count(ChatExchange.id)).where(
                ChatExchange.deck_id == deck_id,
                ChatExchange.answerable.is_(False),
                ChatExchange.gap_closed_at.is_(None),
                ChatExchange.kind.not_in(NOT_GAPS),
            )
        )
        or 0
    )


def closed_gap_count(deck_id: int) -> int:
    """How many unanswered questions owners have answered."""
    return (
        db.session.scalar(
            select(func.count(ChatExchange.id)).where(
                ChatExchange.deck_id == deck_id, ChatExchange.gap_closed_at.is_not(None)
            )
        )
        or 0
    )


def content_words(text: str) -> frozenset[str]:
    """Lower-case words without stop words, lightly stemmed (plural s)."""
    words = (w for w in _WORD.findall(text.lower()) if w not in _STOP)
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def group_gaps(gaps: Sequence[Gap], similar: Callable[[str, str], bool] | None = None) -> list[GapGroup]:
    """Single-link groups of gaps: two wordings share a group when similar(a, b), through any chain of pairs.

    Identical wordings always share a group; groups come largest first, then by first question asked.
    """
    wordings = list(dict.fromkeys(g.question for g in gaps))
    if similar is None:
        words = {w: content_words(w) for w in wordings}

        def similar(a: str, b: str) -> bool:
            wa, wb = words[a], words[b]
            return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= LEXICAL_THRESHOLD

    parent = list(range(len(wordings)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(wordings)):
        for j in range(i):
            if find(i) != find(j) and similar(wordings[i], wordings[j]):
                parent[find(i)] = find(j)
    root = {w: find(i) for i, w in enumerate(wordings)}
    groups: dict[int, GapGroup] = {}
    for gap in gaps:
        groups.setdefault(root[gap.question], GapGroup()).gaps.append(gap)
    return sorted(groups.values(), key=lambda g: (-len(g.gaps), g.gaps[0].id))


def close_gap(deck: Deck, exchange_ids: Sequence[int], question: str, answer: str) -> FaqItem:
    """Answer gaps: add the FAQ item, bump the deck's content version, mark the questions closed."""
    question, answer = " ".join((question or "").split()), (answer or "").strip()
    if not question or not answer:
        raise GapError("Write both the question and its answer.")
    if len(question) > MAX_QUESTION or len(answer) > MAX_ANSWER:
        raise GapError(
            f"Keep the question under {MAX_QUESTION} and the answer under {MAX_ANSWER} characters."
        )
    ids = {int(i) for i in exchange_ids}
    exchanges = (
        db.session.scalars(
            select(ChatExchange).where(ChatExchange.id.in_(ids), ChatExchange.deck_id == deck.id)
        ).all()
        if ids
        else []
    )
    if not exchanges or len(exchanges) != len(ids):
        raise GapError("Those questions are not this deck's.")
    if any(e.gap_closed_at is not None for e in exchanges):
        raise GapError("Those questions were already answered.")
    if any(f.question.strip().lower() == question.lower() for f in deck.faq_items):
        raise GapError("The FAQ already has that question: reword it, or edit the FAQ.")
    position = (
        db.session.scalar(select(func.max(FaqItem.position)).where(FaqItem.deck_id == deck.id)) or 0
    ) + 1
    item = FaqItem(position=position, question=question, answer=answer)
    deck.faq_items.append(item)
    now = utcnow()
    for e in exchanges:
        e.gap_closed_at = now
    deck.content_version = (deck.content_version or 1) + 1
    db.session.commit()
    return item
