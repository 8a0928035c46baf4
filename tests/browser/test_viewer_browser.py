"""The viewer in a real browser: keyboard navigation and visible time that matches what was looked at."""
from __future__ import annotations

import time

from clients import screenshot
from playwright.sync_api import expect

pytestmark = __import__("pytest").mark.browser

# Headless Chromium never hides a tab by itself, so hiding is driven through the same API the page
# listens to: document.visibilityState / hidden report "hidden" and a real visibilitychange event fires.
HIDE = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW = """() => {
  delete document.visibilityState; delete document.hidden;
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def _stay(page, seconds: float) -> float:
    """Wait on the current slide; return the wall time actually spent."""
    start = time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    return time.monotonic() - start


def test_keyboard_navigation_and_visible_seconds(live_deck, page):
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    number = page.get_by_test_id("slide-number")
    spent = {}
    spent[1] = _stay(page, 1.5)
    page.keyboard.press("ArrowRight")
    assert number.text_content() == "2"
    spent[2] = _stay(page, 2.5)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert number.text_content() == "4"
    spent[4] = _stay(page, 1.0)
    page.keyboard.press("ArrowLeft")
    assert number.text_content() == "3"
    assert "/slides/3.png" in page.get_by_test_id("slide-image").get_attribute("src")
    screenshot(page, "viewer-slide-3")
    spent[3] = _stay(page, 2.0)
    # The tab is hidden for 3 s on slide 3: that time must not count.
    page.evaluate(HIDE)
    page.wait_for_timeout(3000)
    page.evaluate(SHOW)
    spent[3] += _stay(page, 1.0)
    page.get_by_test_id("next-slide").click()
    page.get_by_test_id("prev-slide").click()
    page.get_by_test_id("next-slide").click()
    assert number.text_content() == "4"
    page.goto("about:blank")  # pagehide sends the last report
    time.sleep(0.5)

    stats = live_deck.cli("analytics", str(live_deck.deck_id))
    seconds = {s["slide"]: s["visible_seconds"] for s in stats["slides"]}
    assert stats["visits"] == 1
    for slide, expected in spent.items():
        assert abs(seconds[slide] - expected) <= 0.5, (slide, seconds[slide], expected, seconds)
    assert seconds[5] == 0.0


def test_buttons_thumbnails_and_bounds(live_deck, page):
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    number = page.get_by_test_id("slide-number")
    page.get_by_test_id("prev-slide").click()
    assert number.text_content() == "1"  # no slide 0
    page.get_by_test_id("thumb").nth(4).click()
    assert number.text_content() == "5"
    page.keyboard.press("ArrowRight")
    assert number.text_content() == "5"  # no slide 6
    page.keyboard.press("Home")
    assert number.text_content() == "1"
    box = page.get_by_test_id("slide-image").bounding_box()
    stage = page.locator(".stage").bounding_box()
    # The slide fills the stage beside the chat: its full width (less the arrow buttons) or its full height.
    assert box["width"] >= stage["width"] - 130 or box["height"] >= stage["height"] - 30, (box, stage)
    assert page.evaluate("document.querySelector('[data-testid=slide-image]').naturalWidth") > 0


def test_a_reload_stays_on_the_slide_and_in_the_same_visit(live_deck, page):
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    number = page.get_by_test_id("slide-number")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert number.text_content() == "3"
    assert page.url.endswith("#slide-3")
    page.wait_for_timeout(1000)
    page.reload()
    assert number.text_content() == "3"
    assert "/slides/3.png" in page.get_by_test_id("slide-image").get_attribute("src")
    page.wait_for_timeout(1000)
    page.goto(f"{live_deck.url}/s/{live_deck.token}#slide-5")  # a link to a slide opens there
    assert number.text_content() == "5"
    page.goto("about:blank")
    time.sleep(0.5)

    stats = live_deck.cli("analytics", str(live_deck.deck_id))
    views = {s["slide"]: s["views"] for s in stats["slides"]}
    assert stats["visits"] == 1  # the reload and the second opening went on with the visit
    # Slide 1 was seen once, at the first opening; the reload reopened slide 3 without passing through it.
    assert views[1] == 1 and views[3] == 2 and views[5] == 1, views


def test_full_screen_shows_the_slide_alone_and_keys_still_move(live_deck, page):
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    button = page.get_by_test_id("fullscreen")
    button.click()
    # document.fullscreenElement changes a frame before the fullscreenchange event the page reacts to,
    # so wait for what the page shows, not for the browser's state alone.
    expect(button).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("document.fullscreenElement.classList.contains('stage')")
    box = page.get_by_test_id("slide-image").bounding_box()
    size = page.viewport_size
    # The slide alone: as wide as the screen allows beside the arrows, or as tall as the screen.
    assert box["width"] >= size["width"] - 130 or box["height"] >= size["height"] - 2, (box, size)
    page.keyboard.press("ArrowRight")
    assert page.get_by_test_id("slide-number").text_content() == "2"
    page.keyboard.press("f")  # F again leaves
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(button).to_have_text("Full screen")
    assert page.evaluate("document.fullscreenElement === null")
