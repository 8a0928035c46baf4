"""The comparison page in a real browser against `deckchat serve`: start, progress, report, a blind vote."""
from __future__ import annotations

import re

import pytest
from clients import screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def compare_server(tmp_path_factory):
    """A running server whose owners may compare two tiny models (built here), with an owner account."""
    from live import LiveServer

    from deckchat.ml.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("browser-compare-models")
    models = [str(build_tiny_model(root / "alpha", "gpt2")), str(build_tiny_model(root / "beta", "gpt_neo"))]
    instance = tmp_path_factory.mktemp("browser-compare-instance")
    with LiveServer(instance, env={"DECKCHAT_COMPARE_MODELS": ",".join(models)}) as server:
        server.cli("user", "create", "owner@example.com", "--password", "password123")
        server.models = models
        yield server


def _log_in(page, url: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_test_id("login-email").fill("owner@example.com")
    page.get_by_test_id("login-password").fill("password123")
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(r"/decks/"))


def test_start_follow_read_and_vote(compare_server, pitch_files, page):
    server = compare_server
    deck_id = server.cli("deck", "import", str(pitch_files["pdf"]), "--owner", "owner@example.com",
                         "--notes", str(pitch_files["notes"]), "--faq", str(pitch_files["faq"]))["deck_id"]
    polls: list[dict] = []
    page.on("response", lambda r: polls.append(r.json()) if r.url.endswith("/status") and r.ok else None)
    _log_in(page, server.url)
    page.goto(f"{server.url}/decks/{deck_id}")
    page.get_by_test_id("compare-link").click()
    assert page.get_by_test_id("cpu-only").is_visible()  # no GPU here: the page says so
    for model in server.models:
        page.locator(f'input[name="models"][value="{model}"]').check()
    page.get_by_test_id("compare-runs").fill("2")
    page.get_by_test_id("compare-start").click()
    page.wait_for_url(re.compile(rf"/decks/{deck_id}/compare/\d+$"))
    assert page.get_by_test_id("compare-progress").is_visible()
    screenshot(page, "compare-progress")
    page.get_by_test_id("compare-report").wait_for(timeout=180_000)
    assert any(p["status"] in ("queued", "waiting", "running") for p in polls), polls  # the page followed it
    assert page.get_by_test_id("compare-model-row").count() == 2
    assert page.get_by_test_id("compare-question").count() == 4
    assert page.get_by_test_id("compare-answer").count() == 2 * 4 * 2
    screenshot(page, "compare-report")

    page.get_by_test_id("compare-vote-link").click()
    question = page.get_by_test_id("vote-question").text_content()
    assert question in {"What does your app do?", "How much money will we make?", "How exactly does it work?",
                        "How much have you raised?"}
    assert not any(model in page.content() for model in server.models)  # blind
    screenshot(page, "compare-vote")
    page.get_by_test_id("vote-left-button").click()
    page.get_by_text("Vote recorded.").wait_for()
    page.get_by_test_id("compare-back").click()
    assert page.get_by_test_id("compare-rating-row").count() == 2
    assert sorted(v.text_content() for v in page.get_by_test_id("compare-rating-votes").all()) == ["1", "1"]
    assert server.query("SELECT winner FROM comparison_votes WHERE winner IS NOT NULL") == [("left",)]
