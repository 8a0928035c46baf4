"""Upload forms in a real browser: the progress shows while the file goes up and the server works, the page
the server answers with (its message, or the field errors) replaces the form, and a redirect moves the address."""
from __future__ import annotations

import pytest
from clients import browser_login, screenshot
from factories import PITCH_PAGES, make_pdf

pytestmark = pytest.mark.browser


def test_upload_shows_progress_then_the_deck_or_the_errors(live_server, lenient_page, tmp_path):
    page = lenient_page  # the refused upload's 400 is logged by the browser
    good, bad = tmp_path / "pitch.pdf", tmp_path / "not-a-deck.pdf"
    good.write_bytes(make_pdf(PITCH_PAGES))
    bad.write_text("just text")
    browser_login(page, live_server)

    page.goto(f"{live_server.url}/decks/new")
    progress = page.get_by_test_id("upload-progress")
    assert progress.is_hidden()
    page.get_by_test_id("upload-slides").set_input_files(str(bad))
    page.get_by_test_id("upload-submit").click()
    page.get_by_test_id("upload-rechoose").wait_for()  # the server's 400 page, written in place
    assert page.url == f"{live_server.url}/decks/new"
    assert page.locator(".error", has_text="PDF").count() >= 1

    # Hold the upload a moment, so the progress is seen before the server's answer replaces the page.
    page.route("**/decks/new", lambda route: page.wait_for_timeout(1500) or route.continue_())
    page.get_by_test_id("upload-title").fill("Progress deck")
    page.get_by_test_id("upload-slides").set_input_files(str(good))
    page.get_by_test_id("upload-submit").click()
    progress.wait_for(state="visible")
    assert page.get_by_test_id("upload-submit").is_disabled()  # no second upload meanwhile
    screenshot(page, "upload-progress")
    page.get_by_test_id("deck-title").wait_for(timeout=60_000)
    assert page.get_by_test_id("deck-title").text_content() == "Progress deck"
    assert "Imported “Progress deck” with 5 slides." in page.content()
    assert page.url.startswith(f"{live_server.url}/decks/") and page.url.split("/")[-1].isdigit()
    dialogs = []  # the written page's own scripts run: Delete still asks first
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete").click()
    page.wait_for_timeout(300)
    assert dialogs == ["Delete this deck, its links and all visits?"]
    page.reload()  # the address is the deck page's own: reloading does not post again
    assert page.get_by_test_id("deck-title").text_content() == "Progress deck"

    settings = page.url + "/assistant"
    page.goto(settings)  # a refused new version: its page stays at an address a reload can open
    page.get_by_test_id("replace-slides").set_input_files(str(bad))
    page.get_by_test_id("replace-submit").click()
    page.locator('[data-testid="replace-form"] .error').wait_for()
    assert page.url == settings

    # Over the size limit: said before anything is sent (here the limit is lowered to 10 bytes).
    page.evaluate("document.querySelector('[data-testid=replace-form]').dataset.maxBytes = '10'")
    page.get_by_test_id("replace-slides").set_input_files(str(good))
    page.get_by_test_id("replace-submit").click()
    progress = page.locator('[data-testid="replace-form"] [data-testid="upload-progress"]')
    assert "the limit is 0 MB" in progress.text_content() and page.url == settings
    assert page.get_by_test_id("replace-submit").is_enabled()
