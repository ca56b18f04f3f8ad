"""The console and `/docs` in a real browser: Playwright drives Debian's chromium (no browser
download) against a `qrt dev` in a subprocess. One browser for the package, one page per
module reused by its tests; every test fails on a console error or an uncaught page error the
page logged while it ran. Screenshots go to `.test-output/console/`."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.dev import DevServer
from tests.support.programs import ROOT, merge_programs
from tests.support.waiting import TIME_SCALE, eventually_sync

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


def _listening_sockets(port: int) -> set[str]:
    """The inodes of the sockets listening on TCP `port` (Linux's /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.add(fields[9])
    return found


def _owns_port(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on `port`."""
    sockets = {f"socket:[{inode}]" for inode in _listening_sockets(port)}
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in sockets:
                    return True
    return False


def start_dev(
    root: Path, options: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> DevServer:
    """A `qrt dev` serving on a port of its own. The free port it is given may be taken by
    another process before `qrt dev` binds it (on a machine busy with other test runs), and
    `DevServer.start` then sees that process listening: so this waits until the port is the
    server's own, and starts a server that could not bind again on another port."""
    for attempt in range(3):
        where = root / f"attempt-{attempt}"
        server = DevServer(where / "data", merge_programs(where / "programs"), options, env)
        server.start()
        process, port = server.process, server.port
        assert process is not None

        def bound(process: subprocess.Popen[bytes] = process, port: int = port) -> bool:
            return process.poll() is not None or _owns_port(process.pid, port)

        eventually_sync(bound, f"qrt dev serves on {port}", timeout=120)
        if process.poll() is None:
            return server
        server.kill()
    raise AssertionError(f"qrt dev could not bind a port three times: {server.log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[DevServer]:
    """A `qrt dev` with the test programs and its simulated device (keys off)."""
    running = start_dev(tmp_path_factory.mktemp("console"))
    try:
        yield running
    finally:
        running.kill()
