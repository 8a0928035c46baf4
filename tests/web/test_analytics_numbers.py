"""Every analytics figure from a known history: domain, JSON API, CLI, CSV exports and the dashboard HTML."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest
from analytics_history import expected, expected_visit_rows, history, store
from clients import login

from deckchat.domain import sharing
from deckchat.extensions import db
from deckchat.models import Deck

LABELS = ["Investors", "Angels"]


@pytest.fixture
def known(app, pitch_deck):
    """The pitch deck with two links and the known history stored; returns what the tests compare against."""
    with app.app_context():
        deck = db.session.get(Deck, pitch_deck)
        link_ids = [sharing.create_link(deck, label=label).id for label in LABELS]
        titles = {s.number: s.title for s in deck.slides}
        specs = history(deck.slide_count)
        visit_ids = store(deck.id, link_ids, specs)
        slide_count = deck.slide_count
    want = expected(specs, slide_count, titles)
    want["deck_id"] = pitch_deck
    per_link = {}
    for i, link_id in enumerate(link_ids):
        mine = [s for s in specs if s.link == i]
        per_link[link_id] = {
            **expected(mine, slide_count, titles),
            "deck_id": pitch_deck,
            "scope": {"link_id": link_id, "visitor_id": None},
        }
    rows = expected_visit_rows(specs, visit_ids, link_ids, LABELS, slide_count)
    return {
        "deck_id": pitch_deck,
        "want": want,
        "per_link": per_link,
        "rows": rows,
        "link_ids": link_ids,
        "specs": specs,
        "visit_ids": visit_ids,
    }


def same(actual, wanted, path="$"):
    """Deep equality with floats compared to the millisecond (rounding of independent computations)."""
    if isinstance(wanted, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        assert actual == pytest.approx(wanted, abs=1.5e-3), path
    elif isinstance(wanted, dict):
        assert isinstance(actual, dict) and set(actual) == set(wanted), (path, set(actual) ^ set(wanted))
        for key in wanted:
            same(actual[key], wanted[key], f"{path}.{key}")
    elif isinstance(wanted, list):
        assert isinstance(actual, list) and len(actual) == len(wanted), (path, actual, wanted)
        for i, (a, w) in enumerate(zip(actual, wanted)):
            same(a, w, f"{path}[{i}]")
    else:
        assert actual == wanted, (path, actual, wanted)


def test_history_exercises_the_edge_cases(known):
    want = known["want"]
    assert want["visits"] == 14 and 0 < want["completion_rate"] < 1
    assert want["repeat_visits"] > 0 and want["questions_without_slide"] == 1
    assert any(
        s["visits_viewed"] % 2 == 0 and s["visits_viewed"] for s in want["slides"]
    )  # an even-count median
    reached = [s["reached"] for s in want["slides"]]
    assert (
        reached == sorted(reached, reverse=True) and reached[0] < want["visits"]
    )  # one visit never reported


def test_domain_figures_match(app, known):
    from deckchat.domain.analytics import Scope, deck_analytics
    from deckchat.domain.visit_history import visit_rows

    with app.app_context():
        deck = db.session.get(Deck, known["deck_id"])
        same(deck_analytics(deck), known["want"])
        for link_id, want in known["per_link"].items():
            same(deck_analytics(deck, Scope(link_id=link_id)), want)
        same(visit_rows(deck), known["rows"])


def test_json_api_matches(client, owner, known):
    login(client)
    deck_id = known["deck_id"]
    response = client.get(f"/api/decks/{deck_id}/analytics")
    assert response.status_code == 200 and response.mimetype == "application/json"
    same(response.json, known["want"])
    for link_id, want in known["per_link"].items():
        same(client.get(f"/api/decks/{deck_id}/analytics?link={link_id}").json, want)
    assert client.get(f"/api/decks/{deck_id}/analytics?link=999999").status_code == 404


def test_json_api_scopes_to_one_visitor(client, owner, known, app):
    login(client)
    specs = [s for s in known["specs"] if s.visitor == "vis-alice"]
    with app.app_context():
        titles = {s.number: s.title for s in db.session.get(Deck, known["deck_id"]).slides}
    want = {
        **expected(specs, 5, titles),
        "deck_id": known["deck_id"],
        "scope": {"link_id": None, "visitor_id": "vis-alice"},
    }
    same(client.get(f"/api/decks/{known['deck_id']}/analytics?visitor=vis-alice").json, want)


def test_cli_matches(runner, known):
    result = runner.invoke("analytics", str(known["deck_id"]), "--json")
    assert result.exit_code == 0, result.stderr
    same(json.loads(result.stdout), known["want"])
    link_id, want = next(iter(known["per_link"].items()))
    result = runner.invoke("analytics", str(known["deck_id"]), "--link", str(link_id), "--json")
    same(json.loads(result.stdout), want)
    text = runner.invoke("analytics", str(known["deck_id"])).stdout
    assert text.startswith(
        f"{known['want']['visits']} visits, {known['want']['unique_visitors']} unique visitors"
    )
    bad = runner.invoke("analytics", str(known["deck_id"]), "--link", "999999", "--json")
    assert bad.exit_code != 0 and bad.stderr.startswith("error: ")


def _csv(response) -> list[dict]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def test_csv_exports_match(client, owner, known):
    login(client)
    deck_id = known["deck_id"]
    visits = _csv(client.get(f"/decks/{deck_id}/analytics/visits.csv"))
    assert len(visits) == len(known["rows"])
    for got, want in zip(visits, known["rows"]):
        for key, value in want.items():
            if isinstance(value, float):
                assert float(got[key]) == pytest.approx(value, abs=1.5e-3), key
            else:
                assert got[key] == _as_text(value), (key, got[key], value)
    slides = _csv(client.get(f"/decks/{deck_id}/analytics/slides.csv"))
    assert [int(r["slide"]) for r in slides] == [1, 2, 3, 4, 5]
    for got, want in zip(slides, known["want"]["slides"]):
        for key, value in want.items():
            if isinstance(value, float):
                assert float(got[key]) == pytest.approx(value, abs=1.5e-3), key
            else:
                assert got[key] == _as_text(value), key
    link_id = known["link_ids"][1]
    only = _csv(client.get(f"/decks/{deck_id}/analytics/visits.csv?link={link_id}"))
    assert {int(r["link_id"]) for r in only} == {link_id}
    assert len(only) == known["per_link"][link_id]["visits"]


def test_every_question_as_csv(client, owner, known):
    login(client)
    deck_id, specs = known["deck_id"], known["specs"]
    want = sorted(
        ((spec.question_time(j), visit_id, spec, slide, text, answerable)
         for spec, visit_id in zip(specs, known["visit_ids"])
         for j, (slide, text, answerable) in enumerate(spec.questions)),
        key=lambda row: (row[0], row[1]))
    rows = _csv(client.get(f"/decks/{deck_id}/analytics/questions.csv"))
    assert len(want) >= 3 and len(rows) == len(want)  # the owner's own question (no visit) is not in it
    for got, (asked, visit_id, spec, slide, text, answerable) in zip(rows, want):
        assert got["asked_at"] == asked.isoformat() + "Z" and int(got["visit_id"]) == visit_id
        assert got["question"] == text and got["slide"] == _as_text(slide)
        assert got["answered"] == _as_text(answerable) and got["email"] == (spec.email or "")
        assert got["link_id"] == str(known["link_ids"][spec.link])
    link_id = known["link_ids"][1]
    only = _csv(client.get(f"/decks/{deck_id}/analytics/questions.csv?link={link_id}"))
    assert {r["link_id"] for r in only} <= {str(link_id)}
    assert len(only) == sum(len(s.questions) for s in specs if s.link == 1)
    assert 'data-testid="questions-csv"' in client.get(f"/decks/{deck_id}/analytics").get_data(as_text=True)


class _Tables(HTMLParser):
    """Text of the cells of elements marked with data-testid (tables) and of other data-testid elements."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.texts: dict[str, str] = {}
        self._table, self._cell, self._open = None, None, []
        self.scripts: dict[str, str] = {}
        self._script = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        testid = attrs.get("data-testid")
        if tag == "table" and testid:
            self._table = testid
            self.tables[testid] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._table:
            self._cell = []
        elif testid and tag != "table":
            self._open.append((tag, testid, []))
        if tag == "script" and attrs.get("type") == "application/json":
            self._script = (attrs["id"], [])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "td" and self._cell is not None and self._table:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif self._open and self._open[-1][0] == tag:
            _, testid, parts = self._open.pop()
            self.texts[testid] = " ".join("".join(parts).split())
        if tag == "script" and self._script:
            self.scripts[self._script[0]] = "".join(self._script[1])
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        for _, _, parts in self._open:
            parts.append(data)
        if self._script:
            self._script[1].append(data)


