"""Per-deck engagement figures: the database folds the stays, Python finishes the few per-slide figures.

Definitions the dashboard, the JSON API, the CLI and the CSV exports share:

- A *visit* is one opening of a share link; a *stay* is one SlideView row (one continuous look at a slide).
- A visit's *visible time on a slide* is the sum of its stays' visible time on that slide.
- ``visible_seconds_avg`` and ``visible_seconds_median`` of a slide are taken over the visits that viewed
  that slide (have at least one stay on it), so a skipped slide does not drag its own figures to zero.
- A visit *reached* slide N when it viewed slide N or any later slide (its furthest slide is >= N): the
  drop-off funnel (``reached_rate`` = reached / visits) therefore never rises from one slide to the next.
  A visit that never reported a view reached no slide.
- A visit is *completed* when it reached the last slide; ``completion_rate`` = completed / visits.
- *Questions* are chat exchanges asked during a visit, counted on the slide that was on screen.
- ``repeat_visits`` are visits that are not their visitor's first (visits - unique visitors).
- ``visit_seconds_avg`` and ``visit_seconds_median`` are over all visits (one that reported nothing counts 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import String, case, cast, distinct, func, select

from ..extensions import db
from ..models import ChatExchange, Deck, Slide, SlideView, Visit

TOP_QUESTIONS = 10


@dataclass(frozen=True)
class Scope:
    """Which visits of a deck the figures cover: all, one link's, or one visitor's."""

    link_id: int | None = None
    visitor_id: str | None = None

    def visit_filter(self, deck_id: int) -> list:
        """SQL conditions on Visit that select the scope's visits."""
        conds = [Visit.deck_id == deck_id]
        if self.link_id is not None:
            conds.append(Visit.link_id == self.link_id)
        if self.visitor_id is not None:
            conds.append(Visit.visitor_id == self.visitor_id)
        return conds

    @property
    def narrowed(self) -> bool:
        """Whether the scope is narrower than the whole deck."""
        return self.link_id is not None or self.visitor_id is not None

    def to_dict(self) -> dict:
        """The scope as it appears in the JSON API."""
        return {"link_id": self.link_id, "visitor_id": self.visitor_id}


WHOLE_DECK = Scope()


