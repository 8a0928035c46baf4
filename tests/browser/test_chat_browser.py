"""The chat panel in a real browser: streamed answer, citation that moves the viewer, escaping."""
from __future__ import annotations

import pytest

from clients import screenshot

pytestmark = pytest.mark.browser


def test_ask_see_streamed_answer_and_jump_to_the_cited_slide(live_deck, page):
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    assert page.get_by_test_id("slide-number").text_content() == "1"
    page.get_by_test_id("chat-input").fill("How long does it take to train the gripper on a new item?")
    page.get_by_test_id("chat-send").click()
    answer = page.get_by_test_id("chat-answer").first
    page.get_by_test_id("chat-source").first.wait_for(timeout=60_000)
    assert "five minutes" in answer.text_content()
    source = page.locator('[data-testid="chat-source"][data-source="slide:3"]')
    assert source.count() == 1
    screenshot(page, "chat-answer-with-citation")
    source.click()
    assert page.get_by_test_id("slide-number").text_content() == "3"
    assert page.get_by_test_id("slide-image").get_attribute("src").endswith("/slides/3.png")


def test_script_in_notes_and_answers_is_shown_as_text(live_deck, page):
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    page.get_by_test_id("chat-input").fill("What happened with the pilot customer picking speed?")
    page.get_by_test_id("chat-send").click()
    page.locator(".chat-turn .chat-feedback").first.wait_for(timeout=60_000)
    text = page.get_by_test_id("chat-answer").first.text_content()
    assert "<script>window.__pwned = 1</script>" in text
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".chat-log img, .chat-log script").count() == 0
    page.get_by_test_id("chat-input").fill("<b>bold?</b> <script>window.__pwned = 3</script>")
    page.get_by_test_id("chat-send").click()
    page.locator(".chat-question").nth(1).wait_for()
    assert page.locator(".chat-question").nth(1).text_content().startswith("<b>bold?</b>")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__pwned") is None
