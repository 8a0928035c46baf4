"""Stored model comparisons of a deck: runs and their progress, replayed questions, blind votes and ratings.

Ratings: Bradley-Terry strengths fitted by minorisation-maximisation (Hunter 2004), a tie counting as half a
win for each side, with one virtual win and one virtual loss against a fixed reference so that a model that
won (or lost) every vote still gets a finite rating. Shown on the Elo scale (1000 = the average compared model,
+400 = ten times the odds of winning), with a 95% interval from the inverse Fisher information: analytical rather than
bootstrapped, because a bootstrap of a handful of identical votes would claim no uncertainty at all.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from itertools import combinations
from typing import Any

from sqlalchemy import func, select, update

from ..extensions import db
from ..models import ChatExchange, ComparisonRun, ComparisonVote, Deck, utcnow

ACTIVE = ("queued", "waiting", "running")
WINNERS = ("left", "right", "tie")
BASE = 1000.0
ELO = 400 / math.log(10)  # rating points per unit of log-strength


def create_run(deck: Deck, models: list[str], source: str, settings: dict[str, Any]) -> ComparisonRun:
    """Record a comparison that is about to start."""
    run = ComparisonRun(deck_id=deck.id, models=list(models), source=source, settings=dict(settings),
                        progress={"done": 0, "total": 0, "message": "queued"})
    db.session.add(run)
    db.session.commit()
    return run


def get_run(deck: Deck, run_id: int) -> ComparisonRun | None:
    """The deck's comparison with this id, or None."""
    run = db.session.get(ComparisonRun, run_id)
    return run if run is not None and run.deck_id == deck.id else None


def list_runs(deck: Deck, limit: int = 20) -> list[ComparisonRun]:
    """The deck's latest comparisons, newest first."""
    return list(db.session.scalars(select(ComparisonRun).where(ComparisonRun.deck_id == deck.id)
                                   .order_by(ComparisonRun.id.desc()).limit(limit)))


def active_run() -> ComparisonRun | None:
    """A comparison that is queued or running on this server (any deck), if there is one."""
    return db.session.scalar(select(ComparisonRun).where(ComparisonRun.status.in_(ACTIVE)).limit(1))


def fail_orphans(message: str = "interrupted: the server stopped while it ran") -> int:
    """Mark comparisons that no job is running any more (the process restarted) as failed."""
    result = db.session.execute(update(ComparisonRun).where(ComparisonRun.status.in_(ACTIVE))
                                .values(status="failed", error=message, finished_at=utcnow()))
    db.session.commit()
    return result.rowcount or 0


def set_progress(run_id: int, *, status: str | None = None, **progress: Any) -> None:
    """Store a running comparison's status and progress (read by the page's polling)."""
    run = db.session.get(ComparisonRun, run_id)
    if run is None:
        return
    if status is not None:
        run.status = status
        if status == "running" and run.started_at is None:
            run.started_at = utcnow()
    if progress:
        run.progress = {**(run.progress or {}), **progress}
    db.session.commit()


def beat(run_id: int) -> None:
    """Record that the comparison's job is alive."""
    db.session.execute(update(ComparisonRun).where(ComparisonRun.id == run_id).values(beat_at=utcnow()))
    db.session.commit()


def finish_run(run_id: int, *, report: dict | None = None, error: str | None = None) -> None:
    """Store the report (done) or the reason it stopped (failed)."""
    run = db.session.get(ComparisonRun, run_id)
    if run is None:
        return
    run.status, run.report, run.error, run.finished_at = ("failed" if error else "done"), report, error, utcnow()
    db.session.commit()


def replay_questions(deck_id: int, limit: int = 20) -> list[tuple[str, int | None]]:
    """Distinct questions investors asked the deck's assistant, oldest first, with the slide on screen."""
    seen: set[str] = set()
    out: list[tuple[str, int | None]] = []
    rows = db.session.execute(select(ChatExchange.question, ChatExchange.slide)
                              .where(ChatExchange.deck_id == deck_id).order_by(ChatExchange.id))
    for question, slide in rows:
        key = " ".join(question.lower().split()).rstrip("?!. ")
        if key and key not in seen:
            seen.add(key)
            out.append((question, slide))
            if len(out) >= limit:
                break
    return out


