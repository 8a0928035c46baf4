"""A known history of visits, stays and questions for the analytics tests, and the figures expected from it.

The expected figures are computed here from the history as written, visit by visit in plain Python,
independently of `deckchat.domain.analytics` (which folds rows in SQL): the tests compare the two.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

BASE = datetime(2026, 3, 2, 9, 0, 0)


@dataclass
class VisitSpec:
    """One visit as the test wants it stored."""

    link: int  # index into the links the test created
    visitor: str
    email: str | None
    start: datetime
    minutes: float  # wall-clock time from opening to the last report
    stays: list[tuple[int, int]]  # (slide, visible ms) in order
    questions: list[tuple[int | None, str, bool]] = field(default_factory=list)  # (slide, text, answerable)

    @property
    def last_seen(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)

    def question_time(self, i: int) -> datetime:
        return self.start + timedelta(seconds=20 + 7 * i)


def history(slide_count: int = 5, seed: int = 11) -> list[VisitSpec]:
    """Hand-made edge cases plus seeded random visits over two links."""
    specs = [
        # Reads everything in order, asks twice on slide 3 (once unanswerable), with email.
        VisitSpec(
            0,
            "vis-alice",
            "alice@example.com",
            BASE,
            12.5,
            [(1, 4000), (2, 9000), (3, 30500), (4, 12000), (5, 8000)],
            [(3, "How long does training take?", True), (3, "Do you have patents?", False)],
        ),
        # Same visitor comes back through the other link, revisits slide 2 twice, stops at slide 3.
        VisitSpec(
            1,
            "vis-alice",
            "alice@example.com",
            BASE + timedelta(days=1),
            3,
            [(1, 1000), (2, 2000), (3, 500), (2, 7000)],
            [(2, "do you have patents?", False)],
        ),
        # Bounces on slide 1 without an email.
        VisitSpec(0, "vis-bob", None, BASE + timedelta(hours=2), 0.5, [(1, 1500)]),
        # Opens the link but no report ever arrives.
        VisitSpec(1, "vis-carol", "carol@example.com", BASE + timedelta(hours=3), 0, []),
        # Jumps straight to the last slide by a thumbnail, asks with no slide known.
        VisitSpec(
            0,
            "vis-dan",
            None,
            BASE + timedelta(hours=4),
            2,
            [(1, 0), (5, 61000)],
            [(None, "What is the valuation?", False), (5, "What is the VALUATION? ", False)],
        ),
        # Markup in what visitors type must be shown as text.
        VisitSpec(
            1,
            "vis-eve",
            "<b>eve</b>@example.com",
            BASE + timedelta(hours=5),
            1,
            [(1, 3000), (2, 3000)],
            [(2, "<script>alert(1)</script> pricing?", True)],
        ),
    ]
    rng = random.Random(seed)
    for i in range(8):
        stop = rng.randint(1, slide_count)
        stays = [(n, rng.randrange(0, 60_000)) for n in range(1, stop + 1)]
        if rng.random() < 0.5:
            stays.append((rng.randint(1, stop), rng.randrange(0, 20_000)))
        questions = [
            (s, f"Random question {rng.randrange(4)}?", rng.random() < 0.6)
            for s, _ in stays
            if rng.random() < 0.3
        ]
        specs.append(
            VisitSpec(
                i % 2,
                f"vis-r{rng.randrange(5)}",
                f"r{i}@example.com" if i % 3 else None,
                BASE + timedelta(days=2, hours=i),
                rng.uniform(1, 30),
                stays,
                questions,
            )
        )
    return specs


def store(deck_id: int, link_ids: list[int], specs: list[VisitSpec]) -> list[int]:
    """Write the history to the database (inside an app context); return the visit ids in order."""
    from deckchat.extensions import db
    from deckchat.models import ChatExchange, SlideView, Visit

    ids = []
    for n, spec in enumerate(specs):
        visit = Visit(
            link_id=link_ids[spec.link],
            deck_id=deck_id,
            visitor_id=spec.visitor,
            email=spec.email,
            user_agent="test",
            started_at=spec.start,
            last_seen_at=spec.last_seen,
        )
        db.session.add(visit)
        db.session.flush()
        for j, (slide, ms) in enumerate(spec.stays):
            at = spec.start + timedelta(seconds=5 * j)
            db.session.add(
                SlideView(
                    visit_id=visit.id,
                    deck_id=deck_id,
                    view_key=f"v{n:03d}s{j:03d}",
                    slide=slide,
                    visible_ms=ms,
                    events=2,
                    started_at=at,
                    updated_at=at,
                )
            )
        for j, (slide, text, answerable) in enumerate(spec.questions):
            db.session.add(
                ChatExchange(
                    deck_id=deck_id,
                    visit_id=visit.id,
                    slide=slide,
                    question=text,
                    answer="An answer." if answerable else "I don't know.",
                    answerable=answerable,
                    kind="model" if answerable else "unknown",
                    created_at=spec.question_time(j),
                )
            )
        ids.append(visit.id)
    # The owner trying the bot (no visit) is not investor engagement: it must not count.
    db.session.add(
        ChatExchange(
            deck_id=deck_id,
            visit_id=None,
            slide=1,
            question="Owner preview question?",
            answerable=False,
            kind="unknown",
            created_at=BASE + timedelta(days=30),
        )
    )
    db.session.commit()
    return ids


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.replace(microsecond=0).isoformat() + "Z"


def expected(specs: list[VisitSpec], slide_count: int, titles: dict[int, str]) -> dict:
    """The deck figures the history should produce, visit by visit."""
    visits = len(specs)
    visitors = [s.visitor for s in specs]
    furthest = [max((slide for slide, _ in s.stays), default=0) for s in specs]
    slides = []
    for n in range(1, slide_count + 1):
        per_visit = [
            sum(ms for slide, ms in s.stays if slide == n) for s in specs if any(sl == n for sl, _ in s.stays)
        ]
        total = sum(ms for s in specs for slide, ms in s.stays if slide == n)
        reached = sum(1 for f in furthest if f >= n)
        slides.append(
            {
                "slide": n,
                "title": titles.get(n, ""),
                "views": sum(1 for s in specs for slide, _ in s.stays if slide == n),
                "visitors": len({s.visitor for s in specs if any(sl == n for sl, _ in s.stays)}),
                "visible_seconds": round(total / 1000, 3),
                "visits_viewed": len(per_visit),
                "visible_seconds_avg": round(total / len(per_visit) / 1000, 3) if per_visit else 0.0,
                "visible_seconds_median": round(statistics.median(per_visit) / 1000, 3) if per_visit else 0.0,
                "reached": reached,
                "reached_rate": round(reached / visits, 4) if visits else 0.0,
                "questions": sum(1 for s in specs for q in s.questions if q[0] == n),
            }
        )
    per_visit_total = [sum(ms for _, ms in s.stays) for s in specs]
    completed = sum(1 for f in furthest if f == slide_count)
    asked = [(q, s.question_time(j)) for s in specs for j, q in enumerate(s.questions)]
    by_text: dict[str, list] = {}
    for (slide, text, answerable), at in asked:
        by_text.setdefault(text.strip().lower(), []).append((text, answerable, at))
    top = sorted(
        by_text.items(), key=lambda kv: (-len(kv[1]), -max(a for _, _, a in kv[1]).timestamp(), kv[0])
    )
    last_times = [s.last_seen for s in specs] + [at for _, at in asked]
    return {
        "scope": {"link_id": None, "visitor_id": None},
        "slide_count": slide_count,
        "visits": visits,
        "unique_visitors": len(set(visitors)),
        "repeat_visits": visits - len(set(visitors)),
        "repeat_visitors": sum(1 for v in set(visitors) if visitors.count(v) > 1),
        "completed_visits": completed,
        "completion_rate": round(completed / visits, 4) if visits else 0.0,
        "visible_seconds": round(sum(per_visit_total) / 1000, 3),
        "visit_seconds_avg": round(sum(per_visit_total) / visits / 1000, 3) if visits else 0.0,
        "visit_seconds_median": round(statistics.median(per_visit_total) / 1000, 3) if visits else 0.0,
        "questions": len(asked),
        "unanswered_questions": sum(1 for (_, _, ok), _ in asked if not ok),
        "questions_without_slide": sum(1 for (slide, _, _), _ in asked if slide is None),
        "first_activity": _iso(min((s.start for s in specs), default=None)),
        "last_activity": _iso(max(last_times, default=None)),
        "slides": slides,
        "top_questions": [
            {
                "question": min(t for t, _, _ in rows),
                "count": len(rows),
                "unanswered": sum(1 for _, ok, _ in rows if not ok),
                "last_asked": _iso(max(a for _, _, a in rows)),
            }
            for _key, rows in top[:10]
        ],
    }


def expected_visit_rows(
    specs: list[VisitSpec], visit_ids: list[int], link_ids: list[int], labels: list[str], slide_count: int
) -> list[dict]:
    """The visits table (and CSV) the history should produce, newest first."""
    rows = []
    for spec, vid in zip(specs, visit_ids):
        top = max((slide for slide, _ in spec.stays), default=0)
        rows.append(
            {
                "visit_id": vid,
                "started_at": _iso(spec.start),
                "last_seen_at": _iso(spec.last_seen),
                "link_id": link_ids[spec.link],
                "link_label": labels[spec.link],
                "email": spec.email or "",
                "visitor_id": spec.visitor,
                "duration_seconds": round(spec.minutes * 60.0, 3),
                "visible_seconds": round(sum(ms for _, ms in spec.stays) / 1000, 3),
                "slides_viewed": len({slide for slide, _ in spec.stays}),
                "furthest_slide": top,
                "completed": top == slide_count,
                "questions": len(spec.questions),
                "unanswered_questions": sum(1 for q in spec.questions if not q[2]),
            }
        )
    return sorted(rows, key=lambda r: (r["started_at"], r["visit_id"]), reverse=True)
