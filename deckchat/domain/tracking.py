"""Visits and visible-time reports: validated, clamped and stored so that no report is lost or counted twice."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..database import write_transaction
from ..extensions import db
from ..models import Deck, ShareLink, SlideView, Visit, utcnow

_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CLOCK_SLACK_SECONDS = 10  # reports may arrive a little after the wall-clock time they cover


class TrackingError(ValueError):
    """A report that is malformed or names an unknown visit."""


@dataclass(frozen=True)
class ViewReport:
    """One browser report: the running visible time of one stay on one slide."""

    visit_key: str
    view_key: str
    slide: int
    visible_ms: int


def parse_report(data: object) -> ViewReport:
    """Validate a report's JSON body; raise TrackingError with the reason."""
    if not isinstance(data, dict):
        raise TrackingError("body must be a JSON object")
    visit, view = data.get("visit"), data.get("view")
    slide, ms = data.get("slide"), data.get("visible_ms")
    if not isinstance(visit, str) or not _KEY.match(visit):
        raise TrackingError("visit must be a visit key")
    if not isinstance(view, str) or not _KEY.match(view):
        raise TrackingError("view must be 8-64 characters of [A-Za-z0-9_-]")
    if isinstance(slide, bool) or not isinstance(slide, int) or slide < 1:
        raise TrackingError("slide must be a positive integer")
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms != ms or ms < 0:
        raise TrackingError("visible_ms must be a non-negative number")
    return ViewReport(visit, view, slide, int(min(ms, 2**31 - 1)))


def start_visit(link: ShareLink, visitor_id: str, email: str | None, user_agent: str) -> Visit:
    """Record one opening of a share link."""
    link_id, deck_id = link.id, link.deck_id
    # The request has read the link in a deferred transaction; on SQLite that snapshot cannot take the write
    # lock once another writer has committed (it fails at once instead of waiting), so insert in a fresh one.
    db.session.commit()
    visit = Visit(link_id=link_id, deck_id=deck_id, visitor_id=visitor_id[:64], email=email,
                  user_agent=(user_agent or "")[:512])
    db.session.add(visit)
    db.session.commit()
    return visit


def record_view(report: ViewReport, max_view_seconds: int, now: datetime | None = None) -> int:
    """Store a report (upsert keeping the largest total per stay); return the reported ms after clamping."""
    now = now or utcnow()
    with write_transaction() as conn:
        row = conn.execute(
            select(Visit.id, Visit.deck_id, Visit.started_at, Deck.slide_count)
            .join(Deck, Deck.id == Visit.deck_id)
            .where(Visit.key == report.visit_key)
        ).first()
        if row is None:
            raise TrackingError("unknown visit")
        if report.slide > row.slide_count:
            raise TrackingError(f"slide must be between 1 and {row.slide_count}")
        # Nobody sees a slide for longer than the visit has lasted.
        elapsed_ms = ((now - row.started_at).total_seconds() + CLOCK_SLACK_SECONDS) * 1000
        visible = int(max(0, min(report.visible_ms, elapsed_ms, max_view_seconds * 1000)))
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(SlideView)
        table = SlideView.__table__
        stmt = insert.values(
            visit_id=row.id, deck_id=row.deck_id, view_key=report.view_key, slide=report.slide,
            visible_ms=visible, events=1, started_at=now, updated_at=now,
        ).on_conflict_do_update(
            index_elements=["visit_id", "view_key"],
            set_={
                "visible_ms": case(
                    (insert.excluded.visible_ms > table.c.visible_ms, insert.excluded.visible_ms),
                    else_=table.c.visible_ms,
                ),
                "events": table.c.events + 1,
                "updated_at": now,
            },
        )
        conn.execute(stmt)
        conn.execute(update(Visit).where(Visit.id == row.id).values(last_seen_at=now))
    return visible
