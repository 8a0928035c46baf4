"""The whole journey in a real browser: a presenter shares a deck, an investor reads and asks, the owner sees it."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from clients import screenshot
from factories import REAL_PPTX

pytestmark = pytest.mark.browser


def _watch(page, errors: list, outside: list) -> None:
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: outside.append(req.url)
            if urlsplit(req.url).hostname not in ("127.0.0.1", "localhost", None) else None)


def test_presenter_investor_owner_journey(live_server, browser, pitch_files):
    errors: list[str] = []
    outside: list[str] = []
    base = live_server.url

    # The presenter signs up and uploads a PDF deck with notes and FAQ, and a PPTX deck.
    owner_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    owner = owner_ctx.new_page()
    _watch(owner, errors, outside)
    owner.goto(f"{base}/signup")
    owner.get_by_test_id("signup-email").fill("presenter@example.com")
    owner.get_by_test_id("signup-password").fill("a-long-password")
    owner.get_by_test_id("signup-submit").click()
    owner.wait_for_url(f"{base}/decks/")
    screenshot(owner, "journey-01-signed-up")
    owner.get_by_test_id("upload-link").click()
    owner.get_by_test_id("upload-title").fill("Acme Robotics seed")
    owner.get_by_test_id("upload-slides").set_input_files(str(pitch_files["pdf"]))
    owner.get_by_test_id("upload-notes").set_input_files(str(pitch_files["notes"]))
    owner.get_by_test_id("upload-faq").set_input_files(str(pitch_files["faq"]))
    owner.get_by_test_id("upload-submit").click()
    owner.get_by_test_id("deck-title").wait_for(timeout=120_000)
    assert owner.get_by_test_id("deck-title").text_content() == "Acme Robotics seed"
    deck_url = owner.url
    screenshot(owner, "journey-02-pdf-uploaded")
    if REAL_PPTX.exists():
        owner.goto(f"{base}/decks/new")
        owner.get_by_test_id("upload-slides").set_input_files(str(REAL_PPTX))
        owner.get_by_test_id("upload-submit").click()
        owner.get_by_test_id("deck-title").wait_for(timeout=180_000)
        assert "21 slides" in owner.content()
        screenshot(owner, "journey-03-pptx-uploaded")

    # A password link that asks for the investor's email.
    owner.goto(deck_url)
    form = owner.get_by_test_id("link-form")
    form.locator("input[name=password]").fill("open sesame")
    form.locator("input[name=require_email]").check()
    owner.get_by_test_id("create-link").click()
    share_url = owner.get_by_test_id("share-url").first.get_attribute("href")
    screenshot(owner, "journey-04-link-created")

    # The investor unlocks, reads and asks two questions.
    investor_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    investor = investor_ctx.new_page()
    _watch(investor, errors, outside)
    investor.goto(f"{base}{share_url}")
    assert investor.get_by_test_id("slide-image").count() == 0
    investor.get_by_test_id("unlock-email").fill("vc@fund.example")
    investor.get_by_test_id("unlock-password").fill("open sesame")
    investor.get_by_test_id("unlock-submit").click()
    investor.get_by_test_id("slide-image").wait_for()
    screenshot(investor, "journey-05-viewer")
    investor.wait_for_timeout(1500)
    investor.keyboard.press("ArrowRight")
    investor.wait_for_timeout(2000)
    investor.keyboard.press("ArrowRight")
    for i, question in enumerate(["How long does it take to teach the gripper a new item?",
                                  "How much have you raised so far?"]):
        investor.get_by_test_id("chat-input").fill(question)
        investor.get_by_test_id("chat-send").click()
        investor.locator(".chat-turn .chat-feedback").nth(i).wait_for(timeout=90_000)
    answers = investor.get_by_test_id("chat-answer")
    assert "five minutes" in answers.nth(0).text_content()
    assert "1.5M seed" in answers.nth(1).text_content()
    assert investor.locator('[data-testid="chat-source"][data-source="slide:3"]').count() >= 1
    assert investor.locator('[data-testid="chat-source"][data-source^="faq:"]').count() >= 1
    screenshot(investor, "journey-06-answers")
    investor.goto("about:blank")  # leaving sends the last visible-time report
    time.sleep(0.5)

    # The owner sees the visit, its visible times and its questions.
    owner.goto(deck_url.rstrip("/") + "/analytics")
    owner.wait_for_load_state("networkidle")
    screenshot(owner, "journey-07-dashboard")
    page_text = owner.content()
    assert "How long does it take to teach the gripper a new item?" in page_text
    visits = owner.locator("a[href*='/analytics/visits/']")
    assert visits.count() >= 1
    visits.first.click()
    owner.wait_for_load_state("networkidle")
    screenshot(owner, "journey-08-visit")
    visit_text = owner.content()
    assert "vc@fund.example" in visit_text
    assert "How much have you raised so far?" in visit_text
    owner_ctx.close()
    investor_ctx.close()
    assert errors == [] and outside == []
