"""Layout in Chromium: pages fit a 390 px phone (no sideways scrolling), the visits table fits its card on a laptop,
and the deck page's share links can be copied and are only revoked after a confirmation."""

from __future__ import annotations

from datetime import datetime

import pytest
from analytics_history import VisitSpec, history, store
from clients import browser_login, screenshot, watched_page
from factories import PITCH_PAGES, make_pdf

pytestmark = pytest.mark.browser

LONG_TITLE = "Acme Robotics — Series A investor presentation, March 2025"
LONG_EMAIL = "very.long.name.of.a.partner@some-venture-capital-firm.example.com"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
LAPTOP = {"viewport": {"width": 1366, "height": 900}}
SCROLL_WIDTH = "() => document.documentElement.scrollWidth"


@pytest.fixture(scope="module")
def deck(live_server, tmp_path_factory):
    """A deck with a long title, three labelled links and a history of visits (one with a very long email)."""
    pdf = tmp_path_factory.mktemp("layout") / "pitch.pdf"
    pdf.write_bytes(make_pdf(PITCH_PAGES))
    made = live_server.cli("deck", "import", str(pdf), "--owner", "owner@example.com", "--title", LONG_TITLE,
                           "--no-index")
    deck_id = made["deck_id"]
    tokens = {label: live_server.cli("deck", "share", str(deck_id), "--label", label)["token"]
              for label in ("Investor viewer", "Seed fund", "Partners")}

    from deckchat import create_app
    from deckchat.extensions import db
    from deckchat.models import Deck, ShareLink

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DECKCHAT_INSTANCE_PATH", str(live_server.instance))
        app = create_app({"SQLALCHEMY_DATABASE_URI": live_server.database_url} if live_server.database_url else {})
        with app.app_context():
            count = db.session.get(Deck, deck_id).slide_count
            links = [link.id for link in db.session.scalars(db.select(ShareLink).filter_by(deck_id=deck_id).order_by(ShareLink.id))]
            long_visit = VisitSpec(1, "vis-long", LONG_EMAIL, datetime(2026, 3, 4, 9), 8, [(1, 2000), (2, 3000)],
                                   [(2, "How big is the market?", False)])
            visit_ids = store(deck_id, links[:2], [*history(count)[:6], long_visit])
            db.session.remove()
            db.engine.dispose()
    return {"server": live_server, "id": deck_id, "tokens": tokens, "visit": visit_ids[-1], "links": links}


def _inside(page, locator, width: int) -> None:
    """The element is laid out within the viewport's width (not cut at the right edge)."""
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, box


def test_investor_viewer_fits_a_phone_with_a_long_title(deck, browser):
    server = deck["server"]
    with watched_page(browser, **PHONE) as page:
        page.goto(f"{server.url}/s/{deck['tokens']['Investor viewer']}")
        page.get_by_test_id("slide-image").wait_for()
        assert page.evaluate(SCROLL_WIDTH) <= 390
        title = page.locator(".viewer-title")
        assert title.text_content() == LONG_TITLE
        # Cut with an ellipsis: the text is wider than the box that shows it.
        assert page.evaluate("el => el.scrollWidth > el.clientWidth", title.element_handle())
        assert title.evaluate("el => getComputedStyle(el).textOverflow") == "ellipsis"
        for testid in ("slide-number", "slide-image", "next-slide", "prev-slide", "chat-input", "chat-send"):
            _inside(page, page.get_by_test_id(testid), 390)
        screenshot(page, "layout-phone-viewer-long-title")


def test_owner_pages_fit_a_phone(deck, browser):
    server, deck_id = deck["server"], deck["id"]
    with watched_page(browser, **PHONE) as page:
        browser_login(page, server)
        pages = {
            "decks": "/decks/",
            "deck": f"/decks/{deck_id}",
            "analytics": f"/decks/{deck_id}/analytics",
            "visit": f"/decks/{deck_id}/analytics/visits/{deck['visit']}",
            "assistant": f"/decks/{deck_id}/assistant",
            "edit link": f"/decks/{deck_id}/links/{deck['links'][0]}/edit",
            "account": "/account",
        }
        for name, path in pages.items():
            page.goto(server.url + path)
            page.wait_for_load_state("load")
            assert page.evaluate(SCROLL_WIDTH) <= 390, (name, page.evaluate(SCROLL_WIDTH))
            _inside(page, page.get_by_test_id("logout"), 390)
            if name == "deck":
                _inside(page, page.get_by_role("button", name="Delete"), 390)
                for testid in ("share-url", "copy-link", "edit-link", "revoke-link"):
                    _inside(page, page.get_by_test_id(testid).first, 390)
                screenshot(page, "layout-phone-deck")
            if name in ("analytics", "visit"):
                links = page.get_by_test_id("visit-link")
                assert links.count() >= 1
                for i in range(links.count()):
                    _inside(page, links.nth(i), 390)
                emails = page.locator("td.email", has_text="some-venture-capital-firm")
                assert emails.count() >= 1
                _inside(page, emails.first, 390)
            if name == "analytics":
                screenshot(page, "layout-phone-analytics")


