"""The chat panel in a real browser: streamed answer, citation that moves the viewer, escaping."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from clients import screenshot
from playwright.sync_api import expect

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
    assert page.get_by_test_id("slide-image").get_attribute("src").split("?")[0].endswith("/slides/3.png")


def test_script_in_notes_and_answers_is_shown_as_text(live_deck, page):
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    page.get_by_test_id("chat-input").fill("What happened with the pilot customer picking speed?")
    page.get_by_test_id("chat-send").click()
    page.locator(".chat-turn .chat-feedback").first.wait_for(timeout=60_000)
    text = page.get_by_test_id("chat-answer").first.text_content()
    # The extractive engine quotes whole sentences and leaves markup out (the cited passage keeps it:
    # see test_document_citation_shows_its_passage_as_text); nothing of it may run either way.
    assert "doubled picking speed" in text
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".chat-log img, .chat-log script").count() == 0
    page.get_by_test_id("chat-input").fill("<b>bold?</b> <script>window.__pwned = 3</script>")
    page.get_by_test_id("chat-send").click()
    page.locator(".chat-question").nth(1).wait_for()
    assert page.locator(".chat-question").nth(1).text_content().startswith("<b>bold?</b>")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__pwned") is None


# ---- the empty panel, cited passages, the counter, and errors in words -----------------------------

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def _revoke(live_deck) -> None:
    """Revoke the deck's link in the server's database, as the owner's Revoke button does."""
    from sqlalchemy import create_engine, text

    engine = create_engine(live_deck.database_url or f"sqlite:///{live_deck.instance / 'deckchat.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE share_links SET revoked_at = :now WHERE token = :token"),
                         {"now": datetime.now(UTC).replace(tzinfo=None), "token": live_deck.token})
    finally:
        engine.dispose()


def test_empty_panel_offers_the_faq_questions_and_sends_one(live_deck, page):
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    empty = page.get_by_test_id("chat-empty")
    assert empty.is_visible() and "answers cite the slide, FAQ or document" in empty.text_content()
    examples = page.get_by_test_id("chat-example")
    assert examples.all_text_contents() == ["How much have you raised so far?", "Who are your competitors?"]
    page.wait_for_function("document.querySelector('[data-testid=slide-image]').complete")
    screenshot(page, "chat-empty-1366")
    page.set_viewport_size(PHONE)
    screenshot(page, "chat-empty-390")
    page.set_viewport_size(DESKTOP)
    examples.first.click()
    page.locator(".chat-turn .chat-feedback").first.wait_for(timeout=60_000)
    assert page.locator(".chat-question").first.text_content() == "How much have you raised so far?"
    assert "1.5M seed round" in page.get_by_test_id("chat-answer").first.text_content()
    assert empty.is_hidden()
    assert page.get_by_test_id("chat-input").input_value() == ""


def test_faq_citation_opens_the_cited_passage(live_deck, page):
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    page.get_by_test_id("chat-input").fill("How much money have you raised so far?")
    page.get_by_test_id("chat-send").click()
    chip = page.locator('[data-testid="chat-source"][data-source^="faq:"]').first
    chip.wait_for(timeout=60_000)
    assert chip.text_content() == "FAQ: How much have you raised so far?" and chip.is_enabled()
    assert chip.get_attribute("aria-expanded") == "false"
    passage = page.get_by_test_id("chat-passage").first
    assert passage.is_hidden()
    chip.click()
    assert chip.get_attribute("aria-expanded") == "true" and passage.is_visible()
    assert chip.get_attribute("aria-controls") == passage.get_attribute("id")
    assert "We raised a 1.5M seed round from Example Ventures in 2022." in passage.text_content()
    screenshot(page, "chat-faq-passage-1366")
    page.set_viewport_size(PHONE)
    passage.scroll_into_view_if_needed()
    screenshot(page, "chat-faq-passage-390")
    page.set_viewport_size(DESKTOP)
    chip.click()  # a second click folds it away
    assert passage.is_hidden() and chip.get_attribute("aria-expanded") == "false"
    chip.focus()  # and the keyboard does the same: Enter opens, Escape closes and gives focus back
    page.keyboard.press("Enter")
    assert passage.is_visible()
    page.locator(".chat-passage-close").first.focus()
    page.keyboard.press("Escape")
    assert passage.is_hidden() and page.evaluate("document.activeElement.dataset.testid") == "chat-source"


