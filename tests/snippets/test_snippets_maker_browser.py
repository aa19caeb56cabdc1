"""snippet-maker.js in Chromium: selecting transcript words shows the bar with the right times,
creating posts them (with the CSRF token) and shows the link and embed code as text; the
"Clip from current time" controls make a range from the player; it fits a 375 px screen.

The page is a harness with the conversation page's DOM contract (#player, #transcript >
p.seg > span.w, #snippet-maker); the scripts are the real static files, and the API answer is
given by the test (the API itself is tested in test_snippets_api.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snippets_support import make_media

STATIC = Path(__file__).resolve().parents[2] / "src" / "junto" / "web" / "static"
ORIGIN = "http://junto.test"
EVIL = '<img src=x onerror="window.pwned=1">'

HARNESS = """<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="tok123">
<link rel="stylesheet" href="/static/css/snippet.css"></head><body>
<form method="post" action="/signout"></form>
<video id="player" src="/media.mp4" muted playsinline preload="auto"></video>
<div id="transcript" data-slug="conv1">
{segments}
</div>
<div id="snippet-maker"></div>
<script type="module" src="/static/js/snippet-maker.js"></script>
</body></html>"""
SEGMENTS = [
    (2, [(12000, 12300, "Rivers"), (12400, 12700, "brought"), (12800, 13100, "trade")]),
    (3, [(30000, 30400, "and"), (30500, 31500, "people")]),
]


def harness() -> str:
    paragraphs = []
    for speaker, words in SEGMENTS:
        spans = " ".join(
            f'<span class="w" data-start="{a}" data-end="{b}">{w}</span>' for a, b, w in words
        )
        paragraphs.append(
            f'<p class="seg" data-start="{words[0][0]}" data-end="{words[-1][1]}" '
            f'data-speaker="{speaker}">{spans}</p>'
        )
    return HARNESS.replace("{segments}", "\n".join(paragraphs))


async def test_selecting_words_makes_a_snippet(tmp_path: Path) -> None:
    from playwright.async_api import Route, async_playwright

    video, _ = make_media(tmp_path, 40)
    posted: list[dict[str, Any]] = []

    async def serve(route: Route) -> None:
        url = route.request.url.removeprefix(ORIGIN)
        if url == "/":
            await route.fulfill(body=harness(), content_type="text/html")
        elif url.startswith("/static/"):
            path = STATIC / url.removeprefix("/static/")
            kind = "text/javascript" if path.suffix == ".js" else "text/css"
            await route.fulfill(body=path.read_text(), content_type=kind)
        elif url == "/media.mp4":
            # With Range support, or Chromium cannot seek the player.
            data = video.read_bytes()
            first, _, last = (
                (route.request.headers.get("range") or "bytes=0-").removeprefix("bytes=")
            ).partition("-")
            a, b = int(first or 0), int(last) if last else len(data) - 1
            await route.fulfill(
                status=206,
                body=data[a : b + 1],
                headers={
                    "Content-Type": "video/mp4",
                    "Accept-Ranges": "bytes",
                    "Content-Range": f"bytes {a}-{b}/{len(data)}",
                },
            )
        elif url == "/api/conversations/conv1/snippets":
            posted.append(
                {"body": json.loads(route.request.post_data or "{}"),
                 "csrf": route.request.headers.get("x-csrf-token")}
            )  # fmt: skip
            await route.fulfill(
                status=201,
                content_type="application/json",
                body=json.dumps(
                    {"slug": "snip1", "url": f"{ORIGIN}/s/snip1", "title": EVIL,
                     "embed_html": f'<iframe src="{ORIGIN}/s/snip1/embed"></iframe>'}
                ),
            )  # fmt: skip
        else:
            await route.fulfill(status=404, body="")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 740})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.route(f"{ORIGIN}/**", serve)
            await page.goto(f"{ORIGIN}/")
            # Select from "brought" to "and" with the mouse.
            start = await page.locator("span.w", has_text="brought").bounding_box()
            end = await page.locator("span.w", has_text="and").bounding_box()
            assert start and end
            await page.mouse.move(start["x"] + 2, start["y"] + start["height"] / 2)
            await page.mouse.down()
            await page.mouse.move(end["x"] + end["width"] - 2, end["y"] + end["height"] / 2)
            await page.mouse.up()
            bar = page.locator("form.snippet-bar")
            await bar.wait_for(state="visible")
            assert await page.locator(".snippet-range").inner_text() == (
                "Create snippet (0:12\u20130:30)"
            )
            # Keyboard: into the title, type, Enter submits.
            await page.locator("#snippet-title").focus()
            await page.keyboard.type("Trade & people")
            await page.keyboard.press("Enter")
            await page.locator(".snippet-result").wait_for(state="visible")
            assert posted == [
                {"body": {"start_ms": 12400, "end_ms": 30400, "title": "Trade & people"},
                 "csrf": "tok123"}
            ]  # fmt: skip
            result = page.locator(".snippet-result")
            assert EVIL in await result.locator("a").inner_text()  # shown as text
            assert await page.evaluate("window.pwned") is None
            assert await page.locator("#snippet-new-link").input_value() == f"{ORIGIN}/s/snip1"
            assert "iframe" in await page.locator("#snippet-new-embed").input_value()
            # Nothing wider than the phone's screen.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, width

            # "Clip from current time": start at 2 s, end at 5 s of the player.
            await page.wait_for_function("document.getElementById('player').readyState >= 1")
            await page.evaluate("document.getElementById('player').currentTime = 2")
            await page.get_by_role("button", name="Start here").click()
            await page.evaluate("document.getElementById('player').currentTime = 5")
            await page.get_by_role("button", name="End here").click()
            said = await page.locator(".snippet-status").inner_text()
            assert await page.locator(".snippet-range").inner_text() == (
                "Create snippet (0:02\u20130:05)"
            ), said
            assert errors == []
        finally:
            await browser.close()
