"""Real Chromium pages on the stage: one browser per microphone, and probes into their WebRTC.

Each person of a media test is a Chromium of their own, since the fake microphone (an espeak-ng
speech file, see speech_support) is a launch flag. A Chromium costs about a third of a core on
the 2-core CI machine: keep windows small, people few and tests short.

The page exposes its WebRTC state as `window.juntoMedia` (`subscriberPc`, `publisherPcs`: source
→ RTCPeerConnection, `remoteStreams`: "user_id:source" → MediaStream, `localStream`), so the
probes below read what the browser really decoded (`getStats()`) and really heard (Web Audio),
not whether some indicator says "connected".

There is no conftest.py in this folder: the root one is imported by name as `conftest` (for
LiveNode), and pytest would replace it with a second module of that name. Test modules import
the fixtures from here instead (one instance per module, which is what these fixtures want).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import pytest_asyncio
from playwright.async_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    WebSocket,
    async_playwright,
)
from speech_support import SCRIPTS, Speech, make_speech

from conftest import LiveNode, make_live_node

# The shared browser helpers (JSON API from inside a page, screenshots) live in tests/browser.
sys.path.append(str(Path(__file__).resolve().parents[1] / "browser"))
from browser_support import api, screenshot

from helpers import eventually, need_tool

__all__ = ["api", "screenshot"]  # re-exported for the test modules

CHROMIUM = "/usr/bin/chromium"
MEDIA_ARGS = [
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
VIEWPORT: ViewportSize = {"width": 800, "height": 600}
PASSWORD = "correct horse battery"
# Media takes a while to start on a loaded 2-core machine (ICE, DTLS, the first keyframe): wait
# generously for things that must happen, and poll, never sleep a fixed time.
MEDIA_TIMEOUT = 30.0
UI_TIMEOUT = 15_000  # ms, for Playwright's expect()

T = TypeVar("T")


# ---- waiting ---------------------------------------------------------------------------------


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    what: str,
    timeout: float = MEDIA_TIMEOUT,
    every: float = 0.25,
) -> T:
    """Poll `probe()` until `ok(value)`; on timeout fail with the last value seen."""

    async def check() -> tuple[T]:
        value = await probe()
        assert ok(value), f"last: {value}"
        return (value,)  # true even when the value itself is not

    found: tuple[T] = await eventually(check, timeout, what=what, every=every)
    return found[0]


# ---- speech files and the node ---------------------------------------------------------------

_SPEECH: dict[str, Speech] = {}


def speech(tmp_path_factory: pytest.TempPathFactory, name: str) -> Speech:
    """The speech file of `name` (a key of speech_support.SCRIPTS), made once per session."""
    if name not in _SPEECH:
        _SPEECH[name] = make_speech(tmp_path_factory.mktemp(f"speech-{name}"), SCRIPTS[name])
    return _SPEECH[name]


def start_media_node(folder: Path, **env: str) -> LiveNode:
    """A node whose SFU offers 127.0.0.1 (aioice leaves loopback out otherwise)."""
    node = make_live_node(folder, JUNTO_MEDIA_ADDRESSES="127.0.0.1", **env)
    node.start()
    return node


def require_chromium() -> None:
    need_tool(CHROMIUM, "Debian package chromium")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def playwright() -> AsyncIterator[Playwright]:
    require_chromium()
    async with async_playwright() as pw:
        yield pw


# ---- people in Chromium ----------------------------------------------------------------------


@dataclass
class MediaPerson:
    """One person in a Chromium of their own (their microphone is `speech`)."""

    name: str
    context: BrowserContext
    page: Page
    speech: Speech | None
    me: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Every frame the page's room socket received, with the monotonic time it arrived.
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    profile: Path | None = None
    closed: bool = False

    @property
    def id(self) -> int:
        return int(self.me["id"])

    def received(self, type_: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, f) for t, f in self.frames if f.get("type") == type_]

    def media_errors(self) -> list[dict[str, Any]]:
        return [f for _, f in self.received("error")]

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.context.close()

    async def crash(self) -> None:
        """End this Chromium the way a power cut or a killed tab would: SIGKILL to every one of
        its processes at once, so no page handler, WebSocket close or DTLS alert goes out."""
        assert self.profile is not None
        flag = f"--user-data-dir={self.profile}"
        browsers = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if flag in cmdline and not any(a.startswith("--type=") for a in cmdline):
                browsers.append(proc)
        assert len(browsers) == 1, f"expected one Chromium with {flag}, found {browsers}"
        family = [browsers[0], *browsers[0].children(recursive=True)]
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=10)
        self.closed = True
        with contextlib.suppress(Exception):  # Playwright may already know its browser is gone
            await self.context.close()


async def launch_person(
    pw: Playwright, profile: Path, name: str, microphone: Speech | None, base_url: str
) -> MediaPerson:
    """A Chromium whose fake camera is Chromium's test pattern and whose microphone says
    `microphone` once (%noloop: silence afterwards), from the moment the page opens it."""
    args = list(MEDIA_ARGS)
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone.path}%noloop")
    profile.mkdir(parents=True, exist_ok=True)
    context = await pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=args,
        viewport=VIEWPORT,
        base_url=base_url,
    )
    page = context.pages[0] if context.pages else await context.new_page()
    person = MediaPerson(
        name=name, context=context, page=page, speech=microphone, profile=profile.resolve()
    )

    def on_console(msg: ConsoleMessage) -> None:
        where = str(msg.location.get("url", ""))
        if msg.type == "error" and not where.endswith("/favicon.ico"):
            person.errors.append(f"{msg.text} ({where})")

    def on_websocket(ws: WebSocket) -> None:
        if "/ws/conversations/" not in ws.url:
            return

        def on_frame(payload: str | bytes) -> None:
            try:
                frame = json.loads(payload)
            except ValueError:
                return
            if isinstance(frame, dict):
                person.frames.append((time.monotonic(), frame))

        ws.on("framereceived", on_frame)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: person.errors.append(str(exc)))
    page.on("websocket", on_websocket)
    await page.goto("/healthz")  # an origin for fetch(), and the CSRF cookie
    return person


async def sign_up(person: MediaPerson, display_name: str) -> dict[str, Any]:
    username = re.sub(r"[^a-z0-9_]", "", display_name.lower().replace(" ", "_"))[:16]
    username += "_" + secrets.token_hex(3)
    status, body = await api(
        person.page,
        "POST",
        "/api/signup",
        {"username": username, "password": PASSWORD, "display_name": display_name},
    )
    assert status == 201, f"sign-up failed: {status} {body}"
    status, me = await api(person.page, "GET", "/api/me")
    assert status == 200, f"GET /api/me: {status} {me}"
    assert isinstance(me, dict)
    person.me = me
    return me


async def sign_in(person: MediaPerson, username: str) -> dict[str, Any]:
    status, body = await api(
        person.page,
        "POST",
        "/api/signin",
        {"username": username, "password": PASSWORD},
    )
    assert status == 200, f"sign-in failed: {status} {body}"
    status, me = await api(person.page, "GET", "/api/me")
    assert isinstance(me, dict)
    person.me = me
    return me


async def create_live_conversation(host: MediaPerson, title: str) -> str:
    page: Any = host.page
    status, body = await api(page, "POST", "/api/conversations", {"title": title})
    assert status == 201, f"creating the conversation failed: {status} {body}"
    slug: str = body["slug"]
    status, body = await api(page, "POST", f"/api/conversations/{slug}/start", {})
    assert status == 200, f"starting the conversation failed: {status} {body}"
    return slug


async def set_role(host: MediaPerson, slug: str, user_id: int, role: str) -> None:
    status, body = await api(
        host.page,
        "PUT",
        f"/api/conversations/{slug}/participants/{user_id}/role",
        {"role": role},
    )
    assert status == 200, f"setting {user_id}'s role to {role} failed: {status} {body}"


async def enter_room(person: MediaPerson, slug: str) -> None:
    await person.page.goto(f"/c/{slug}")
    await person.page.locator("#conn-status[data-status='open']").wait_for(timeout=UI_TIMEOUT)


# ---- the page's stage controls ---------------------------------------------------------------

MEDIA_STATE_JS = """() => {
  const m = window.juntoMedia;
  if (!m) return null;
  const pcs = {};
  for (const [source, pc] of m.publisherPcs || []) pcs[source] = pc.connectionState;
  return {
    subscriber: m.subscriberPc ? m.subscriberPc.connectionState : null,
    publishers: pcs,
    streams: [...(m.remoteStreams || new Map()).keys()],
    local: m.localStream ? m.localStream.getTracks().map((t) => t.kind + ':' + t.readyState) : [],
  };
}"""


async def media_state(person: MediaPerson) -> dict[str, Any] | None:
    state: dict[str, Any] | None = await person.page.evaluate(MEDIA_STATE_JS)
    return state


async def join_stage(person: MediaPerson) -> None:
    """Click "join the stage", give consent when the page asks, and wait until the camera's
    publishing connection is up. (Consent is stored per conversation, so a speaker who rejoins
    may not be asked again.)"""
    page = person.page
    await page.locator(".join-stage-button").click(timeout=UI_TIMEOUT)
    consent = page.locator("#consent-check")

    async def asked_or_publishing() -> str:
        if await consent.is_visible():
            return "asked"
        state = await media_state(person)
        return "publishing" if state and state["publishers"].get("camera") else ""

    if await wait_until(asked_or_publishing, bool, f"{person.name}'s consent dialog") == "asked":
        await consent.check()
        await page.locator(".consent-accept").click()
    await wait_until(
        lambda: media_state(person),
        lambda s: bool(s and s["publishers"].get("camera") == "connected"),
        f"{person.name}'s camera to be published (publisher connection 'connected')",
    )


async def watch(person: MediaPerson) -> None:
    """Audience: click "watch" and wait for the receiving connection to exist."""
    await person.page.locator(".watch-button").click(timeout=UI_TIMEOUT)
    await wait_until(
        lambda: media_state(person),
        lambda s: bool(s and s["subscriber"] is not None),
        f"{person.name}'s subscriber connection",
    )


# ---- what the page receives ------------------------------------------------------------------

# Inbound RTP statistics per remote stream ("user_id:source" → kind → figures). A received track
# is matched to its speaker through juntoMedia.remoteStreams (track id = trackIdentifier), and
# through the transceiver's mid as a fallback.
INBOUND_JS = """async () => {
  const m = window.juntoMedia;
  if (!m || !m.subscriberPc) return null;
  const pc = m.subscriberPc;
  const keyOfTrack = new Map();
  for (const [key, stream] of m.remoteStreams || []) {
    for (const track of stream.getTracks()) keyOfTrack.set(track.id, key);
  }
  const keyOfMid = new Map();
  for (const tr of pc.getTransceivers()) {
    const track = tr.receiver && tr.receiver.track;
    if (tr.mid !== null && track && keyOfTrack.has(track.id)) {
      keyOfMid.set(tr.mid, keyOfTrack.get(track.id));
    }
  }
  const streams = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const key = keyOfTrack.get(s.trackIdentifier) || keyOfMid.get(s.mid);
    if (!key) return;
    const kind = s.kind || s.mediaType;
    (streams[key] = streams[key] || {})[kind] = {
      mid: s.mid, packetsReceived: s.packetsReceived || 0, packetsLost: s.packetsLost || 0,
      framesDecoded: s.framesDecoded || 0, keyFramesDecoded: s.keyFramesDecoded || 0,
      frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
      totalAudioEnergy: s.totalAudioEnergy || 0, audioLevel: s.audioLevel || 0,
      totalSamplesReceived: s.totalSamplesReceived || 0,
    };
  });
  return {state: pc.connectionState, keys: [...(m.remoteStreams || new Map()).keys()], streams};
}"""


async def inbound(person: MediaPerson) -> dict[str, Any]:
    """What `person`'s subscriber connection has received so far, per remote stream."""
    stats: dict[str, Any] | None = await person.page.evaluate(INBOUND_JS)
    return stats or {"state": None, "keys": [], "streams": {}}