def test_rate_limited_question_says_why_and_when_in_words(live_deck, lenient_page):
    page = lenient_page
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    # Use up this visitor's questions for the minute (empty questions are refused, but they count).
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    ask_url = live_deck.url + page.locator("#chat").get_attribute("data-ask-url")
    for _ in range(10):  # the context's own cookies, so the same visitor; not logged by the page
        page.request.post(ask_url, data={"question": "", "visit": "x"}, headers={"X-CSRFToken": csrf})
    page.get_by_test_id("chat-input").fill("What is the ask?")
    page.get_by_test_id("chat-send").click()
    answer = page.locator(".chat-answer.error").first
    answer.wait_for(timeout=30_000)
    assert answer.text_content() == "Too many questions at once. Please wait a moment and ask again."
    status = page.get_by_test_id("chat-status")
    assert status.is_visible() and re.match(r"You can ask again in \d+ seconds?\.", status.text_content())
    assert page.get_by_test_id("chat-send").is_disabled()
    assert page.get_by_test_id("chat-input").input_value() == "What is the ask?"  # kept for asking again
    assert page.locator(".chat-log b, .chat-log script").count() == 0
    screenshot(page, "chat-rate-limited-1366")
    page.set_viewport_size(PHONE)
    screenshot(page, "chat-rate-limited-390")


def test_revoked_link_shows_a_banner_and_the_slide_error(live_deck, lenient_page):
    page = lenient_page
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    page.wait_for_function("document.querySelector('[data-testid=slide-image]').naturalWidth > 0")
    banner = page.get_by_test_id("link-gone-banner")
    assert banner.is_hidden() and page.get_by_test_id("slide-error").is_hidden()
    _revoke(live_deck)
    page.get_by_test_id("thumb").nth(3).click()  # slide 4: never loaded before, so the browser asks for it
    error = page.get_by_test_id("slide-error")
    error.wait_for(timeout=10_000)
    assert "This slide could not be loaded. The link may have been revoked or expired." in error.text_content()
    assert page.get_by_test_id("slide-image").is_hidden()  # no broken-image icon
    banner.wait_for(timeout=10_000)
    assert banner.text_content() == "This link is no longer active. Ask the presenter for a new one."
    screenshot(page, "viewer-revoked-1366")
    page.set_viewport_size(PHONE)
    screenshot(page, "viewer-revoked-390")
    page.set_viewport_size(DESKTOP)
    # The chat says the same in words, and stops taking questions.
    page.get_by_test_id("chat-input").wait_for()
    assert page.get_by_test_id("chat-input").is_disabled() and page.get_by_test_id("chat-send").is_disabled()
    assert "no longer active" in page.get_by_test_id("chat-status").text_content()


def test_chat_410_shows_the_banner(live_deck, lenient_page):
    page = lenient_page
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    _revoke(live_deck)
    page.get_by_test_id("chat-input").fill("Is the deck still available?")
    page.get_by_test_id("chat-send").click()
    answer = page.locator(".chat-answer.error").first
    answer.wait_for(timeout=30_000)
    assert answer.text_content() == "This link is no longer active. Ask the presenter for a new one."
    assert page.get_by_test_id("link-gone-banner").is_visible()
    assert page.get_by_test_id("chat-input").is_disabled() and page.get_by_test_id("chat-send").is_disabled()
    assert page.get_by_test_id("chat-example").first.is_hidden()


def test_counter_and_a_note_when_a_paste_is_cut(live_deck, lenient_page):
    page = lenient_page
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    box, count, note = page.get_by_test_id("chat-input"), page.get_by_test_id("chat-count"), page.get_by_test_id("chat-note")
    assert count.text_content() == "0/1000"
    box.fill("x" * 850)
    assert count.text_content() == "850/1000" and "near" not in count.get_attribute("class")
    box.fill("x" * 950)
    assert count.text_content() == "950/1000" and "near" in count.get_attribute("class")
    box.fill("")
    page.evaluate("text => navigator.clipboard.writeText(text)", "y" * 5000)
    box.focus()
    page.keyboard.press("ControlOrMeta+v")
    page.wait_for_function("document.querySelector('[data-testid=chat-note]').textContent.length > 0")
    assert len(box.input_value()) == 1000
    assert count.text_content() == "1000/1000" and "full" in count.get_attribute("class")
    assert note.is_visible()
    assert note.text_content() == ("Your paste was 5,000 characters; only the first 1,000 fit. "
                                   "Questions can be at most 1,000 characters.")
    screenshot(page, "chat-paste-cut-1366")
    box.fill("A short question?")
    page.get_by_test_id("chat-send").click()
    assert count.text_content() == "0/1000" and note.text_content() == ""