def count_replay_questions(deck_id: int) -> int:
    """How many distinct questions a replay of this deck would ask (up to 1000)."""
    return len(replay_questions(deck_id, 1000))


# ---- blind votes ----

def _answered(report: dict) -> dict[tuple[str, int], list[int]]:
    """(model, question index) -> runs with an answer that did not fail."""
    out: dict[tuple[str, int], list[int]] = {}
    for m in report.get("models", []):
        for a in m.get("answers", []):
            if not a.get("error"):
                out.setdefault((m["name"], a["question_index"]), []).append(a["run"])
    return out


def ballot(run: ComparisonRun, rng: random.Random | None = None) -> ComparisonVote | None:
    """The pending ballot of this comparison, else a new one between two models' answers to one question,
    favouring the pairs with the fewest votes; None when the report has no two answers to compare."""
    pending = db.session.scalar(select(ComparisonVote).where(ComparisonVote.comparison_id == run.id,
                                                             ComparisonVote.winner.is_(None))
                                .order_by(ComparisonVote.id.desc()).limit(1))
    if pending is not None or not run.report:
        return pending
    rng = rng or random.Random()
    answered = _answered(run.report)
    votes = list(db.session.scalars(select(ComparisonVote).where(ComparisonVote.comparison_id == run.id)))
    per_pair = Counter(frozenset((v.left_model, v.right_model)) for v in votes)
    done = {(v.question_index, frozenset(((v.left_model, v.left_run), (v.right_model, v.right_run))))
            for v in votes}
    candidates = []
    for q in range(len(run.report.get("questions", []))):
        names = [name for name in run.report.get("model_names", []) if (name, q) in answered]
        for a, b in combinations(names, 2):
            for ra in answered[(a, q)]:
                for rb in answered[(b, q)]:
                    if (q, frozenset(((a, ra), (b, rb)))) not in done:
                        candidates.append((per_pair[frozenset((a, b))], q, (a, ra), (b, rb)))
    if not candidates:
        return None
    fewest = min(c[0] for c in candidates)
    _, q, left, right = rng.choice([c for c in candidates if c[0] == fewest])
    if rng.random() < 0.5:  # the side says nothing about the model
        left, right = right, left
    vote = ComparisonVote(comparison_id=run.id, question_index=q, left_model=left[0], left_run=left[1],
                          right_model=right[0], right_run=right[1])
    db.session.add(vote)
    db.session.commit()
    return vote


def get_ballot(run: ComparisonRun, ballot_id: int) -> ComparisonVote | None:
    """A ballot of this comparison, or None."""
    vote = db.session.get(ComparisonVote, ballot_id)
    return vote if vote is not None and vote.comparison_id == run.id else None


def cast_vote(vote: ComparisonVote, winner: str) -> None:
    """Record the owner's choice: left, right or tie."""
    if winner not in WINNERS:
        raise ValueError(f"the winner is one of {', '.join(WINNERS)}")
    vote.winner, vote.voted_at = winner, utcnow()
    db.session.commit()


def answer_text(report: dict, model: str, question_index: int, run: int) -> str:
    """One answer's text from a report."""
    for m in report.get("models", []):
        if m["name"] == model:
            for a in m["answers"]:
                if a["question_index"] == question_index and a["run"] == run:
                    return a.get("text") or ""
    return ""


def vote_count(run: ComparisonRun) -> int:
    """How many votes this comparison has."""
    return db.session.scalar(select(func.count()).select_from(ComparisonVote).where(
        ComparisonVote.comparison_id == run.id, ComparisonVote.winner.is_not(None))) or 0


def ratings(run: ComparisonRun) -> list[dict[str, Any]]:
    """Each model's rating from this comparison's votes, with its 95% interval and vote counts."""
    outcomes = [(v.left_model, v.right_model, {"left": 1.0, "right": 0.0, "tie": 0.5}[v.winner])
                for v in db.session.scalars(select(ComparisonVote).where(ComparisonVote.comparison_id == run.id,
                                                                         ComparisonVote.winner.is_not(None)))]
    return rate(list(run.models or []), outcomes)


def rate(models: list[str], outcomes: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
    """Ratings with 95% intervals from (model a, model b, a's score: 1 win, 0.5 tie, 0 loss); 1000 is the
    average of the compared models."""
    theta, games = _fit(models, outcomes)
    se = _contrast_errors(models, theta, games)
    mean = sum(theta.values()) / len(theta) if theta else 0.0
    out = []
    for m in models:
        wins = sum(1 for a, b, s in outcomes if (a == m and s == 1.0) or (b == m and s == 0.0))
        played = sum(1 for a, b, _ in outcomes if m in (a, b))
        ties = sum(1 for a, b, s in outcomes if m in (a, b) and s == 0.5)
        rating, spread = BASE + ELO * (theta[m] - mean), 1.96 * ELO * se[m]
        out.append({"model": m, "rating": round(rating), "low": round(rating - spread), "high": round(rating + spread),
                    "votes": played, "wins": wins, "ties": ties, "losses": played - wins - ties})
    return sorted(out, key=lambda r: -r["rating"])


def bradley_terry(models: list[str], outcomes: list[tuple[str, str, float]]) -> dict[str, float]:
    """Elo-scaled Bradley-Terry ratings against the 1000-rated reference of the virtual games."""
    theta, _ = _fit(models, outcomes)
    return {m: BASE + ELO * t for m, t in theta.items()}


def _fit(models: list[str], outcomes: list[tuple[str, str, float]], iterations: int = 1000):
    """Log-strengths by minorisation-maximisation, and the games played per pair of models."""
    strength = dict.fromkeys(models, 1.0)
    wins = dict.fromkeys(models, 1.0)  # the virtual win against the reference
    games: dict[str, Counter] = {m: Counter() for m in models}
    for a, b, score in outcomes:
        if a in strength and b in strength and a != b:
            wins[a] += score
            wins[b] += 1 - score
            games[a][b] += 1
            games[b][a] += 1
    for _ in range(iterations):
        new = {}
        for m in models:
            # Two virtual games against the reference (strength 1), then the real opponents.
            denom = 2 / (strength[m] + 1) + sum(n / (strength[m] + strength[o]) for o, n in games[m].items())
            new[m] = wins[m] / denom
        change = max((abs(math.log(new[m] / strength[m])) for m in models), default=0.0)
        strength = new
        if change < 1e-7:  # far below one rating point
            break
    return {m: math.log(s) for m, s in strength.items()}, games


def _contrast_errors(models: list[str], theta: dict[str, float], games: dict[str, Counter]) -> dict[str, float]:
    """Standard error of each log-strength minus their mean, from the inverse Fisher information.

    Votes only say how models compare with each other; the error of the common level (pinned only by the
    virtual games) is left out by measuring each model against the average."""
    import numpy as np  # noqa: PLC0415

    n = len(models)
    if not n:
        return {}
    index = {m: i for i, m in enumerate(models)}
    info = np.zeros((n, n))
    for m in models:
        p = 1 / (1 + math.exp(-theta[m]))  # against the reference, strength 1
        info[index[m], index[m]] += 2 * p * (1 - p)
        for o, count in games[m].items():
            q = 1 / (1 + math.exp(theta[o] - theta[m]))
            info[index[m], index[m]] += count * q * (1 - q)
            info[index[m], index[o]] -= count * q * (1 - q)
    cov = np.linalg.inv(info)
    out = {}
    for m in models:
        c = np.full(n, -1 / n)
        c[index[m]] += 1
        out[m] = float(math.sqrt(max(c @ cov @ c, 0.0)))
    return out
