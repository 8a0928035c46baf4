"""Visits one by one: the visits table and its CSV rows, every question asked, per-link figures, and one visit's
timeline."""

from __future__ import annotations

from sqlalchemy import case, distinct, func, select

from ..extensions import db
from ..models import ChatExchange, Deck, ShareLink, SlideView, Visit
from .analytics import WHOLE_DECK, Scope, iso

VISIT_COLUMNS = [
    "visit_id",
    "started_at",
    "last_seen_at",
    "link_id",
    "link_label",
    "email",
    "visitor_id",
    "duration_seconds",
    "visible_seconds",
    "slides_viewed",
    "furthest_slide",
    "completed",
    "questions",
    "unanswered_questions",
]


def _wall_seconds(started, last) -> float:
    return round(max(0.0, (last - started).total_seconds()), 3) if started and last else 0.0


QUESTION_COLUMNS = [
    "asked_at",
    "visit_id",
    "link_id",
    "link_label",
    "email",
    "visitor_id",
    "slide",
    "question",
    "answer",
    "answered",
    "kind",
    "sources",
    "feedback",
    "engine",
    "model",
    "total_ms",
]
_FEEDBACK = {1: "up", -1: "down"}


def question_rows(deck: Deck, scope: Scope = WHOLE_DECK) -> list[dict]:
    """Every question investors asked in the scope's visits, oldest first, with the answer and what it cited."""
    query = (
        select(ChatExchange, Visit.link_id, ShareLink.label, Visit.email, Visit.visitor_id)
        .join(Visit, Visit.id == ChatExchange.visit_id)
        .join(ShareLink, ShareLink.id == Visit.link_id)
        .where(ChatExchange.deck_id == deck.id, *scope.visit_filter(deck.id))
        .order_by(ChatExchange.created_at, ChatExchange.id)
    )
    return [
        {
            "asked_at": iso(ex.created_at), "visit_id": ex.visit_id, "link_id": link_id, "link_label": label or "",
            "email": email or "", "visitor_id": visitor, "slide": ex.slide, "question": ex.question,
            "answer": ex.answer, "answered": ex.answerable and ex.kind != "error", "kind": ex.kind,
            "sources": "; ".join(str(s.get("source", "")) for s in ex.sources or [] if isinstance(s, dict)),
            "feedback": _FEEDBACK.get(ex.feedback, ""), "engine": ex.engine, "model": ex.model,
            "total_ms": None if ex.total_ms is None else round(ex.total_ms, 1),
        }
        for ex, link_id, label, email, visitor in db.session.execute(query)
    ]