def test_enter_while_an_answer_streams_keeps_the_question_and_says_why(live_deck, page):
    held = []  # the question's request waits here until the test lets it go on to the server
    page.route(re.compile(r".*/s/[^/]+/chat$"), lambda route: held.append(route))
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    box, note = page.get_by_test_id("chat-input"), page.get_by_test_id("chat-note")
    box.fill("How long does it take to train the gripper on a new item?")
    box.press("Enter")
    expect(page.get_by_test_id("chat-send")).to_be_disabled()
    box.fill("And what does it cost?")
    box.press("Enter")
    expect(note).to_have_text(re.compile("One question at a time"))
    assert box.input_value() == "And what does it cost?"
    assert page.locator(".chat-turn").count() == 1
    held.pop().continue_()
    page.get_by_test_id("chat-source").first.wait_for(timeout=60_000)
    expect(note).to_have_text("")
    box.press("Enter")  # now it goes
    expect(page.locator(".chat-turn")).to_have_count(2)
    assert box.input_value() == ""


def test_document_citation_shows_its_passage_as_text(live_server, pitch_files, tmp_path, page):
    doc = tmp_path / "financials.txt"
    doc.write_text("Sponsorship revenue was 40,000 USD in 2023, up from 25,000 USD in 2022. "
                   'Payback is <6 months & gross margin >40% on sponsorship revenue in 2023.\n'
                   'Revenue notes <img src=x onerror="window.__pwned = 5"><script>window.__pwned = 6</script> end.\n')
    deck = live_server.cli("deck", "import", str(pitch_files["pdf"]), "--owner", "owner@example.com",
                           "--doc", str(doc))
    token = live_server.cli("deck", "share", str(deck["deck_id"]))["token"]
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/s/{token}")
    page.get_by_test_id("chat-input").fill("What was the sponsorship revenue in 2023?")
    page.get_by_test_id("chat-send").click()
    chip = page.locator('[data-testid="chat-source"][data-source^="doc:"]').first
    chip.wait_for(timeout=60_000)
    assert chip.text_content().startswith("financials.txt") and chip.is_enabled()
    chip.click()
    passage = page.get_by_test_id("chat-passage").first
    assert passage.is_visible() and "From a document" in passage.text_content()
    text = page.get_by_test_id("chat-passage-text").first.text_content()
    assert "Sponsorship revenue was 40,000 USD in 2023" in text
    assert "Payback is <6 months & gross margin >40%" in text  # shown as the characters it is
    assert page.locator(".chat-log img, .chat-log script").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None


def test_a_reload_shows_the_chat_so_far(live_deck, page):
    page.goto(f"{live_deck.url}/s/{live_deck.token}")
    page.get_by_test_id("chat-input").fill("How long does it take to train the gripper on a new item? <b>x</b>")
    page.get_by_test_id("chat-send").click()
    page.get_by_test_id("feedback-up").first.wait_for(timeout=60_000)
    page.get_by_test_id("feedback-up").first.click()
    page.get_by_text("Thanks!").wait_for()
    before = page.get_by_test_id("chat-answer").first.text_content()
    page.reload()
    turns = page.locator(".chat-turn")
    assert turns.count() == 1 and not page.get_by_test_id("chat-empty").is_visible()
    assert turns.first.locator(".chat-question").text_content().endswith("<b>x</b>")  # shown as text
    assert page.locator(".chat-log b").count() == 0
    assert page.get_by_test_id("chat-answer").first.text_content() == before
    assert page.get_by_text("You found this helpful.").is_visible()  # rated once, not offered again
    chip = page.locator('[data-testid="chat-source"][data-source="slide:3"]')
    chip.click()
    assert page.get_by_test_id("slide-number").text_content() == "3"
