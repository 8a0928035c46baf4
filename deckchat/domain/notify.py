"""End-of-visit webhooks: find visits that ended, post a summary to their link's URL, retry with back-off.

A visit *ends* when no report has arrived for `idle` (the viewer reports every few seconds while open).
Each sweep claims a due visit with one conditional UPDATE before posting, so two sweepers (a cron job and
the serving process, or several workers) never deliver the same visit twice at once; a failed delivery is
retried after 1, 2, 4, ... minutes, up to MAX_ATTEMPTS, with the last error kept for the owner to see.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update

from ..database import write_transaction
from ..extensions import db
from ..models import Deck, ShareLink, Visit, utcnow
from .visit_history import visit_timeline

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
CLAIM = timedelta(minutes=5)  # a crashed sweeper's claim lapses after this
LOOKBACK = timedelta(days=7)  # older ended visits are never announced late (e.g. after a long outage)
TIMEOUT_SECONDS = 10
USER_AGENT = "DeckChat-Webhook/1"


def valid_webhook_url(url: str) -> bool:
    """Whether a URL may receive webhooks: http(s) with a host, at most 500 characters."""
    parts = urlsplit(url or "")
    return parts.scheme in ("http", "https") and bool(parts.hostname) and len(url) <= 500


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failed ones: 1, 2, 4, ... minutes."""
    return timedelta(minutes=2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery attempt."""

    visit_id: int
    url: str
    ok: bool
    status: int | None
    error: str | None
    attempts: int


def visit_summary(visit: Visit, deck: Deck, link: ShareLink) -> dict:
    """The JSON body of the webhook: who, which link, how long, how far, what they asked."""
    timeline = visit_timeline(visit)
    furthest = max((s["slide"] for s in timeline["stays"]), default=0)
    slides: dict[int, float] = {}
    for stay in timeline["stays"]:
        slides[stay["slide"]] = round(slides.get(stay["slide"], 0.0) + stay["visible_seconds"], 3)
    questions = [q for s in timeline["stays"] for q in s["questions"]] + timeline["other_questions"]
    return {
        "event": "visit.ended",
        "deck": {"id": deck.id, "title": deck.title, "slides": deck.slide_count},
        "link": {"id": link.id, "label": link.label},
        "visit": {
            "id": visit.id,
            "email": visit.email,
            "visitor_id": visit.visitor_id,
            "started_at": timeline["started_at"],
            "last_seen_at": timeline["last_seen_at"],
            "duration_seconds": timeline["duration_seconds"],
            "visible_seconds": timeline["visible_seconds"],
            "furthest_slide": furthest,
            "completed": bool(deck.slide_count) and furthest >= deck.slide_count,
            "slides": [{"slide": n, "visible_seconds": s} for n, s in sorted(slides.items())],
            "questions": [
                {"slide": q["slide"], "question": q["question"], "answered": q["answerable"]}
                for q in sorted(questions, key=lambda q: (q["asked_at"] or "", q["id"]))
            ],
        },
    }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Report a redirect as the receiver's answer instead of following it (nowhere but the saved URL)."""

    def redirect_request(self, *args, **kwargs):
        """Follow nothing."""
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, body: dict, timeout: float = TIMEOUT_SECONDS) -> int:
    """POST a JSON body; return the HTTP status (raises OSError on network failure)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        # Only http(s) URLs reach here: links are checked with valid_webhook_url when saved.
        with _opener.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def due_visits(now: datetime, idle: timedelta, limit: int = 100) -> list[int]:
    """Ids of ended, unannounced visits on links with a webhook whose next try is due."""
    ids = list(
        db.session.scalars(
            select(Visit.id)
            .join(ShareLink, ShareLink.id == Visit.link_id)
            .where(
                ShareLink.webhook_url.is_not(None),
                ShareLink.webhook_url != "",
                Visit.notified_at.is_(None),
                Visit.notify_attempts < MAX_ATTEMPTS,
                Visit.last_seen_at <= now - idle,
                Visit.last_seen_at >= now - LOOKBACK,
                or_(Visit.notify_next_at.is_(None), Visit.notify_next_at <= now),
            )
            .order_by(Visit.last_seen_at)
            .limit(limit)
        )
    )
    db.session.rollback()  # end the read snapshot before any write
    return ids


def _claim(visit_id: int, now: datetime, idle: timedelta) -> bool:
    """Take a due visit for this sweeper (one conditional UPDATE: only one claimant wins)."""
    with write_transaction() as conn:
        return (
            conn.execute(
                update(Visit)
                .where(
                    Visit.id == visit_id,
                    Visit.notified_at.is_(None),
                    Visit.last_seen_at <= now - idle,
                    or_(Visit.notify_next_at.is_(None), Visit.notify_next_at <= now),
                )
                .values(notify_next_at=now + CLAIM)
            ).rowcount
            == 1
        )


def deliver(visit_id: int, now: datetime | None = None, poster=post_json) -> Delivery:
    """Post one visit's summary and record the outcome (delivered, or the error and the next try)."""
    now = now or utcnow()
    visit = db.session.get(Visit, visit_id)
    link, deck = visit.link, db.session.get(Deck, visit.deck_id)
    url, body, attempts = link.webhook_url, visit_summary(visit, deck, link), (visit.notify_attempts or 0) + 1
    db.session.rollback()  # no transaction stays open while the receiver takes its time
    status, error = None, None
    try:
        status = poster(url, body)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except (OSError, ValueError) as exc:  # refused, timed out, DNS, malformed URL
        error = f"{type(exc).__name__}: {exc}"[:300]
    if error is None:
        values = {"notified_at": utcnow(), "notify_next_at": None, "notify_error": None}
    else:
        log.warning("webhook for visit %s failed (attempt %s): %s", visit_id, attempts, error)
        values = {"notify_error": error, "notify_next_at": now + backoff(attempts)}
    with write_transaction() as conn:
        conn.execute(update(Visit).where(Visit.id == visit_id).values(notify_attempts=attempts, **values))
    return Delivery(visit_id, url, error is None, status, error, attempts)


def sweep(idle: timedelta, now: datetime | None = None, poster=post_json, limit: int = 100) -> list[Delivery]:
    """Deliver every due end-of-visit webhook once; return what happened to each."""
    now = now or utcnow()
    done = []
    for visit_id in due_visits(now, idle, limit):
        if _claim(visit_id, now, idle):
            done.append(deliver(visit_id, now, poster))
    return done
