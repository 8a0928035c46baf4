"""Playwright driving Debian's Chromium (never a downloaded browser), with console and network checks."""
from __future__ import annotations

import os
import shutil

import pytest
from clients import watched_page


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
