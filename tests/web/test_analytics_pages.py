"""Analytics pages: access rules, ids of other decks, escaping, CSP-safe markup, the local Plotly bundle."""

from __future__ import annotations

import re

import pytest
from analytics_history import history, store
from clients import login

from deckchat.domain import sharing
from deckchat.domain.decks import ImportLimits, import_deck
from deckchat.extensions import db
from deckchat.models import Deck, User


@pytest.fixture
def two_decks(app, pitch_deck, pitch_files):
    """The owner's pitch deck with the known history, and a second deck of theirs with a visit and a link."""
    with app.app_context():
        deck = db.session.get(Deck, pitch_deck)
        links = [sharing.create_link(deck, label="a").id, sharing.create_link(deck, label="b").id]
        visits = store(deck.id, links, history(deck.slide_count))
        other, _ = import_deck(
            owner=db.session.scalar(db.select(User)),
            instance_path=app.instance_path,
            slides_path=pitch_files["pdf"],
            filename="other.pdf",
            limits=ImportLimits.from_config(app.config),
        )
        other_link = sharing.create_link(other).id
        [other_visit] = store(other.id, [other_link], history(other.slide_count)[:1])
        return {
            "deck": pitch_deck,
            "links": links,
            "visits": visits,
            "other": other.id,
            "other_link": other_link,
            "other_visit": other_visit,
        }


def test_visit_and_link_ids_of_another_deck_are_not_found(client, two_decks):
    login(client)
    d, other_link, other_visit = two_decks["deck"], two_decks["other_link"], two_decks["other_visit"]
    for path in (
        f"/decks/{d}/analytics/visits/{other_visit}",
        f"/decks/{d}/analytics/visitors/{other_visit}",
        f"/decks/{d}/analytics/links/{other_link}",
        f"/decks/{d}/analytics/visits.csv?link={other_link}",
        f"/decks/{d}/analytics/slides.csv?link={other_link}",
        f"/decks/{d}/analytics/questions.csv?link={other_link}",
        f"/api/decks/{d}/analytics?link={other_link}",
        f"/decks/{d}/analytics/visits/999999",
    ):
        assert client.get(path).status_code == 404, path
    assert client.get(f"/decks/{two_decks['other']}/analytics/visits/{other_visit}").status_code == 200
    assert client.get(f"/decks/{d}/analytics/visits/{two_decks['visits'][0]}").status_code == 200


def test_another_owner_sees_nothing(app, client, two_decks):
    from deckchat.domain.accounts import create_user

    with app.app_context():
        create_user("intruder@example.com", "password123")
    login(client, "intruder@example.com")
    d = two_decks["deck"]
    for path in (
        f"/decks/{d}/analytics",
        f"/decks/{d}/analytics/visits/{two_decks['visits'][0]}",
        f"/decks/{d}/analytics/links/{two_decks['links'][0]}",
        f"/decks/{d}/analytics/gaps",
        f"/decks/{d}/analytics/visits.csv",
        f"/decks/{d}/analytics/slides.csv",
        f"/api/decks/{d}/analytics",
    ):
        response = client.get(path)
        assert response.status_code == 404 and b"alice" not in response.data, path


def test_pages_need_login(app, two_decks):
    client = app.test_client()
    d = two_decks["deck"]
    for path in (
        f"/decks/{d}/analytics/gaps",
        f"/decks/{d}/analytics/visits.csv",
        f"/decks/{d}/analytics/visits/{two_decks['visits'][0]}",
    ):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.location, path
    assert client.get(f"/api/decks/{d}/analytics").status_code == 401


def test_what_visitors_wrote_is_escaped(client, two_decks):
    login(client)
    d = two_decks["deck"]
    eve = two_decks["visits"][5]
    for path in (f"/decks/{d}/analytics", f"/decks/{d}/analytics/visits/{eve}"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in html and "<b>eve</b>" not in html, path
        # The visits table marks where an email may wrap (<wbr> before its @ and dots): the text around them is escaped.
        assert "&lt;b&gt;eve&lt;/b&gt;@example.com" in html.replace("<wbr>", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; pricing?" in client.get(f"/decks/{d}/analytics").get_data(
        as_text=True
    )


def test_markup_is_safe_under_the_strict_csp(client, two_decks):
    login(client)
    d = two_decks["deck"]
    for path in (
        f"/decks/{d}/analytics",
        f"/decks/{d}/analytics/visits/{two_decks['visits'][0]}",
        f"/decks/{d}/analytics/gaps",
    ):
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert " style=" not in html and "<style" not in html, path
        inline = [t for t in re.findall(r"<script[^>]*>", html) if "src=" not in t]
        assert all('type="application/json"' in t for t in inline), inline
        assert "https://" not in html.replace("https://hooks", ""), path  # nothing from elsewhere


def test_plotly_is_served_from_the_installed_package(client, two_decks):
    login(client)
    html = client.get(f"/decks/{two_decks['deck']}/analytics").get_data(as_text=True)
    src = re.search(r'<script src="([^"]*plotly[^"]*)"', html).group(1)
    response = client.get(src)
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert b"plotly.js" in response.data[:200] and response.cache_control.max_age > 86400
    assert re.search(r'<meta id="[0-9a-f]{32,64}" name="plotly-style-guard"', html)
    assert 'id="plotly.js-style-global" class="no-inline-styles"' in html


def test_an_empty_deck_has_a_friendly_dashboard(client, owner, pitch_deck):
    login(client)
    html = client.get(f"/decks/{pitch_deck}/analytics").get_data(as_text=True)
    assert "No visits yet" in html and 'data-chart="funnel"' not in html
    assert (
        client.get(f"/decks/{pitch_deck}/analytics/gaps")
        .get_data(as_text=True)
        .count('data-testid="no-gaps"')
        == 1
    )