def _page(client, url) -> _Tables:
    response = client.get(url)
    assert response.status_code == 200, response.data[:500]
    parsed = _Tables()
    parsed.feed(response.get_data(as_text=True))
    return parsed


def _fmt_seconds(value: float) -> str:
    if value >= 60:
        return f"{int(value // 60)} min {round(value % 60):02d} s"
    return f"{value:.1f} s"


def _check_dashboard(page: _Tables, want: dict, rows: list[dict]) -> None:
    assert page.texts["visits"] == str(want["visits"])
    assert page.texts["unique-visitors"] == str(want["unique_visitors"])
    assert page.texts["completion-rate"] == f"{want['completion_rate'] * 100:.0f}%"
    assert page.texts["visit-median"] == _fmt_seconds(want["visit_seconds_median"])
    assert page.texts["questions"] == str(want["questions"])
    assert page.texts["repeat-visits"] == str(want["repeat_visits"])
    assert page.texts["last-activity"] == want["last_activity"][:16].replace("T", " ") + " UTC"
    table = [r for r in page.tables["slide-stats"] if r]
    assert len(table) == len(want["slides"])
    for cells, s in zip(table, want["slides"]):
        assert cells == [
            str(s["slide"]),
            s["title"],
            str(s["reached"]),
            f"{s['reached_rate'] * 100:.0f}%",
            str(s["views"]),
            str(s["visitors"]),
            f"{s['visible_seconds_avg']:.1f}",
            f"{s['visible_seconds_median']:.1f}",
            f"{s['visible_seconds']:.1f}",
            str(s["questions"]),
        ]
    top = [r for r in page.tables["top-questions"] if r]
    assert [(c[0], int(c[1]), int(c[2])) for c in top] == [
        (" ".join(q["question"].split()), q["count"], q["unanswered"]) for q in want["top_questions"]
    ]
    visits = [r for r in page.tables["visits-table"] if r]
    assert len(visits) == len(rows)
    for cells, r in zip(visits, rows):
        assert cells[2] == (r["email"] or "—")
        assert cells[3] == _fmt_seconds(r["duration_seconds"]) and cells[4] == _fmt_seconds(
            r["visible_seconds"]
        )
        assert cells[5] == f"slide {r['furthest_slide']} / 5" and cells[6] == (
            "yes" if r["completed"] else "no"
        )
        assert cells[7].split()[0] == str(r["questions"])
    funnel = json.loads(page.scripts["chart-funnel-data"])
    assert funnel["data"][0]["y"] == [round(s["reached_rate"] * 100, 1) for s in want["slides"]]
    assert funnel["data"][1]["y"] == [s["questions"] for s in want["slides"]]
    timing = json.loads(page.scripts["chart-time-data"])
    assert timing["data"][0]["y"] == pytest.approx(
        [s["visible_seconds_avg"] for s in want["slides"]], abs=1.5e-3
    )
    assert timing["data"][1]["y"] == pytest.approx(
        [s["visible_seconds_median"] for s in want["slides"]], abs=1.5e-3
    )


