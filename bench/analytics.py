"""Dashboard query benchmark: SQL aggregation against naive per-visit Python aggregation, same run and data.

    python bench/analytics.py [--visits 5000] [--events 100000] [--slides 20] [--repeat 7]
                              [--out bench/results/analytics.json]

Builds a fresh SQLite instance (schema from the migrations), one deck with `--slides` slides, `--visits`
visits over 3 links and `--events` slide views (stays) spread so that visits drop off along the deck, plus
one chat question per 10 stays. It then times everything the dashboard page computes (deck figures, the
recent-visits table, the links table and open knowledge gaps) and, as the baseline, the same deck figures
computed in Python from every row loaded through the ORM. Both must agree before anything is timed.
The budget (300 ms) applies to the whole dashboard page's queries, median of the warm runs.
Prints one JSON object; with --out also writes it there.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from report import emit  # noqa: E402 - bench/ is on the path of a script run from it

BUDGET_MS = 300


def _populate(db, deck_id_holder: dict, visits: int, events: int, slides: int, seed: int) -> None:
    """Insert the synthetic history with Core bulk inserts (fast enough to build in a few seconds)."""
    from deckchat.models import ChatExchange, Deck, ShareLink, Slide, SlideView, User, Visit

    rng = random.Random(seed)
    user = User(email="bench@example.com", password_hash="x")
    deck = Deck(
        owner=user,
        title="Bench",
        source_filename="bench.pdf",
        source_kind="pdf",
        storage_key="bench",
        slide_count=slides,
    )
    deck.slides = [Slide(number=n, title=f"Slide {n}") for n in range(1, slides + 1)]
    links = [ShareLink(deck=deck, label=f"link {i}") for i in range(3)]
    db.session.add_all([user, deck, *links])
    db.session.commit()
    deck_id_holder["deck_id"] = deck.id
    start = datetime(2026, 1, 1)
    visit_rows = []
    for i in range(visits):
        began = start + timedelta(minutes=7 * i)
        visit_rows.append(
            {
                "id": i + 1,
                "key": f"bench-visit-{i:06d}",
                "link_id": links[i % 3].id,
                "deck_id": deck.id,
                "visitor_id": f"visitor-{rng.randrange(visits * 2 // 3)}",
                "email": f"v{i}@example.com" if i % 4 == 0 else None,
                "user_agent": "bench",
                "started_at": began,
                "last_seen_at": began + timedelta(minutes=20),
            }
        )
    db.session.execute(Visit.__table__.insert(), visit_rows)
    # Each visit walks forward from slide 1 and stops somewhere; stays are spread over visits evenly.
    per_visit = max(1, events // visits)
    view_rows, question_rows = [], []
    for v in visit_rows:
        stop = rng.randint(1, slides)
        for j in range(per_visit):
            slide = min(stop, 1 + j % slides) if j < slides else rng.randint(1, stop)
            at = v["started_at"] + timedelta(seconds=30 * j)
            view_rows.append(
                {
                    "visit_id": v["id"],
                    "deck_id": deck.id,
                    "view_key": f"s{j:04d}xxxxxx",
                    "slide": slide,
                    "visible_ms": rng.randint(0, 90_000),
                    "events": 3,
                    "started_at": at,
                    "updated_at": at,
                }
            )
            if len(view_rows) % 10 == 0:
                question_rows.append(
                    {
                        "deck_id": deck.id,
                        "visit_id": v["id"],
                        "slide": slide,
                        "question": f"Question {rng.randrange(40)} about slide {slide}?",
                        "answer": "",
                        "answerable": rng.random() > 0.2,
                        "kind": "model",
                        "sources": [],
                        "engine": "",
                        "model": "",
                        "created_at": at,
                    }
                )
    for chunk in range(0, len(view_rows), 20_000):
        db.session.execute(SlideView.__table__.insert(), view_rows[chunk : chunk + 20_000])
    db.session.execute(ChatExchange.__table__.insert(), question_rows)
    db.session.commit()


def naive(deck) -> dict:
    """Baseline: load every visit, view and question of the deck and aggregate per visit in Python."""
    from deckchat.extensions import db
    from deckchat.models import ChatExchange, SlideView, Visit

    visits = db.session.scalars(db.select(Visit).filter_by(deck_id=deck.id)).all()
    views = db.session.scalars(db.select(SlideView).filter_by(deck_id=deck.id)).all()
    asked = db.session.scalars(db.select(ChatExchange).filter_by(deck_id=deck.id)).all()
    per_visit: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    stays: dict[int, int] = defaultdict(int)
    visitors: dict[int, set] = defaultdict(set)
    by_id = {v.id: v for v in visits}
    for sv in views:
        per_visit[sv.visit_id][sv.slide] += sv.visible_ms
        stays[sv.slide] += 1
        visitors[sv.slide].add(by_id[sv.visit_id].visitor_id)
    questions: dict[int, int] = defaultdict(int)
    for q in asked:
        if q.visit_id is not None:
            questions[q.slide] += 1
    furthest = [max(s) for s in per_visit.values()]
    slides = []
    for n in range(1, deck.slide_count + 1):
        times = sorted(s[n] for s in per_visit.values() if n in s)
        slides.append(
            {
                "slide": n,
                "views": stays[n],
                "visitors": len(visitors[n]),
                "visible_seconds": round(sum(times) / 1000, 3),
                "visible_seconds_median": round(statistics.median(times) / 1000, 3) if times else 0.0,
                "reached": sum(1 for f in furthest if f >= n),
                "questions": questions[n],
            }
        )
    completed = sum(1 for f in furthest if f == deck.slide_count)
    return {
        "visits": len(visits),
        "unique_visitors": len({v.visitor_id for v in visits}),
        "completion_rate": round(completed / len(visits), 4) if visits else 0.0,
        "slides": slides,
    }


def dashboard(deck) -> dict:
    """Everything the dashboard page computes from the database."""
    from deckchat.domain.analytics import deck_analytics
    from deckchat.domain.gaps import open_gap_count
    from deckchat.domain.visit_history import link_rows, visit_rows

    return {
        "stats": deck_analytics(deck),
        "visits": visit_rows(deck, limit=51),
        "links": link_rows(deck),
        "gaps": open_gap_count(deck.id),
    }


def _time(fn, repeat: int) -> dict:
    """Wall times of `repeat` runs in ms (the first run, on a cold page cache, reported apart)."""
    from deckchat.extensions import db

    runs = []
    for _ in range(repeat + 1):
        db.session.expire_all()
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
        db.session.rollback()
    warm = runs[1:]
    return {
        "first_ms": round(runs[0], 1),
        "median_ms": round(statistics.median(warm), 1),
        "max_ms": round(max(warm), 1),
        "runs": len(warm),
    }


def main() -> None:
    """Build the data, check both paths agree, time them, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=5000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--slides", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from flask_migrate import upgrade

    from deckchat import create_app
    from deckchat.domain.analytics import deck_analytics
    from deckchat.extensions import db
    from deckchat.models import Deck, SlideView

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DECKCHAT_INSTANCE_PATH"] = tmp
        app = create_app({"SECRET_KEY": "bench", "TESTING": True})
        with app.app_context():
            upgrade()
            holder: dict = {}
            t = time.perf_counter()
            _populate(db, holder, args.visits, args.events, args.slides, args.seed)
            build_s = time.perf_counter() - t
            deck = db.session.get(Deck, holder["deck_id"])
            rows = db.session.scalar(db.select(db.func.count(SlideView.id)))
            fast, slow = deck_analytics(deck), naive(deck)
            keys = (
                "slide",
                "views",
                "visitors",
                "visible_seconds",
                "visible_seconds_median",
                "reached",
                "questions",
            )
            assert [{k: s[k] for k in keys} for s in fast["slides"]] == slow["slides"], (
                "SQL and Python disagree"
            )
            assert all(fast[k] == slow[k] for k in ("visits", "unique_visitors", "completion_rate"))
            result = {
                "benchmark": "analytics dashboard queries",
                "data": {
                    "visits": args.visits,
                    "slide_views": rows,
                    "slides": args.slides,
                    "questions": fast["questions"],
                    "build_seconds": round(build_s, 1),
                },
                "sql_deck_figures": _time(lambda: deck_analytics(deck), args.repeat),
                "sql_dashboard_page": _time(lambda: dashboard(deck), args.repeat),
                "baseline_python_per_visit": _time(lambda: naive(deck), args.repeat),
                "budget_ms": BUDGET_MS,
                "machine": {
                    "python": platform.python_version(),
                    "sqlite": __import__("sqlite3").sqlite_version,
                    "cpus": os.cpu_count(),
                    "platform": platform.machine(),
                    "load_average_1m": round(os.getloadavg()[0], 2),
                },  # the machine is shared
            }
            result["within_budget"] = result["sql_dashboard_page"]["median_ms"] < BUDGET_MS
            result["speedup_vs_baseline"] = round(
                result["baseline_python_per_visit"]["median_ms"] / result["sql_deck_figures"]["median_ms"], 1
            )
            db.session.remove()
            db.engine.dispose()
    emit(result, args.out, indent=2)


if __name__ == "__main__":
    main()
