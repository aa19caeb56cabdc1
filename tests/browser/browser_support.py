"""Browser fixtures: a live node per test module and one headless Chromium for every browser test.

Each person is a separate browser context (own cookies), so a host, a member and a guest can sit
in one room at once. A Chromium costs about a third of a core, so all the browser tests of the
session share one (see `SharedChromium`) and keep pages few. Import the fixtures into a test
module (there is no conftest here: the root one is imported by name as `conftest`); pytest then
makes one `node` per module, since it registers a fixture once per module it is found in. Tests
that use `browser` run on the session's event loop, where it was started:
`pytest.mark.asyncio(loop_scope="session")`. Debian's chromium is used as is (never
`playwright install`).

Test modules outside tests/browser reach this module by adding this folder to sys.path (pytest
puts only a test module's own folder there), under the same name `browser_support`, so that the
whole session shares this one module and its one Chromium.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
)

# The type `async_playwright()` returns: playwright.async_api leaves it out of its __all__.
from playwright.async_api._context_manager import PlaywrightContextManager

from conftest import LiveNode, make_live_node
from helpers import need_tool

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery"
# Set JUNTO_SCREENSHOTS=/some/dir to keep screenshots of what the tests saw.
SCREENSHOTS = os.environ.get("JUNTO_SCREENSHOTS", "")


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    """A `junto serve` process shared by the browser tests (SQLite, in-memory pub/sub)."""
    need_tool(CHROMIUM, "Debian package chromium")
    live = make_live_node(tmp_path_factory.mktemp("browser-node"))
    live.start()
    yield live
    live.stop()


class SharedChromium:
    """The one Chromium of the test session, started by its first user and closed by its last.

    Every module that imports the `browser` fixture gets its own session-scoped copy of it from
    pytest; counting the copies in use lets them all share one browser process, in any order.
    """

    def __init__(self) -> None:
        self._users = 0
        self._playwright: PlaywrightContextManager | None = None
        self._browser: Browser | None = None

    async def acquire(self) -> Browser:
        if self._browser is None:
            playwright = async_playwright()
            try:
                pw = await playwright.__aenter__()
                self._browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS
                )
            except BaseException:
                await playwright.__aexit__(None, None, None)
                raise
            self._playwright = playwright
        self._users += 1
        return self._browser

    async def release(self) -> None:
        self._users -= 1
        if self._users > 0 or self._browser is None or self._playwright is None:
            return
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        try:
            await browser.close()
        finally:
            await playwright.__aexit__(None, None, None)


CHROMIUM_PROCESS = SharedChromium()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """The session's headless Chromium; each test opens its own contexts in it."""
    need_tool(CHROMIUM, "Debian package chromium")
    chromium = await CHROMIUM_PROCESS.acquire()
    try:
        yield chromium
    finally:
        await CHROMIUM_PROCESS.release()


@asynccontextmanager
async def new_context(browser: Browser, **options: Any) -> AsyncIterator[BrowserContext]:
    """A browser context closed afterwards even when the test fails, since the browser (and
    anything left open in it) outlives the test."""
    context = await browser.new_context(**options)
    try:
        yield context
    finally:
        await context.close()


@dataclass
class Person:
    """One person's browser context and page, with every script error the page raised."""

    name: str
    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    me: dict[str, Any] = field(default_factory=dict)

    def assert_no_script_errors(self) -> None:
        assert not self.errors, f"{self.name}'s page had script errors: {self.errors}"


async def open_person(
    browser: Browser, node: LiveNode, name: str, **context_options: Any
) -> Person:
    context = await browser.new_context(base_url=node.url, **context_options)
    page = await context.new_page()
    person = Person(name=name, context=context, page=page)

    def on_console(msg: ConsoleMessage) -> None:
        # CSP violations and uncaught rejections show up as console errors.
        where = str(msg.location.get("url", ""))
        if msg.type == "error" and not where.endswith("/favicon.ico"):
            person.errors.append(f"{msg.text} ({where})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: person.errors.append(str(exc)))

    async def on_dialog(dialog: Any) -> None:
        person.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await page.goto("/healthz")  # an origin for fetch(), and the CSRF cookie
    return person


async def api(page: Page, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the JSON API from inside the page, with its cookies and CSRF token."""
    result: dict[str, Any] = await page.evaluate(
        """async ([method, path, body]) => {
            const csrf = (document.cookie.match(/(?:^|; )junto_csrf=([^;]*)/) || [])[1] || "";
            const headers = {"Content-Type": "application/json",
                             "X-CSRF-Token": decodeURIComponent(csrf)};
            const r = await fetch(path, {method, credentials: "same-origin", headers,
              body: body === null ? undefined : JSON.stringify(body)});
            const text = await r.text();
            return {status: r.status, text};
        }""",
        [method, path, body],
    )
    text = result["text"]
    try:
        parsed: Any = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return int(result["status"]), parsed


async def sign_up(person: Person, display_name: str) -> dict[str, Any]:
    username = re.sub(r"[^a-z0-9_]", "", display_name.lower().replace(" ", "_"))[:20]
    username += "_" + secrets.token_hex(3)
    status, body = await api(
        person.page,
        "POST",
        "/api/signup",
        {"username": username, "password": PASSWORD, "display_name": display_name},
    )
    assert status == 201, f"sign-up failed: {status} {body}"
    assert isinstance(body, dict)  # the signed-up user, as JSON
    person.me = body
    return body


async def create_live_conversation(host: Person, title: str, **fields: Any) -> str:
    status, body = await api(host.page, "POST", "/api/conversations", {"title": title, **fields})
    assert status == 201, f"creating the conversation failed: {status} {body}"
    slug: str = body["slug"]
    status, body = await api(host.page, "POST", f"/api/conversations/{slug}/start", {})
    assert status == 200, f"starting the conversation failed: {status} {body}"
    return slug


async def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    # Evaluated through the DevTools protocol rather than added as a <script>: the pages' CSP
    # (script-src 'self') rightly refuses inline scripts, and the test keeps that CSP on.
    await page.evaluate(AXE_JS.read_text() + "\n;undefined")
    result: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = [n.get("target") for n in v.get("nodes", [])][:5]
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return "\n".join(lines)


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Keep what the page shows (only when JUNTO_SCREENSHOTS names a folder)."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=full_page)