def test_dashboard_shows_the_same_numbers(client, owner, known):
    login(client)
    page = _page(client, f"/decks/{known['deck_id']}/analytics")
    _check_dashboard(page, known["want"], known["rows"])
    links = {r[0]: r for r in page.tables["links-stats"] if r}
    for label, link_id in zip(LABELS, known["link_ids"]):
        want = known["per_link"][link_id]
        assert links[label][1:3] == [str(want["visits"]), str(want["unique_visitors"])]


def test_link_dashboard_shows_that_links_numbers(client, owner, known):
    login(client)
    link_id = known["link_ids"][0]
    page = _page(client, f"/decks/{known['deck_id']}/analytics/links/{link_id}")
    rows = [r for r in known["rows"] if r["link_id"] == link_id]
    _check_dashboard(page, known["per_link"][link_id], rows)


def test_visit_page_shows_the_timeline(client, owner, known):
    login(client)
    spec, visit_id = known["specs"][1], known["visit_ids"][1]  # alice's second visit: revisits slide 2
    page = _page(client, f"/decks/{known['deck_id']}/analytics/visits/{visit_id}")
    stays = [r for r in page.tables["visit-timeline"] if r]
    assert [(int(c[1]), c[3]) for c in stays] == [
        (slide, _fmt_seconds(ms / 1000)) for slide, ms in spec.stays
    ]
    # The question asked on slide 2 belongs to the later stay on slide 2 (on screen when it was asked).
    assert "patents" in stays[3][4] and stays[1][4] == ""
    assert page.texts["visit-questions"] == "1"
    visitor = [r for r in page.tables["visitor-visits"] if r]
    assert len(visitor) == 2  # alice came twice
    timeline = json.loads(page.scripts["chart-timeline-data"])
    assert timeline["data"][0]["x"] == [round(ms / 1000, 3) for _, ms in spec.stays]


