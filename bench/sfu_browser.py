"""Join-to-first-frame as a person sees it: headless Chromium clicks "Watch and listen live".

The room page of a live conversation whose speakers are publishing is opened as an anonymous
viewer; once the button shows, Playwright clicks it, and the page itself times the click (a
capturing listener on `.watch-button`) to the first remote video frame presented, with
`requestVideoFrameCallback` on every `<video>` of the page (the stage's tiles are created as
publishers come and go, so a MutationObserver watches for new ones). If a frame callback never
comes (a browser without rVFC), the fallback is polling `getStats()` for `framesDecoded > 0` on
the page's peer connections every 10 ms. The page is reloaded between trials, which closes its
socket and with it the subscription (docs/protocol.md: media belongs to one socket).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import async_playwright

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]

# Runs before the page's own scripts (Playwright injects it over CDP, so the page's CSP does
# not apply to it).
PROBE_JS = """
(() => {
  const b = window.__juntoBench = { click: null, frame: null, decoded: null, pcs: [] };
  document.addEventListener("click", (event) => {
    if (b.click !== null || !event.target.closest || !event.target.closest(".watch-button")) return;
    b.click = performance.now();
    const poll = setInterval(async () => {
      if (b.decoded !== null || performance.now() - b.click > 30000) {
        clearInterval(poll);
        return;
      }
      for (const pc of b.pcs) {
        const stats = await pc.getStats().catch(() => null);
        if (!stats) continue;
        stats.forEach((s) => {
          const video = s.type === "inbound-rtp" && s.kind === "video";
          if (b.decoded === null && video && s.framesDecoded > 0) {
            b.decoded = performance.now();
          }
        });
      }
    }, 10);
  }, true);
  const watch = (video) => {
    if (video.__juntoBench || !("requestVideoFrameCallback" in video)) return;
    video.__juntoBench = true;
    const onFrame = (now) => {
      if (b.click !== null && b.frame === null && now >= b.click) { b.frame = now; return; }
      if (b.frame === null) video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      for (const node of m.addedNodes) {
        if (node.nodeName === "VIDEO") watch(node);
        else if (node.querySelectorAll) node.querySelectorAll("video").forEach(watch);
      }
    }
  }).observe(document, { childList: true, subtree: true });
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); b.pcs.push(this); }
  };
})();
"""


async def join_times(
    page_url: str, trials: int, workdir: Path, chromium: str, timeout_s: float = 20.0
) -> tuple[list[float], str]:
    """Milliseconds from the click to the first remote video frame, one value per trial."""
    times: list[float] = []
    methods: set[str] = set()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            await context.add_init_script(PROBE_JS)
            page = await context.new_page()
            for trial in range(trials):
                await page.goto(page_url, wait_until="load")
                button = page.locator(".watch-button")
                await button.wait_for(state="visible", timeout=timeout_s * 1000)
                # Let the page settle (socket open, publishers known) as it would while a
                # person reads it: the figure is the click's, not the page load's.
                await asyncio.sleep(1.0)
                await button.click()
                try:
                    await page.wait_for_function(
                        "() => window.__juntoBench.frame !== null"
                        " || window.__juntoBench.decoded !== null",
                        timeout=timeout_s * 1000,
                    )
                except Exception:
                    shot = workdir / f"join-trial-{trial + 1}.png"
                    await page.screenshot(path=str(shot))
                    raise RuntimeError(
                        f"expected a remote video frame within {timeout_s:.0f} s of the click, "
                        f"got none (screenshot {shot})"
                    ) from None
                # Give the other signal a moment, so both are recorded when both exist.
                await asyncio.sleep(0.3)
                probe = await page.evaluate(
                    "() => ({click: window.__juntoBench.click, frame: window.__juntoBench.frame,"
                    " decoded: window.__juntoBench.decoded})"
                )
                if probe["frame"] is not None:
                    times.append(round(probe["frame"] - probe["click"], 1))
                    methods.add("requestVideoFrameCallback")
                else:
                    times.append(round(probe["decoded"] - probe["click"], 1))
                    methods.add("getStats framesDecoded")
            # What the viewer saw at the end (kept with --keep): tiles with live video.
            await asyncio.sleep(1.0)
            await page.screenshot(path=str(workdir / "join-last.png"))
            await context.close()
        finally:
            await browser.close()
    return times, " + ".join(sorted(methods))
