"""Pure pieces of the analytics: gap grouping, medians, CSV cells, webhook back-off, empty decks."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from deckchat.domain.analytics import _median
from deckchat.domain.exports import to_csv
from deckchat.domain.gaps import Gap, content_words, group_gaps
from deckchat.domain.notify import backoff


def _gaps(*questions):
    return [Gap(i, q, None, None, None) for i, q in enumerate(questions, 1)]


def test_gaps_group_by_shared_words_and_chains():
    gaps = _gaps(
        "Do you have patents?",
        "What is the valuation?",
        "Any patents filed?",
        "do you have patents",
        "Patents filed in Europe?",
        "Who is on the board?",
    )
    groups = group_gaps(gaps)
    assert [[g.id for g in group.gaps] for group in groups] == [[1, 3, 4, 5], [2], [6]]
    assert groups[0].question == "Do you have patents?"  # first asked among equally common wordings
    assert groups[0].ids == [1, 3, 4, 5] and groups[0].to_dict()["count"] == 4


def test_most_common_wording_is_proposed():
    groups = group_gaps(_gaps("Any patents?", "Do you have patents?", "Do you have patents?"))
    assert len(groups) == 1 and groups[0].question == "Do you have patents?"


def test_custom_similarity_and_stop_words():
    assert content_words("What are YOUR margins?") == frozenset({"margin"})
    groups = group_gaps(_gaps("a", "b", "c"), similar=lambda x, y: {x, y} == {"a", "c"})
    assert [[g.question for g in group.gaps] for group in groups] == [["a", "c"], ["b"]]
    assert group_gaps([]) == []


def test_median_of_odd_and_even_counts():
    assert _median([5]) == 5 and _median([3, 1, 2]) == 2 and _median([4, 1, 3, 2]) == 2.5


def test_csv_cells_never_run_as_formulas():
    text = to_csv(
        ["email", "n", "done"],
        [
            {"email": '=HYPERLINK("http://x")', "n": -3, "done": True},
            {"email": "+1@x.org", "n": None, "done": False},
        ],
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        ["email", "n", "done"],
        ['\'=HYPERLINK("http://x")', "-3", "yes"],
        ["'+1@x.org", "", "no"],
    ]


def test_backoff_doubles_from_a_minute():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]


def test_a_deck_without_visits_has_zeros(app, pitch_deck):
    from deckchat.domain.analytics import deck_analytics
    from deckchat.extensions import db
    from deckchat.models import Deck

    with app.app_context():
        stats = deck_analytics(db.session.get(Deck, pitch_deck))
    assert stats["visits"] == 0 and stats["completion_rate"] == 0.0 and stats["last_activity"] is None
    assert stats["top_questions"] == [] and len(stats["slides"]) == 5
    assert all(s["reached"] == 0 and s["visible_seconds_median"] == 0.0 for s in stats["slides"])
