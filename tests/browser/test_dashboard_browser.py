"""The analytics dashboard in Chromium: charts drawn by the locally served Plotly under the strict CSP, with
no console error and no request leaving localhost (the `page` fixture checks both)."""

from __future__ import annotations

import pytest
from analytics_history import history, store
from clients import browser_login, screenshot

pytestmark = pytest.mark.browser


@pytest.fixture
def dashboard(live_deck, monkeypatch):
    """The live server's pitch deck with the known history written into its database."""
    from deckchat import create_app
    from deckchat.extensions import db
    from deckchat.models import Deck, ShareLink

    monkeypatch.setenv("DECKCHAT_INSTANCE_PATH", str(live_deck.instance))
    config = {"SQLALCHEMY_DATABASE_URI": live_deck.database_url} if live_deck.database_url else {}
    app = create_app(config)
    with app.app_context():
        deck = db.session.get(Deck, live_deck.deck_id)
        link = db.session.scalar(db.select(ShareLink).filter_by(deck_id=deck.id))
        second = ShareLink(deck=deck, label="Angels")
        db.session.add(second)
        db.session.commit()
        live_deck.visit_ids = store(deck.id, [link.id, second.id], history(deck.slide_count))
        db.session.remove()
        db.engine.dispose()
    return live_deck


def test_dashboard_draws_its_charts(dashboard, page):
    browser_login(page, dashboard)
    page.goto(f"{dashboard.url}/decks/{dashboard.deck_id}/analytics")
    for name in ("funnel", "time"):
        chart = page.locator(f'[data-chart="{name}"][data-rendered="true"]')
        chart.wait_for(timeout=30_000)
        box = chart.bounding_box()
        assert box["width"] > 600 and box["height"] > 300, (name, box)
        assert chart.locator("svg.main-svg").count() >= 2
        assert chart.locator(".point path, .bars path").count() >= 5  # one bar per slide at least
    # Plotly's layers are stacked by the rules in analytics.css, which took the place of its injected style.
    assert (
        page.evaluate("getComputedStyle(document.querySelector('[data-chart=funnel] svg.main-svg')).position")
        == "absolute"
    )
    assert page.get_by_test_id("visits").text_content() == "14"
    funnel = page.locator('[data-chart="funnel"]')
    funnel.scroll_into_view_if_needed()
    box = funnel.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    page.locator('[data-chart="funnel"] .hoverlayer .legend').wait_for(timeout=5_000)  # the hover label
    screenshot(page, "analytics-dashboard")
    page.screenshot(path=str(_artifact("analytics-dashboard-full")), full_page=True)
    assert page.locator('[data-testid="slide-stats"] tbody tr').count() == 5  # the charts' figures as a table


def test_visit_timeline_draws(dashboard, page):
    browser_login(page, dashboard)
    page.goto(f"{dashboard.url}/decks/{dashboard.deck_id}/analytics/visits/{dashboard.visit_ids[1]}")
    chart = page.locator('[data-chart="timeline"][data-rendered="true"]')
    chart.wait_for(timeout=30_000)
    assert chart.locator(".bars path").count() == 4
    assert page.get_by_test_id("timeline-question").count() == 1
    screenshot(page, "analytics-visit-timeline")


def _artifact(name: str):
    from clients import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def test_owner_answers_a_knowledge_gap(dashboard, page):
    browser_login(page, dashboard)
    page.goto(f"{dashboard.url}/decks/{dashboard.deck_id}/analytics/gaps")
    groups = page.get_by_test_id("gap-group")
    before = groups.count()
    assert before >= 3
    patents = groups.filter(has_text="patents").first
    assert patents.locator(".wordings li").count() == 0  # "Do you have patents?" twice, in two cases
    screenshot(page, "analytics-gaps")
    patents.get_by_test_id("gap-answer").fill("Two patents granted in 2023, one pending in the EU.")
    patents.get_by_test_id("gap-submit").click()
    page.wait_for_url(f"{dashboard.url}/decks/{dashboard.deck_id}/analytics/gaps", timeout=60_000)
    assert "Added to the FAQ" in page.locator(".flash").first.text_content()
    assert page.get_by_test_id("gap-group").count() == before - 1