def stream_key(user_id: int, source: str = "camera") -> str:
    return f"{user_id}:{source}"


def figures(stats: dict[str, Any], user_id: int, kind: str, name: str) -> float:
    return float(stats["streams"].get(stream_key(user_id), {}).get(kind, {}).get(name, 0))


async def wait_receiving(
    viewer: MediaPerson, speaker: MediaPerson, *, audio_energy: bool, timeout: float = MEDIA_TIMEOUT
) -> dict[str, Any]:
    """Wait until `viewer` decodes `speaker`'s video and receives their audio, and both keep
    growing (two readings apart); with `audio_energy`, the audio must also carry sound."""
    what = f"{viewer.name} to receive {speaker.name}'s video and audio"
    first = await wait_until(
        lambda: inbound(viewer),
        lambda s: (
            figures(s, speaker.id, "video", "framesDecoded") > 0
            and figures(s, speaker.id, "audio", "packetsReceived") > 0
        ),
        what,
        timeout,
    )

    def grew(s: dict[str, Any]) -> bool:
        ok = all(
            figures(s, speaker.id, kind, name) > figures(first, speaker.id, kind, name)
            for kind, name in (("video", "framesDecoded"), ("audio", "packetsReceived"))
        )
        if audio_energy:
            ok = ok and figures(s, speaker.id, "audio", "totalAudioEnergy") > figures(
                first, speaker.id, "audio", "totalAudioEnergy"
            )
        return ok

    return await wait_until(lambda: inbound(viewer), grew, what + " (still flowing)", timeout)


