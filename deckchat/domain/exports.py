"""CSV exports of the dashboard's figures: one row per visit, per slide, or per question asked."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from .visit_history import QUESTION_COLUMNS, VISIT_COLUMNS

SLIDE_COLUMNS = [
    "slide",
    "title",
    "views",
    "visitors",
    "visible_seconds",
    "visits_viewed",
    "visible_seconds_avg",
    "visible_seconds_median",
    "reached",
    "reached_rate",
    "questions",
]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> object:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return "" if value is None else value


def to_csv(columns: list[str], rows: Iterable[dict]) -> str:
    """Rows as CSV text with a header line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def visits_csv(rows: Iterable[dict]) -> str:
    """The visits table as CSV (time, link, email, duration, slides reached, completion, questions)."""
    return to_csv(VISIT_COLUMNS, rows)


def slides_csv(stats: dict) -> str:
    """The per-slide figures of `deck_analytics` as CSV."""
    return to_csv(SLIDE_COLUMNS, stats["slides"])


def questions_csv(rows: Iterable[dict]) -> str:
    """Every question asked, with its answer, as CSV (`visit_history.question_rows`)."""
    return to_csv(QUESTION_COLUMNS, rows)