def test_visits_table_fits_its_card_on_a_laptop(deck, browser):
    server, deck_id = deck["server"], deck["id"]
    with watched_page(browser, **LAPTOP) as page:
        browser_login(page, server)
        for path in (f"/decks/{deck_id}/analytics", f"/decks/{deck_id}/analytics/visits/{deck['visit']}"):
            page.goto(server.url + path)
            page.wait_for_load_state("load")
            assert page.evaluate(SCROLL_WIDTH) <= 1366
            for wrapper in page.locator(".table-scroll").all():
                # Nothing hidden to the right: the table is no wider than its scroll box.
                assert wrapper.evaluate("el => el.scrollWidth <= el.clientWidth"), path
            box = page.locator(".table-scroll", has=page.get_by_test_id("visit-link")).first.bounding_box()
            links = page.get_by_test_id("visit-link")
            for i in range(links.count()):
                link = links.nth(i).bounding_box()
                assert link["x"] + link["width"] <= box["x"] + box["width"] + 0.5, (path, link, box)
                assert links.nth(i).text_content() == "Timeline"
            # An email breaks before its @ or a dot, never inside a word: each line is a whole part.
            email = page.locator("td.email", has_text="some-venture-capital-firm").first
            lines = email.evaluate("""el => { const r = document.createRange(); r.selectNodeContents(el);
                return [...new Set([...r.getClientRects()].map(b => Math.round(b.top)))].length; }""")
            assert lines <= 3, lines
        screenshot(page, "layout-laptop-visit")


def test_revoke_asks_for_confirmation_naming_the_link(deck, browser):
    server, deck_id = deck["server"], deck["id"]
    with watched_page(browser, **LAPTOP) as page:
        browser_login(page, server)
        page.goto(f"{server.url}/decks/{deck_id}")
        row = page.get_by_test_id("links-table").locator("tr", has_text="Seed fund")
        messages: list[str] = []

        page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
        row.get_by_test_id("revoke-link").click()
        page.wait_for_timeout(300)
        assert messages == ["Revoke the link “Seed fund”? Investors holding it will no longer be able to open the deck."]
        assert row.locator(".badge").text_content() == "active"  # dismissed: nothing sent

        page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
        with page.expect_navigation():
            row.get_by_test_id("revoke-link").click()
        assert len(messages) == 2
        row = page.get_by_test_id("links-table").locator("tr", has_text="Seed fund")
        assert row.locator(".badge").text_content() == "revoked"
        assert row.get_by_test_id("revoke-link").count() == 0


def test_copy_button_copies_the_share_url(deck, browser):
    server, deck_id = deck["server"], deck["id"]
    with watched_page(browser, **LAPTOP, permissions=["clipboard-read", "clipboard-write"]) as page:
        browser_login(page, server)
        page.goto(f"{server.url}/decks/{deck_id}")
        row = page.get_by_test_id("links-table").locator("tr", has_text="Partners")
        button = row.get_by_test_id("copy-link")
        assert button.get_attribute("aria-label") == "Copy the link “Partners”"
        assert button.text_content() == "Copy"
        button.click()
        page.wait_for_function("b => b.textContent === 'Copied'", arg=button.element_handle())
        expected = f"{server.url}/s/{deck['tokens']['Partners']}"
        assert row.get_by_test_id("share-url").text_content() == expected
        assert button.get_attribute("data-copy") == expected
        assert page.evaluate("navigator.clipboard.readText()") == expected
        assert row.locator("[data-copy-status]").text_content() == "Link copied."
        screenshot(page, "layout-laptop-copied")
        page.wait_for_function("b => b.textContent === 'Copy'", arg=button.element_handle(), timeout=5_000)