# A Web Audio recorder: the RMS of each 20 ms of the remote audio of the given streams, for
# `seconds`. A ScriptProcessorNode (deprecated, but it needs no module URL, which the page's CSP
# would refuse for an AudioWorklet) sees every sample, so the hops are exact. The remote track
# must be playing out (the page's tile does that): otherwise Chromium's jitter buffer fills up
# and then time-compresses the audio to catch up, which smears the envelope.
RECORD_JS = """async ([keys, seconds]) => {
  const m = window.juntoMedia;
  const ctx = new AudioContext();
  await ctx.resume();
  const hop = Math.round(ctx.sampleRate * 0.02);
  const out = {}, nodes = [];
  for (const key of keys) {
    const stream = m && m.remoteStreams && m.remoteStreams.get(key);
    const tracks = stream ? stream.getAudioTracks() : [];
    if (!tracks.length) { out[key] = null; continue; }
    const source = ctx.createMediaStreamSource(new MediaStream(tracks));
    const proc = ctx.createScriptProcessor(1024, 1, 1);
    const env = [];
    let acc = 0, n = 0;
    proc.onaudioprocess = (e) => {
      const x = e.inputBuffer.getChannelData(0);
      for (let i = 0; i < x.length; i++) {
        acc += x[i] * x[i];
        if (++n === hop) { env.push(Math.sqrt(acc / hop)); acc = 0; n = 0; }
      }
    };
    source.connect(proc);
    proc.connect(ctx.destination);
    out[key] = env;
    nodes.push(source, proc);
  }
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  for (const node of nodes) node.disconnect();
  await ctx.close();
  return {sampleRate: ctx.sampleRate, envelopes: out};
}"""


