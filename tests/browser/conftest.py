"""Playwright driving Debian's Chromium (never a downloaded browser), with console and network checks."""
from __future__ import annotations

import os
import re
import shutil

import pytest
from clients import watched_page


# Chromium logs every 4xx answer to a fetch, an XHR or an image as a console error: these are expected where a
# test provokes them (a refused upload, a revoked link, a rate limit); anything else still fails the test.
EXPECTED_HTTP = re.compile(r"Failed to load resource: the server responded with a status of (400|410|429)")
DESKTOP = {"width": 1366, "height": 900}
CHROMIUM = os.environ.get("DECKCHAT_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page; fails the test on console errors or on any request leaving localhost."""
    with watched_page(browser, viewport={"width": 1280, "height": 800}) as page:
        yield page


@pytest.fixture
def lenient_page(browser):
    """A page like `page` that also accepts the browser's own log lines for expected 400, 410 and 429 answers
    (EXPECTED_HTTP); script errors and any other console error still fail."""
    context = browser.new_context(viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not EXPECTED_HTTP.search(msg.text) else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors
