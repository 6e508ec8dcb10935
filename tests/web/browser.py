"""A real browser for the web tests: headless Debian Chromium driven by Playwright.

Import the fixtures into a test module (tests/ is on sys.path, see tests/fakes/__init__.py):

    from web.browser import browser, browser_page, open_file, open_url  # noqa: F401

`browser` (module-scoped) is one Chromium; `browser_page` a fresh page (1280x800, its own
context) per test. `open_file(page, path)` / `open_url(page, url)` load a page with every
request to anything but file:// and 127.0.0.1/localhost refused and counted, dialogs
(alert, confirm) dismissed and recorded, uncaught page errors recorded: a `Visit`.

Playwright never downloads a browser here: it drives /usr/bin/chromium (`.ci/run` installs
Debian's package when it is missing); without one, these tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-default-apps", "--disable-extensions"]
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@pytest.fixture(scope="module")
def browser():
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium: install Debian's `chromium` package (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def browser_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


@dataclass
class Visit:
    page: object
    blocked: list = field(default_factory=list)  # URLs refused (the page tried to reach them)
    requests: list = field(default_factory=list)  # every URL the page asked for
    dialogs: list = field(default_factory=list)  # messages of alert/confirm/prompt (dismissed)
    errors: list = field(default_factory=list)  # uncaught exceptions in the page


def _allowed(url: str, local: bool) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "blob", "about"):
        return True
    return local and parts.scheme in ("http", "https", "ws") and (parts.hostname or "") in LOCAL_HOSTS


def watch(page, local: bool = True) -> Visit:
    """Start refusing and counting requests, and recording dialogs and errors, on `page`."""
    visit = Visit(page)

    def route(r):
        visit.requests.append(r.request.url)
        if _allowed(r.request.url, local):
            r.continue_()
        else:
            visit.blocked.append(r.request.url)
            r.abort("blockedbyclient")

    page.route("**/*", route)
    page.on("request", lambda req: None if req.url in visit.requests else visit.requests.append(req.url))
    page.on("dialog", lambda d: (visit.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: visit.errors.append(str(e)))
    return visit


def open_file(page, path, *, local: bool = False) -> Visit:
    """Open a file from disk (file://) with every network request refused and counted
    (`local`: let 127.0.0.1 through too)."""
    visit = watch(page, local)
    page.goto(Path(path).resolve().as_uri(), wait_until="load")
    return visit


def open_url(page, url: str) -> Visit:
    """Open a page of a local server; requests elsewhere refused and counted."""
    visit = watch(page, True)
    page.goto(url, wait_until="load")
    return visit