async def record_audio(
    viewer: MediaPerson, user_ids: list[int], seconds: float
) -> dict[int, list[float]]:
    """Record each speaker's remote audio in `viewer`'s page: 20 ms RMS envelopes."""
    keys = [stream_key(uid) for uid in user_ids]
    result: dict[str, Any] = await viewer.page.evaluate(RECORD_JS, [keys, seconds])
    envelopes: dict[int, list[float]] = {}
    for uid, key in zip(user_ids, keys, strict=True):
        env = result["envelopes"].get(key)
        assert env is not None, f"{viewer.name} has no remote audio track for {key}"
        envelopes[uid] = [float(v) for v in env]
    return envelopes


# ---- the stage as the page shows it ----------------------------------------------------------


def tile(person: MediaPerson, user_id: int) -> Any:
    return person.page.locator(f"li.stage-tile[data-user-id='{user_id}']")


def last_publishers(person: MediaPerson) -> list[int] | None:
    """User ids in the last `media.publishers` frame the page received (None: none yet)."""
    frames = person.received("media.publishers")
    if not frames:
        return None
    return [int(p["user_id"]) for p in frames[-1][1]["publishers"]]


async def keep_screenshot(person: MediaPerson, name: str) -> None:
    await screenshot(person.page, f"media-{name}-{person.name}", full_page=False)


def soak_seconds() -> float:
    return float(os.environ.get("JUNTO_SOAK_SECONDS", "300"))