def iso(value: datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 with a Z, or None."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def _seconds(ms) -> float:
    return round(float(ms or 0) / 1000, 3)


def _views_in_scope(deck_id: int, scope: Scope) -> list:
    """Conditions on SlideView for the scope (the visit subquery is only needed when narrowed)."""
    conds = [SlideView.deck_id == deck_id]
    if scope.narrowed:
        conds.append(SlideView.visit_id.in_(select(Visit.id).where(*scope.visit_filter(deck_id))))
    return conds


def _per_visit_slide(deck_id: int, scope: Scope) -> list[tuple[int, int, list[int], list[int]]]:
    """Per slide: its stays, the visits that viewed it and, in the same order, each one's visible ms on it.

    The database folds the stays (100,000 on a busy deck) into one (visit, slide) row each, walking the
    covering index (deck_id, visit_id, slide, visible_ms) in order, and hands them over as one
    "visit:ms,visit:ms,..." string per slide: the figures that need each visit's own total (medians,
    distinct visitors, the funnel) are finished in Python. Fetching the (visit, slide) rows one by one
    costs more in row handling than the whole query; window functions for medians cost more on SQLite.
    """
    pv = (
        select(
            SlideView.visit_id.label("visit"),
            SlideView.slide.label("slide"),
            func.sum(SlideView.visible_ms).label("ms"),
            func.count().label("stays"),
        )
        .where(*_views_in_scope(deck_id, scope))
        .group_by(SlideView.visit_id, SlideView.slide)
        .subquery()
    )
    pair = cast(pv.c.visit, String).concat(":").concat(cast(pv.c.ms, String))  # || on SQLite and PostgreSQL
    rows = db.session.execute(
        select(pv.c.slide, func.sum(pv.c.stays), func.aggregate_strings(pair, ",")).group_by(pv.c.slide)
    ).all()
    out = []
    for slide, stays, packed in rows:
        flat = list(map(int, packed.replace(":", ",").split(","))) if packed else []
        out.append((slide, int(stays or 0), flat[0::2], flat[1::2]))
    return out


@dataclass(frozen=True)
class _SlideFold:
    """One slide's figures after folding: stays, visible ms, distinct visitors, visits that viewed it, median."""

    stays: int = 0
    ms: int = 0
    visitors: int = 0
    viewed: int = 0
    median_ms: float = 0.0


def _fold(deck_id: int, scope: Scope) -> tuple[dict[int, _SlideFold], dict[int, int], list[int]]:
    """Per-slide figures, how many visits ended (went furthest) at each slide, and each visit's visible ms.

    numpy does the per-visit work (52,000 visit-slide pairs on the benchmark deck) in a few milliseconds.
    """
    per_slide = sorted(_per_visit_slide(deck_id, scope))
    if not per_slide:
        return {}, {}, []
    visits = np.concatenate([np.asarray(v, dtype=np.int64) for _s, _n, v, _m in per_slide])
    ms = np.concatenate([np.asarray(m, dtype=np.int64) for _s, _n, _v, m in per_slide])
    bounds = np.cumsum([0] + [len(v) for _s, _n, v, _m in per_slide])
    ids, inverse = np.unique(visits, return_inverse=True)  # visit ids are global: index them densely
    furthest = np.zeros(len(ids), dtype=np.int64)
    np.maximum.at(furthest, inverse, np.repeat([s for s, *_ in per_slide], np.diff(bounds)))
    visitor_of = dict(
        db.session.execute(select(Visit.id, Visit.visitor_id).where(*scope.visit_filter(deck_id))).all()
    )
    codes: dict[str | None, int] = {}
    visitor = np.asarray([codes.setdefault(visitor_of.get(int(i)), len(codes)) for i in ids])[inverse]
    slides = {}
    for (slide, stays, _v, _m), a, b in zip(per_slide, bounds[:-1], bounds[1:], strict=True):
        slides[slide] = _SlideFold(
            stays, int(ms[a:b].sum()), len(np.unique(visitor[a:b])), int(b - a), float(np.median(ms[a:b]))
        )
    ends_at = dict(zip(*np.unique(furthest, return_counts=True), strict=True))
    visit_ms = np.bincount(inverse, weights=ms).astype(np.int64)  # exact: ms totals stay far below 2**53
    return slides, {int(k): int(v) for k, v in ends_at.items()}, visit_ms.tolist()


def _visit_summary(deck_id: int, scope: Scope) -> dict:
    """Visits, unique visitors, repeat visitors and first/last activity of the scope."""
    conds = scope.visit_filter(deck_id)
    visits, visitors, first, last = db.session.execute(
        select(
            func.count(Visit.id),
            func.count(distinct(Visit.visitor_id)),
            func.min(Visit.started_at),
            func.max(Visit.last_seen_at),
        ).where(*conds)
    ).one()
    repeaters = db.session.scalar(
        select(func.count()).select_from(
            select(Visit.visitor_id)
            .where(*conds)
            .group_by(Visit.visitor_id)
            .having(func.count(Visit.id) > 1)
            .subquery()
        )
    )
    return {
        "visits": int(visits or 0),
        "unique_visitors": int(visitors or 0),
        "repeat_visitors": int(repeaters or 0),
        "first": first,
        "last": last,
    }


def _question_counts(deck_id: int, scope: Scope) -> tuple[dict, int, int]:
    """Questions and unanswerable questions per slide (None: no slide), asked during the scope's visits."""
    rows = db.session.execute(
        select(
            ChatExchange.slide,
            func.count(ChatExchange.id),
            func.sum(case((ChatExchange.answerable.is_(False), 1), else_=0)),
        )
        .join(Visit, Visit.id == ChatExchange.visit_id)
        .where(ChatExchange.deck_id == deck_id, *scope.visit_filter(deck_id))
        .group_by(ChatExchange.slide)
    ).all()
    per_slide = {r[0]: int(r[1]) for r in rows}
    return per_slide, sum(per_slide.values()), sum(int(r[2] or 0) for r in rows)


def top_questions(deck_id: int, scope: Scope = WHOLE_DECK, limit: int = TOP_QUESTIONS) -> list[dict]:
    """The most asked questions (same words, ignoring case and outer spaces), most asked first."""
    key = func.lower(func.trim(ChatExchange.question))
    rows = db.session.execute(
        select(
            func.min(ChatExchange.question),
            func.count(ChatExchange.id),
            func.sum(case((ChatExchange.answerable.is_(False), 1), else_=0)),
            func.max(ChatExchange.created_at),
        )
        .join(Visit, Visit.id == ChatExchange.visit_id)
        .where(ChatExchange.deck_id == deck_id, *scope.visit_filter(deck_id))
        .group_by(key)
        .order_by(func.count(ChatExchange.id).desc(), func.max(ChatExchange.created_at).desc(), key)
        .limit(limit)
    ).all()
    return [
        {"question": q, "count": int(n), "unanswered": int(u or 0), "last_asked": iso(t)}
        for q, n, u, t in rows
    ]


def _median(values: list[int]) -> float:
    """Median of a non-empty list (mean of the two middle values for an even count)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _last_question_at(deck_id: int, scope: Scope) -> datetime | None:
    """When the scope's latest question was asked."""
    return db.session.scalar(
        select(func.max(ChatExchange.created_at))
        .join(Visit, Visit.id == ChatExchange.visit_id)
        .where(ChatExchange.deck_id == deck_id, *scope.visit_filter(deck_id))
    )


def deck_activity(deck_ids: list[int]) -> dict[int, dict]:
    """For the deck list: each deck's visits and last activity ({"visits": 0, "last_seen_at": None} when none)."""
    found = {deck_id: {"visits": 0, "last_seen_at": None} for deck_id in deck_ids}
    if deck_ids:
        rows = db.session.execute(
            select(Visit.deck_id, func.count(Visit.id), func.max(Visit.last_seen_at))
            .where(Visit.deck_id.in_(deck_ids)).group_by(Visit.deck_id)
        )
        for deck_id, visits, last in rows:
            found[deck_id] = {"visits": visits, "last_seen_at": iso(last)}
    return found


def _capped(ends_at: dict[int, int], slide_count: int) -> dict[int, int]:
    """Visits by furthest slide, those that went past the last slide of an earlier, longer version counted as
    ending on the last slide (they reached every slide there is now)."""
    if not slide_count:
        return ends_at
    out = {k: v for k, v in ends_at.items() if k < slide_count}
    out[slide_count] = sum(v for k, v in ends_at.items() if k >= slide_count)
    return out


def deck_analytics(deck: Deck, scope: Scope = WHOLE_DECK) -> dict:
    """Every figure of the dashboard for a deck (or one link's or visitor's visits), as plain data."""
    summary = _visit_summary(deck.id, scope)
    visits = summary["visits"]
    per_slide, ends_at, visit_ms = _fold(deck.id, scope)
    ends_at = _capped(ends_at, deck.slide_count)
    questions, asked, unanswered = _question_counts(deck.id, scope)
    titles = dict(db.session.execute(select(Slide.number, Slide.title).where(Slide.deck_id == deck.id)).all())

    slides, reached = [], len(visit_ms)
    for number in range(1, deck.slide_count + 1):
        acc = per_slide.get(number) or _SlideFold()
        viewed = acc.viewed
        slides.append(
            {
                "slide": number,
                "title": titles.get(number) or "",
                "views": acc.stays,
                "visitors": acc.visitors,
                "visible_seconds": _seconds(acc.ms),
                "visits_viewed": viewed,
                "visible_seconds_avg": _seconds(acc.ms / viewed) if viewed else 0.0,
                "visible_seconds_median": _seconds(acc.median_ms),
                "reached": reached,
                "reached_rate": round(reached / visits, 4) if visits else 0.0,
                "questions": questions.get(number, 0),
            }
        )
        reached -= ends_at.get(number, 0)
    completed = ends_at.get(deck.slide_count, 0) if deck.slide_count else 0
    totals = visit_ms + [0] * max(0, visits - len(visit_ms))
    last = max(
        (t for t in (summary["last"], _last_question_at(deck.id, scope)) if t is not None), default=None
    )
    return {
        "deck_id": deck.id,
        "scope": scope.to_dict(),
        "slide_count": deck.slide_count,
        "visits": visits,
        "unique_visitors": summary["unique_visitors"],
        "repeat_visits": visits - summary["unique_visitors"],
        "repeat_visitors": summary["repeat_visitors"],
        "completed_visits": completed,
        "completion_rate": round(completed / visits, 4) if visits else 0.0,
        "visible_seconds": _seconds(sum(totals)),
        "visit_seconds_avg": _seconds(sum(totals) / visits) if visits else 0.0,
        "visit_seconds_median": _seconds(_median(totals)) if totals else 0.0,
        "questions": asked,
        "unanswered_questions": unanswered,
        "questions_without_slide": questions.get(None, 0),
        "first_activity": iso(summary["first"]),
        "last_activity": iso(last),
        "slides": slides,
        "top_questions": top_questions(deck.id, scope),
    }