def visit_rows(
    deck: Deck, scope: Scope = WHOLE_DECK, *, limit: int | None = None, offset: int = 0
) -> list[dict]:
    """Visits newest first with their duration, visible time, how far they got and what they asked."""
    order = (Visit.started_at.desc(), Visit.id.desc())
    view_conds = [SlideView.deck_id == deck.id]
    ask_conds = [ChatExchange.deck_id == deck.id, ChatExchange.visit_id.is_not(None)]
    if limit is not None:
        # One page: fold only its visits' stays, not the whole deck's.
        page = list(
            db.session.scalars(
                select(Visit.id)
                .where(*scope.visit_filter(deck.id))
                .order_by(*order)
                .offset(offset)
                .limit(limit)
            )
        )
        view_conds.append(SlideView.visit_id.in_(page))
        ask_conds.append(ChatExchange.visit_id.in_(page))
    views = (
        select(
            SlideView.visit_id.label("visit_id"),
            func.sum(SlideView.visible_ms).label("ms"),
            func.count(distinct(SlideView.slide)).label("viewed"),
            func.max(SlideView.slide).label("top"),
        )
        .where(*view_conds)
        .group_by(SlideView.visit_id)
        .subquery()
    )
    asked = (
        select(
            ChatExchange.visit_id.label("visit_id"),
            func.count(ChatExchange.id).label("n"),
            func.sum(case((ChatExchange.answerable.is_(False), 1), else_=0)).label("unanswered"),
        )
        .where(*ask_conds)
        .group_by(ChatExchange.visit_id)
        .subquery()
    )
    query = (
        select(
            Visit.id,
            Visit.started_at,
            Visit.last_seen_at,
            Visit.link_id,
            ShareLink.label,
            Visit.email,
            Visit.visitor_id,
            views.c.ms,
            views.c.viewed,
            views.c.top,
            asked.c.n,
            asked.c.unanswered,
        )
        .join(ShareLink, ShareLink.id == Visit.link_id)
        .outerjoin(views, views.c.visit_id == Visit.id)
        .outerjoin(asked, asked.c.visit_id == Visit.id)
        .where(*scope.visit_filter(deck.id))
        .order_by(*order)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for (
        vid,
        started,
        last,
        link_id,
        label,
        email,
        visitor,
        ms,
        viewed,
        top,
        n,
        unanswered,
    ) in db.session.execute(query):
        rows.append(
            {
                "visit_id": vid,
                "started_at": iso(started),
                "last_seen_at": iso(last),
                "link_id": link_id,
                "link_label": label or "",
                "email": email or "",
                "visitor_id": visitor,
                "duration_seconds": _wall_seconds(started, last),
                "visible_seconds": round((ms or 0) / 1000, 3),
                "slides_viewed": int(viewed or 0),
                # An earlier, longer version may have had slides past today's last one.
                "furthest_slide": min(int(top or 0), deck.slide_count),
                "completed": bool(deck.slide_count) and int(top or 0) >= deck.slide_count,
                "questions": int(n or 0),
                "unanswered_questions": int(unanswered or 0),
            }
        )
    return rows


def link_rows(deck: Deck) -> list[dict]:
    """Each share link of the deck with its visits, unique visitors and last activity, newest link first."""
    rows = db.session.execute(
        select(
            ShareLink.id,
            ShareLink.label,
            ShareLink.token,
            ShareLink.webhook_url,
            func.count(Visit.id),
            func.count(distinct(Visit.visitor_id)),
            func.max(Visit.last_seen_at),
        )
        .outerjoin(Visit, Visit.link_id == ShareLink.id)
        .where(ShareLink.deck_id == deck.id)
        .group_by(ShareLink.id, ShareLink.label, ShareLink.token, ShareLink.webhook_url)
        .order_by(ShareLink.id.desc())
    ).all()
    return [
        {
            "link_id": i,
            "label": label or "",
            "token": token,
            "webhook": bool(hook),
            "visits": int(n),
            "unique_visitors": int(u),
            "last_activity": iso(last),
        }
        for i, label, token, hook, n, u, last in rows
    ]


def deck_visit(deck: Deck, visit_id: int) -> Visit | None:
    """The visit if it belongs to this deck, else None."""
    visit = db.session.get(Visit, visit_id)
    return visit if visit is not None and visit.deck_id == deck.id else None


def deck_link(deck: Deck, link_id: int) -> ShareLink | None:
    """The share link if it belongs to this deck, else None."""
    link = db.session.get(ShareLink, link_id)
    return link if link is not None and link.deck_id == deck.id else None


def visit_timeline(visit: Visit) -> dict:
    """A visit as its stays in order, each with visible time and the questions asked while it was on screen.

    A question belongs to the latest stay on its slide that began before it was asked; questions that
    match no stay (asked before the first report arrived, or with no slide) are listed apart.
    """
    stays = db.session.execute(
        select(SlideView.slide, SlideView.visible_ms, SlideView.started_at, SlideView.updated_at)
        .where(SlideView.visit_id == visit.id)
        .order_by(SlideView.started_at, SlideView.id)
    ).all()
    asked = db.session.execute(
        select(
            ChatExchange.id,
            ChatExchange.slide,
            ChatExchange.question,
            ChatExchange.answer,
            ChatExchange.answerable,
            ChatExchange.kind,
            ChatExchange.created_at,
        )
        .where(ChatExchange.visit_id == visit.id)
        .order_by(ChatExchange.created_at, ChatExchange.id)
    ).all()
    items = [
        {
            "slide": s,
            "visible_seconds": round(ms / 1000, 3),
            "started_at": iso(t0),
            "updated_at": iso(t1),
            "questions": [],
        }
        for s, ms, t0, t1 in stays
    ]
    loose = []
    for qid, slide, question, answer, answerable, kind, created in asked:
        entry = {
            "id": qid,
            "slide": slide,
            "question": question,
            "answer": answer,
            "answerable": bool(answerable),
            "kind": kind,
            "asked_at": iso(created),
        }
        home = None
        for i, (s, _ms, t0, _t1) in enumerate(stays):
            if s == slide and t0 <= created:
                home = i
        (items[home]["questions"] if home is not None else loose).append(entry)
    return {
        "visit_id": visit.id,
        "link_id": visit.link_id,
        "email": visit.email or "",
        "visitor_id": visit.visitor_id,
        "started_at": iso(visit.started_at),
        "last_seen_at": iso(visit.last_seen_at),
        "duration_seconds": _wall_seconds(visit.started_at, visit.last_seen_at),
        "visible_seconds": round(sum(s[1] for s in stays) / 1000, 3),
        "stays": items,
        "other_questions": loose,
        "questions": len(asked),
        "notified_at": iso(visit.notified_at),
    }


def visitor_visits(deck: Deck, visitor_id: str) -> list[dict]:
    """Every visit of one visitor to this deck, newest first, as visits-table rows."""
    return visit_rows(deck, Scope(visitor_id=visitor_id))
