"""static/js/realtime.js in Chromium, against a scripted in-page socket.

The room tests show the client working against the real hub; these pin down the parts that are
hard to provoke there: the backoff schedule, resuming from the last id after a drop, dropping
repeats, refusing gaps, the heartbeat watchdog, final close codes and ref-matched errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from browser_support import browser, node, open_person  # noqa: F401 - fixtures
from playwright.async_api import Browser, Page

from conftest import LiveNode

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# A WebSocket stand-in the test drives from the "server" side: it records what the client
# sends and lets the script deliver frames or close with a code.
HARNESS = """
async () => {
  const { RealtimeClient } = await import("/static/js/realtime.js");
  class FakeSocket extends EventTarget {
    static all = [];
    constructor(url) {
      super();
      this.url = url; this.readyState = 0; this.sent = [];
      FakeSocket.all.push(this);
      setTimeout(() => { this.readyState = 1; this.dispatchEvent(new Event("open")); }, 0);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code = 1000, reason = "") { this.serverClose(code, reason); }
    serverClose(code, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      const ev = new Event("close"); ev.code = code; ev.reason = reason;
      this.dispatchEvent(ev);
    }
    deliver(frame) {
      const ev = new Event("message"); ev.data = JSON.stringify(frame);
      this.dispatchEvent(ev);
    }
  }
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (fn, ms = 3000) => {
    const end = Date.now() + ms;
    while (!fn()) { if (Date.now() > end) throw new Error("timed out: " + fn); await wait(5); }
  };
  window.rt = { RealtimeClient, FakeSocket, wait, until };
}
"""


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, node: LiveNode) -> AsyncIterator[Page]:  # noqa: F811
    person = await open_person(browser, node, "unit")  # on the node's origin, for import()
    await person.page.evaluate(HARNESS)
    yield person.page
    await person.context.close()


async def run(page: Page, body: str) -> Any:
    return await page.evaluate(
        "async () => { const { RealtimeClient, FakeSocket, wait, until } = window.rt;\n"
        + body
        + "\n}"
    )


def welcome(hb: float = 15) -> str:
    return f'{{type: "welcome", protocol: 1, you: {{}}, heartbeat_seconds: {hb}, resume: "replay"}}'


async def test_backoff_grows_with_jitter_and_is_capped(page: Page) -> None:
    delays = await run(
        page,
        """
        const options = { minDelay: 100, maxDelay: 1000 };
        const low = new RealtimeClient("/ws/x", { ...options, random: () => 0 });
        const high = new RealtimeClient("/ws/x", { ...options, random: () => 0.999 });
        const out = [];
        for (const c of [low, high]) {
          const seen = [];
          c.addEventListener("status", (e) => { if (e.detail.delay) seen.push(e.detail.delay); });
          for (let i = 0; i < 6; i++) { c.scheduleRetry("test"); clearTimeout(c.retryTimer); }
          out.push(seen);
        }
        return out;
        """,
    )
    assert delays[0] == [50, 100, 200, 400, 500, 500]  # half of min·2^n, capped at max/2
    assert delays[1] == [100, 200, 400, 800, 1000, 1000]


async def test_resumes_from_the_last_id_and_never_repeats_or_skips(page: Page) -> None:
    result = await run(
        page,
        f"""
        const c = new RealtimeClient("ws://example.invalid/ws", {{
            WebSocket: FakeSocket, minDelay: 10, maxDelay: 20 }});
        const ids = [];
        c.addEventListener("room", (e) => ids.push(e.detail.id));
        c.connect();
        await until(() => FakeSocket.all.length === 1 && FakeSocket.all[0].sent.length === 1);
        const first = FakeSocket.all[0];
        first.deliver({welcome(60)});
        first.deliver({{type: "snapshot", last_id: 4, chat: [], backchannel: []}});
        for (const id of [5, 6, 6, 5, 7]) {{
          first.deliver({{type: "chat.message", stream: "room", id, data: {{}}}});
        }}
        first.serverClose(1006);
        await until(() => FakeSocket.all.length === 2 && FakeSocket.all[1].sent.length === 1);
        const second = FakeSocket.all[1];
        second.deliver({welcome(60)});
        second.deliver({{type: "chat.message", stream: "room", id: 9, data: {{}}}});  // a gap
        await until(() => second.readyState === 3);
        await until(() => FakeSocket.all.length === 3 && FakeSocket.all[2].sent.length === 1);
        c.close();
        return {{ hellos: FakeSocket.all.map((s) => s.sent[0]), ids }};
        """,
    )
    assert [h["resume_from"] for h in result["hellos"]] == [None, 7, 7]
    assert all(h["type"] == "hello" and h["protocol"] == 1 for h in result["hellos"])
    assert result["ids"] == [5, 6, 7]


async def test_missed_heartbeats_reconnect_and_final_codes_do_not(page: Page) -> None:
    result = await run(
        page,
        f"""
        const c = new RealtimeClient("ws://example.invalid/ws", {{
            WebSocket: FakeSocket, minDelay: 10, maxDelay: 20 }});
        c.connect();
        await until(() => FakeSocket.all.length === 1 && FakeSocket.all[0].sent.length === 1);
        FakeSocket.all[0].deliver({welcome(0.2)});
        // Silence from the server: after two heartbeat periods the client gives up on it...
        await until(() => FakeSocket.all.length === 2, 5000);
        const pings = FakeSocket.all[0].sent.filter((f) => f.type === "ping").length;
        await until(() => FakeSocket.all[1].sent.length === 1);
        // ...but "no such conversation" is final: no more attempts.
        FakeSocket.all[1].serverClose(4404);
        await wait(200);
        return {{ pings, sockets: FakeSocket.all.length, status: c.status }};
        """,
    )
    assert result["pings"] >= 1  # it pinged while it waited
    assert result["sockets"] == 2
    assert result["status"] == "closed"


async def test_acks_and_errors_are_matched_to_the_frame_that_caused_them(page: Page) -> None:
    result = await run(
        page,
        f"""
        const c = new RealtimeClient("ws://example.invalid/ws", {{ WebSocket: FakeSocket }});
        const offline = await c.send({{type: "chat.send", body: "x"}}).catch((e) => e.code);
        c.connect();
        await until(() => FakeSocket.all.length === 1 && FakeSocket.all[0].sent.length === 1);
        const ws = FakeSocket.all[0];
        ws.deliver({welcome()});
        const a = c.send({{type: "chat.send", body: "one"}});
        const b = c.send({{type: "chat.send", body: "two"}});
        const [fa, fb] = ws.sent.slice(1);
        ws.deliver({{type: "error", code: "slow_mode", message: "wait", ref: fb.ref,
                     retry_after: 8}});
        ws.deliver({{type: "ack", ref: fa.ref, id: 12}});
        const ack = await a;
        const err = await b.catch((e) => ({{code: e.code, retry: e.frame.retry_after}}));
        c.close();
        return {{ offline, ack: ack.id, err, refs: [fa.ref, fb.ref] }};
        """,
    )
    assert result["offline"] == "offline"
    assert result["ack"] == 12
    assert result["err"] == {"code": "slow_mode", "retry": 8}
    assert result["refs"][0] != result["refs"][1]
