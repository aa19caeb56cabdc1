"""Python clients of the stage: a room socket (websockets) and aiortc peers behind it.

These speak docs/protocol.md "Media signaling" exactly as a browser would: sign in over HTTP,
open the room socket with the session cookie and the node's Origin, `hello`, then `media.*`
frames. The aiortc peers publish synthetic video (a moving 320x240 pattern) and audio (a tone
that comes and goes), or subscribe and count the frames they decode per speaker and kind.

aiortc does not trickle ICE: its descriptions carry every candidate once setLocalDescription
returns, which is what the node expects. aioice leaves 127.0.0.1 out of its host candidates;
`loopback_ice()` makes it gather loopback too, since the node offers only 127.0.0.1 in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import math
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import LiveNode
from helpers import csrf_headers, eventually, signup

Frame = dict[str, Any]
TIMEOUT = 15.0
MEDIA_TIMEOUT = 30.0


def loopback_ice() -> None:
    """Make aioice in this process gather 127.0.0.1 (the only address the node offers here).
    Call it before creating peer connections."""
    from junto.media.embedded.ice import use_addresses

    use_addresses(["127.0.0.1"])


# ---- people and conversations over HTTP ------------------------------------------------------


@dataclass
class Account:
    http: httpx.AsyncClient
    me: dict[str, Any]

    @property
    def id(self) -> int:
        return int(self.me["id"])

    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(
            method, path, json=body, headers=await csrf_headers(self.http)
        )
        assert response.status_code in (200, 201), (
            f"{method} {path}: expected 200/201, got {response.status_code} {response.text}"
        )
        return response.json()


@asynccontextmanager
async def accounts(node: LiveNode) -> AsyncIterator[Callable[[str], Any]]:
    """`await new(name)` signs up a member with their own cookie jar; all closed afterwards."""
    clients: list[httpx.AsyncClient] = []

    async def new(name: str) -> Account:
        client = httpx.AsyncClient(base_url=node.url, timeout=TIMEOUT)
        clients.append(client)
        username = re.sub(r"[^a-z0-9_]", "", name.lower().replace(" ", "_"))[:16]
        me = await signup(client, f"{username}_{secrets.token_hex(3)}", display_name=name)
        return Account(client, me)

    try:
        yield new
    finally:
        for client in clients:
            await client.aclose()


async def live_conversation(host: Account, title: str = "Rivers and cities") -> str:
    body = await host.call("POST", "/api/conversations", {"title": title})
    slug: str = body["slug"]
    await host.call("POST", f"/api/conversations/{slug}/start", {})
    return slug


async def set_role(host: Account, slug: str, user_id: int, role: str) -> None:
    await host.call("PUT", f"/api/conversations/{slug}/participants/{user_id}/role", {"role": role})


# ---- the room socket -------------------------------------------------------------------------


class RoomSocket:
    """One room WebSocket; a reader task keeps every frame (`frames`) and wakes waiters."""

    def __init__(self, ws: ClientConnection, name: str) -> None:
        self.ws = ws
        self.name = name
        self.frames: list[Frame] = []
        self.welcome: Frame = {}
        self.closed = False
        self._changed = asyncio.Condition()
        self._listeners: list[Callable[[Frame], None]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                self.frames.append(frame)
                for listener in list(self._listeners):
                    listener(frame)
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            async with self._changed:
                self._changed.notify_all()

    def listen(self, listener: Callable[[Frame], None]) -> None:
        self._listeners.append(listener)

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    def mark(self) -> int:
        return len(self.frames)

    async def wait_for(
        self,
        pred: Callable[[Frame], bool],
        what: str,
        timeout: float = TIMEOUT,
        since: int = 0,
    ) -> Frame:
        """The first frame from index `since` on (already here or arriving) matching `pred`."""
        seen = since
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for frame in self.frames[seen:]:
                        if pred(frame):
                            return frame
                    seen = len(self.frames)
                    if self.closed:
                        raise AssertionError(f"{self.name}'s socket closed waiting for {what}")
                    async with self._changed:
                        await self._changed.wait()
        except TimeoutError:
            recent = [compact(f) for f in self.frames[max(since, len(self.frames) - 8) :]]
            raise AssertionError(
                f"{self.name}: timed out after {timeout:.0f} s waiting for {what}; "
                f"last frames: {recent}"
            ) from None

    async def request(self, type_: str, timeout: float = TIMEOUT, **fields: Any) -> Frame:
        """Send a frame with a fresh `ref`; its `ack` or `error`."""
        ref = f"{type_}-{secrets.token_hex(4)}"
        since = self.mark()
        await self.send(type=type_, ref=ref, **fields)
        return await self.wait_for(
            lambda f: f.get("type") in ("ack", "error") and f.get("ref") == ref,
            f"the answer to {type_} (ref {ref})",
            timeout,
            since,
        )

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


def compact(frame: Frame) -> Frame:
    """A frame for failure messages: SDP shortened."""
    return {k: (v[:40] + "…" if k == "sdp" and isinstance(v, str) else v) for k, v in frame.items()}


@asynccontextmanager
async def room_socket(
    node: LiveNode, slug: str, who: Account | None, name: str = ""
) -> AsyncIterator[RoomSocket]:
    headers = {"Origin": node.url}
    if who is not None:
        headers["Cookie"] = who.cookie()
    async with connect(
        f"{node.ws_url}/ws/conversations/{slug}",
        additional_headers=headers,
        open_timeout=TIMEOUT,
        max_size=2**20,
    ) as ws:
        sock = RoomSocket(ws, name or (str(who.me["name"]) if who else "anonymous"))
        try:
            await sock.send(type="hello", protocol=1, resume_from=None)
            sock.welcome = await sock.wait_for(lambda f: f.get("type") == "welcome", "welcome")
            yield sock
        finally:
            sock._reader.cancel()


# ---- synthetic media -------------------------------------------------------------------------

VIDEO_SIZE = (320, 240)


class PatternVideo(VideoStreamTrack):
    """A bar moving across 320x240 of noise at 30 fps. The noise changes every frame, so VP8
    spends its whole bitrate (several hundred kbit/s, like a camera) and a leak of forwarded
    packets shows in the node's memory within minutes; 320x240 keeps encoding cheap."""

    def __init__(self) -> None:
        super().__init__()
        width, height = VIDEO_SIZE
        template = av.VideoFrame(width, height, "yuv420p")
        sizes = [p.buffer_size for p in template.planes]
        line = template.planes[0].line_size
        self._lumas = []
        for step in range(30):
            noise = bytearray(112 + (b & 15) for b in os.urandom(sizes[0]))
            x0 = step * (width // 30)
            for row in range(0, sizes[0], line):
                noise[row + x0 : row + x0 + 24] = b"\xeb" * 24
            self._lumas.append(bytes(noise))
        self._chroma = [bytes([128]) * s for s in sizes[1:]]
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(*VIDEO_SIZE, "yuv420p")
        frame.planes[0].update(self._lumas[self._n % len(self._lumas)])
        for plane, data in zip(frame.planes[1:], self._chroma, strict=True):
            plane.update(data)
        self._n += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneAudio(AudioStreamTrack):
    """A 440 Hz tone, on for 0.6 s and off for 0.4 s, at 48 kHz mono in 20 ms frames."""

    RATE = 48_000
    SAMPLES = 960

    def __init__(self) -> None:
        super().__init__()
        tone = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * i / self.RATE)).to_bytes(
                2, "little", signed=True
            )
            for i in range(self.SAMPLES)
        )
        self._on, self._off = tone, bytes(2 * self.SAMPLES)
        self._timestamp = 0
        self._started = 0.0

    async def recv(self) -> av.AudioFrame:
        if self._started == 0.0:
            self._started = time.time()
        else:
            self._timestamp += self.SAMPLES
            wait = self._started + self._timestamp / self.RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        on = (self._timestamp // self.SAMPLES) % 50 < 30
        frame.planes[0].update(self._on if on else self._off)
        frame.pts = self._timestamp
        frame.sample_rate = self.RATE
        frame.time_base = fractions.Fraction(1, self.RATE)
        return frame


def new_pc() -> RTCPeerConnection:
    # No ICE servers: aiortc would otherwise add a public STUN server, unreachable here.
    # max-bundle, as the pages use: with aiortc's default (balanced), a first offer holding two
    # audio m-lines leaves the second on a transport that BUNDLE then stops, and that speaker's
    # audio never arrives (aiortc 1.16, RTCPeerConnection.setRemoteDescription).
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


# ---- publishing ------------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, frame: Frame) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.frame = frame
        self.code = frame.get("code")


@dataclass
class Publisher:
    sock: RoomSocket
    pc: RTCPeerConnection
    source: str

    async def close(self) -> None:
        await close_bounded(self.pc)


async def publish_offer(
    video_codec: str | None = "video/VP8", audio_codec: str | None = "audio/opus"
) -> RTCPeerConnection:
    """A peer connection with synthetic tracks whose local offer is set (ICE gathered). A codec
    of None leaves the kind out; another mime type offers only that codec."""
    pc = new_pc()
    for kind, track, codec in (
        ("video", PatternVideo(), video_codec),
        ("audio", ToneAudio(), audio_codec),
    ):
        if codec is None:
            continue
        transceiver = pc.addTransceiver(track, direction="sendonly")
        wanted = [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType == codec]
        assert wanted, f"aiortc cannot send {codec}"
        # Keep retransmission (rtx) beside the codec, as browsers offer it.
        rtx = [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.endswith("/rtx")]
        transceiver.setCodecPreferences(wanted + rtx)
    await pc.setLocalDescription(await pc.createOffer())
    return pc


async def publish(
    sock: RoomSocket, source: str = "camera", pc: RTCPeerConnection | None = None
) -> Publisher:
    """Publish synthetic VP8 + Opus (or `pc`'s offer); raises Refused on an `error`."""
    pc = pc or await publish_offer()
    try:
        # Only an answer to this offer: an earlier publication of the same source got one too.
        since = sock.mark()
        answer = await sock.request("media.publish", source=source, sdp=pc.localDescription.sdp)
        if answer["type"] == "error":
            raise Refused(answer)
        reply = await sock.wait_for(
            lambda f: f.get("type") == "media.answer" and f.get("source") == source,
            f"media.answer for {source}",
            since=since,
        )
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
    except BaseException:
        await pc.close()
        raise
    return Publisher(sock, pc, source)


async def wait_connected(pc: RTCPeerConnection, what: str, timeout: float = MEDIA_TIMEOUT) -> None:
    def connected() -> bool:
        if pc.connectionState in ("failed", "closed"):  # it will not recover: fail at once
            pytest.fail(f"{what}: expected 'connected', got {pc.connectionState!r}")
        assert pc.connectionState == "connected", f"{what}: got {pc.connectionState!r}"
        return True

    await eventually(connected, timeout, every=0.1)


# ---- subscribing -----------------------------------------------------------------------------


@dataclass
class Subscriber:
    """A receiving peer. `answer=False` never answers the node's offers (a half-open viewer)."""

    sock: RoomSocket
    answer: bool = True
    pc: RTCPeerConnection = field(default_factory=new_pc)
    counts: Counter[tuple[int, str]] = field(default_factory=Counter)
    offers: list[Frame] = field(default_factory=list)
    errors: list[Frame] = field(default_factory=list)
    _mid_owner: dict[str, tuple[int, str]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sock.listen(self._on_frame)
        self.pc.on("track", self._on_track)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_frame(self, frame: Frame) -> None:
        if frame.get("type") == "media.offer":
            self.offers.append(frame)
            if self.answer:
                self._spawn(self._answer(frame))
        elif frame.get("type") == "error":
            self.errors.append(frame)

    async def _answer(self, offer: Frame) -> None:
        async with self._lock:  # offers come one at a time, but answer them strictly in order
            for t in offer.get("tracks", []):
                self._mid_owner[str(t["mid"])] = (int(t["user_id"]), str(t["kind"]))
            await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.sock.send(
                type="media.answer", version=offer["version"], sdp=self.pc.localDescription.sdp
            )

    def _on_track(self, track: Any) -> None:
        mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        self._spawn(self._read(track, str(mid)))

    async def _read(self, track: Any, mid: str) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            owner = self._mid_owner.get(mid)
            if owner is not None:
                self.counts[owner] += 1

    async def start(self, user_ids: list[int] | None = None) -> Frame:
        """`media.subscribe`; the first `media.offer` (or raises Refused on an error)."""
        since = self.sock.mark()
        ref = f"sub-{secrets.token_hex(4)}"
        fields: dict[str, Any] = {} if user_ids is None else {"user_ids": user_ids}
        await self.sock.send(type="media.subscribe", ref=ref, **fields)
        first = await self.sock.wait_for(
            lambda f: (
                f.get("type") == "media.offer" or (f.get("type") == "error" and f.get("ref") == ref)
            ),
            "the first media.offer",
            since=since,
        )
        if first["type"] == "error":
            raise Refused(first)
        return first

    async def wait_frames(
        self, user_id: int, minimum: int = 10, timeout: float = MEDIA_TIMEOUT
    ) -> None:
        """Wait until `minimum` more video and audio frames of `user_id` were decoded."""
        start = {k: self.counts[(user_id, k)] for k in ("video", "audio")}

        def decoded() -> bool:
            assert all(self.counts[(user_id, k)] - start[k] >= minimum for k in start), (
                f"{self.sock.name} decoded too few frames of user {user_id}:"
                f" {dict(self.counts)} (from {start}); pc {self.pc.connectionState}, "
                f"offers {[o['version'] for o in self.offers]}, errors {self.errors}"
            )
            return True

        await eventually(decoded, timeout, every=0.1)

    def stall(self) -> None:
        """Stop reading the network socket: the node sees a viewer who stopped answering (no
        receiver reports, no ICE consent replies), while its room socket stays open."""
        for protocol in _ice_protocols(self.pc):
            protocol.transport.pause_reading()

    def vanish(self) -> None:
        vanish(self.pc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await close_bounded(self.pc)


async def close_bounded(pc: RTCPeerConnection, timeout: float = 10.0) -> None:
    """Close `pc`, giving up after `timeout`: closing a peer whose sockets were dropped on
    purpose (`vanish`) can wait on transports that will never answer, and a test's cleanup
    must not hang it past its own timeout (seen once in a full run: the test stood for 120 s)."""
    with contextlib.suppress(Exception):  # a vanished peer's transports are already gone
        await asyncio.wait_for(pc.close(), timeout)


def vanish(pc: RTCPeerConnection) -> None:
    """Drop `pc`'s UDP sockets without a word (no DTLS close, no RTCP BYE), as a crashed
    browser would, while its room socket stays open. The node learns of it only when ICE
    consent (RFC 7675) expires, about 30 s later."""
    for protocol in _ice_protocols(pc):
        protocol.transport.abort()


def _ice_protocols(pc: RTCPeerConnection) -> list[Any]:
    """The aioice UDP protocols under `pc` (aiortc internals: RTCIceTransport._connection)."""
    protocols: list[Any] = []
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        for protocol in ice._connection._protocols:
            if protocol not in protocols and protocol.transport is not None:
                protocols.append(protocol)
    assert protocols, "expected the peer connection to have ICE sockets, found none"
    return protocols