def test_pager_splits_long_visit_lists(app, client, owner, known, monkeypatch):
    from deckchat.web import analytics

    monkeypatch.setattr(analytics, "PAGE", 5)
    login(client)
    first = client.get(f"/decks/{known['deck_id']}/analytics").get_data(as_text=True)
    assert first.count('data-testid="visit-link"') == 5 and 'data-testid="older-visits"' in first
    last = client.get(f"/decks/{known['deck_id']}/analytics?page=3").get_data(as_text=True)
    assert last.count('data-testid="visit-link"') == 4 and 'data-testid="older-visits"' not in last
    ids = re.findall(r'data-visit="(\d+)"', first)
    assert [int(i) for i in ids] == [r["visit_id"] for r in known["rows"][:5]]


def test_visitor_dashboard_and_exports_show_that_visitors_numbers(client, owner, known, app):
    login(client)
    specs = [s for s in known["specs"] if s.visitor == "vis-alice"]
    with app.app_context():
        titles = {s.number: s.title for s in db.session.get(Deck, known["deck_id"]).slides}
    want = {**expected(specs, 5, titles), "deck_id": known["deck_id"]}
    rows = [r for r in known["rows"] if r["visitor_id"] == "vis-alice"]
    visit_id = known["visit_ids"][0]
    page = _page(client, f"/decks/{known['deck_id']}/analytics/visitors/{visit_id}")
    _check_dashboard(page, want, rows)
    assert "links-stats" not in page.tables
    csv_rows = _csv(client.get(f"/decks/{known['deck_id']}/analytics/visits.csv?visitor=vis-alice"))
    assert [int(r["visit_id"]) for r in csv_rows] == [r["visit_id"] for r in rows]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(app, client, owner, known):
    from deckchat.models import ChatExchange

    with app.app_context():
        db.session.add(ChatExchange(deck_id=known["deck_id"], visit_id=known["visit_ids"][0], slide=1,
                                    question='=HYPERLINK("http://evil.example","click")', answer="-1+1",
                                    answerable=True, kind="model"))
        db.session.commit()
    login(client)
    rows = _csv(client.get(f"/decks/{known['deck_id']}/analytics/questions.csv"))
    evil = next(r for r in rows if "HYPERLINK" in r["question"])
    assert evil["question"] == '\'=HYPERLINK("http://evil.example","click")' and evil["answer"] == "'-1+1"
