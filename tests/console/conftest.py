"""The console and `/docs` in a real browser: Playwright drives Debian's chromium (no browser
download) against a `qrt dev` in a subprocess. One browser for the package, one page per
module reused by its tests; every test fails on a console error or an uncaught page error the
page logged while it ran. Screenshots go to `.test-output/console/`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.dev import DevServer, serving
from tests.support.programs import ROOT
from tests.support.waiting import TIME_SCALE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("QRT_TEST_CHROMIUM", "/usr/bin/chromium"))
"""The browser the tests drive (Debian's `chromium` package; `make system-packages`)."""
SHOTS = ROOT / ".test-output" / "console"
WAIT_MS = 90_000 * TIME_SCALE
"""How long a page may take to show what a test waits for (a loaded machine is slow)."""


class Watched:
    """A page, and the errors it logged (console errors, uncaught exceptions, dialogs)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text} at {message.location}")

    def _dialog(self, dialog: Any) -> None:
        self.errors.append(f"unexpected dialog: {dialog.message}")
        dialog.dismiss()

    def shot(self, name: str) -> Path:
        """A full-page screenshot under .test-output/console/."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"no browser at {CHROMIUM}: the console's browser tests need Debian's chromium "
            "(make system-packages, or apt-get install chromium; QRT_TEST_CHROMIUM names another)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Browser) -> Iterator[Watched]:
    """A page in a context of its own (its own sessionStorage), closed after the module."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


@pytest.fixture(scope="module")
def watched(browser: Browser) -> Iterator[Watched]:
    yield from open_page(browser)


@pytest.fixture
def page(watched: Watched) -> Iterator[Page]:
    """The module's page; the test fails if the page logs an error while it runs."""
    watched.errors.clear()
    yield watched.page
    assert not watched.errors, watched.errors


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[DevServer]:
    """A `qrt dev` with the test programs and its simulated device (keys off)."""
    with serving(tmp_path_factory.mktemp("console")) as running:
        yield running
