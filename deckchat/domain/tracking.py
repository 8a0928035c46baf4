"""Visits and visible-time reports: validated, clamped and stored so that no report is lost or counted twice."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..database import lock_for_writing, write_transaction
from ..extensions import db
from ..models import Deck, ShareLink, SlideView, Visit, utcnow

_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CLOCK_SLACK_SECONDS = 10  # reports may arrive a little after the wall-clock time they cover


class TrackingError(ValueError):
    """A report that is malformed or names an unknown visit."""


class UnknownVisitError(TrackingError):
    """A report for a visit key nobody was given."""


class LinkGoneError(TrackingError):
    """A report for a visit whose link has been revoked or has expired: it is not recorded."""


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


def start_visit(link: ShareLink, visitor_id: str, email: str | None, user_agent: str,
                resume_within: timedelta | None = None, now: datetime | None = None) -> Visit:
    """Record one opening of a share link, or go on with this browser's visit of it when that is still live.

    A reload or a second tab within `resume_within` of the visit's last report (the idle time after which a
    visit has ended) is the same visit: counting it twice would inflate visits and hide where people stopped.
    A visit already announced as ended, or one under another email, is never resumed.
    """
    link_id, deck_id = link.id, link.deck_id
    visitor_id, now = visitor_id[:64], now or utcnow()
    # Look up and write under the write lock: the request's own read snapshot could not take it once a heartbeat
    # has committed, and two tabs opening at once must not both start a visit.
    lock_for_writing()
    # PostgreSQL has no database-wide write lock: the link's row serialises its openings instead (a no-op on SQLite).
    db.session.execute(select(ShareLink.id).where(ShareLink.id == link_id).with_for_update())
    if resume_within is not None:
        live = db.session.scalars(
            select(Visit).where(
                Visit.link_id == link_id, Visit.visitor_id == visitor_id,
                Visit.email.is_(None) if email is None else Visit.email == email,
                Visit.notified_at.is_(None), Visit.last_seen_at > now - resume_within,
            ).order_by(Visit.last_seen_at.desc()).limit(1)
        ).first()
        if live is not None:
            live.last_seen_at = now
            db.session.commit()
            return live
    visit = Visit(link_id=link_id, deck_id=deck_id, visitor_id=visitor_id, email=email,
                  user_agent=(user_agent or "")[:512], started_at=now, last_seen_at=now)
    db.session.add(visit)
    db.session.commit()
    return visit


def record_view(report: ViewReport, max_view_seconds: int, now: datetime | None = None) -> int:
    """Store a report (upsert keeping the largest total per stay); return the reported ms after clamping."""
    now = now or utcnow()
    with write_transaction() as conn:
        row = conn.execute(
            select(Visit.id, Visit.deck_id, Visit.started_at, Deck.slide_count,
                   ShareLink.revoked_at, ShareLink.expires_at)
            .join(Deck, Deck.id == Visit.deck_id)
            .join(ShareLink, ShareLink.id == Visit.link_id)
            .where(Visit.key == report.visit_key)
        ).first()
        if row is None:
            raise UnknownVisitError("unknown visit")
        # A revoked link stops counting at once; an expired one after the slack its last reports may need.
        if row.revoked_at is not None or (
                row.expires_at is not None and now >= row.expires_at + timedelta(seconds=CLOCK_SLACK_SECONDS)):
            raise LinkGoneError("this link is no longer active")
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
