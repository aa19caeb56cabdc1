"""A load generator process of the SFU benchmark: aiortc publishers and subscribers.

`sfu.py` starts a few of these so that the clients' CPU never lands on the server under test,
and drives each over stdin/stdout, one JSON object per line. Commands (stdin):

    {"cmd": "publish", "key": "p1", "target": "node", "ws_url": ..., "origin": ..., "cookie": ...}
    {"cmd": "publish", "key": "p1", "target": "baseline", "url": ...}
    {"cmd": "subscribe", "key": "s1", "target": "node", "ws_url": ..., "origin": ..., "expect": 4}
    {"cmd": "subscribe", "key": "s1", "target": "baseline", "url": ..., "publishers": 1}
    {"cmd": "report"}   {"cmd": "quit"}

Answers (stdout): `{"event": "published"|"subscribed"|"failed", "key", ...}`, `{"event":
"report", "publishers": {...}, "subscribers": {...}}`, `{"event": "ready"}` at start.

Against the node, clients speak docs/protocol.md ("Media signaling") on the room WebSocket:
a publisher (a member the host brought on stage) sends `media.consent`, then `media.publish`
with its offer and applies the `media.answer`; a subscriber (an anonymous watcher) sends
`media.subscribe` and answers every `media.offer`. Against the baseline (`sfu_baseline.py`)
they POST their offer and get the answer.

Publishers send pre-encoded packets (sfu_media.PacketTrack) and subscribers receive through the
node's own pass-through receive path (`mark_passthrough`), so neither side encodes or decodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.stats import RTCInboundRtpStreamStats
from websockets.asyncio.client import ClientConnection

from junto.media.embedded.passthrough import mark_passthrough
from sfu_media import (
    Clip,
    PacketTrack,
    TrackCount,
    count_track,
    honour_keyframe_requests,
    loopback_ice,
)

_WANTED = {"video": ("video/vp8", "video/rtx"), "audio": ("audio/opus",)}
CONNECT_TIMEOUT = 30.0


def codec_preferences(kind: str) -> list[Any]:
    """VP8 (+RTX) for video, Opus for audio: what the clip is encoded in."""
    caps = RTCRtpSender.getCapabilities(kind)
    return [c for c in caps.codecs if c.mimeType.lower() in _WANTED[kind]]


def new_pc(max_bundle: bool = False) -> RTCPeerConnection:
    # No iceServers: aiortc would otherwise add a public STUN server (engineering notes).
    # max-bundle: with aiortc's default ("balanced"), answering an offer that bundles two video
    # m-lines leaves the second one on a transport of its own that is then discarded, so its
    # packets are routed to the first video receiver (aiortc 1.16, __createTransceiver).
    policy = RTCBundlePolicy.MAX_BUNDLE if max_bundle else RTCBundlePolicy.BALANCED
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=policy))


async def wait_connected(pc: RTCPeerConnection, timeout: float = CONNECT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed"):
            raise RuntimeError(f"expected a connected peer connection, got {pc.connectionState}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"peer connection still {pc.connectionState} after {timeout} s")
        await asyncio.sleep(0.05)


class RoomSocket:
    """One room WebSocket on the node: `hello`, requests matched by `ref`, pings, media frames."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.refs = itertools.count(1)
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.expecting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.on_offer: Callable[[dict[str, Any]], Coroutine[Any, Any, None]] | None = None
        self.errors: list[dict[str, Any]] = []  # errors and media.ended nobody asked about
        self.welcome: dict[str, Any] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    async def connect(cls, ws_url: str, origin: str, cookie: str | None) -> RoomSocket:
        headers = {"Cookie": cookie} if cookie else {}
        ws = await websockets.connect(
            ws_url,
            additional_headers=headers,
            origin=origin,  # type: ignore[arg-type]
            compression=None,
            max_size=None,
            open_timeout=CONNECT_TIMEOUT,
        )
        sock = cls(ws)
        welcome = sock.expect("welcome")
        sock.tasks.add(asyncio.create_task(sock._read()))
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1, "resume_from": None}).decode())
        sock.welcome = await asyncio.wait_for(welcome, CONNECT_TIMEOUT)
        interval = float(sock.welcome.get("heartbeat_seconds") or 15) / 2
        sock.tasks.add(asyncio.create_task(sock._ping(interval)))
        return sock

    def expect(self, kind: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.expecting[kind] = future
        return future

    async def request(
        self, frame: dict[str, Any], timeout: float = CONNECT_TIMEOUT
    ) -> dict[str, Any]:
        """Send a frame and wait for its `ack`; an `error` for it raises."""
        ref = f"r{next(self.refs)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[ref] = future
        await self.ws.send(orjson.dumps({**frame, "ref": ref}).decode())
        reply = await asyncio.wait_for(future, timeout)
        if reply.get("type") != "ack":
            raise RuntimeError(f"expected an ack for {frame['type']}, got {reply}")
        return reply

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                # Room events, presence and heartbeats are not ours to parse: skip them cheaply.
                if '"media.' not in raw and '"ack"' not in raw and '"error"' not in raw:
                    if '"welcome"' not in raw:
                        continue
                msg = orjson.loads(raw)
                kind = msg.get("type")
                ref = msg.get("ref")
                if kind in ("ack", "error") and ref in self.waiting:
                    future = self.waiting.pop(ref)
                    if not future.done():
                        future.set_result(msg)
                elif kind in self.expecting:
                    future = self.expecting.pop(kind)
                    if not future.done():
                        future.set_result(msg)
                elif kind == "media.offer" and self.on_offer is not None:
                    task = asyncio.create_task(self.on_offer(msg))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                elif kind in ("error", "media.ended"):
                    self.errors.append(msg)

    async def _ping(self, interval: float) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.sleep(interval)
                await self.ws.send('{"type":"ping"}')

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await self.ws.close()


class Publisher:
    """Sends the clip's audio and video to the node or the baseline."""

    def __init__(self, key: str, clip: Clip) -> None:
        self.key = key
        self.pc = new_pc()
        self.tracks: list[PacketTrack] = []
        for kind, packets in (("audio", clip.audio), ("video", clip.video)):
            track = PacketTrack(kind, packets)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            honour_keyframe_requests(transceiver.sender, track)
            self.tracks.append(track)
        self.sock: RoomSocket | None = None

    async def publish_node(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.sock = await RoomSocket.connect(cmd["ws_url"], cmd["origin"], cmd.get("cookie"))
        await self.sock.request({"type": "media.consent"})
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = self.sock.expect("media.answer")
        await self.sock.request(
            {"type": "media.publish", "source": "camera", "sdp": self.pc.localDescription.sdp}
        )
        if not answer.done():
            raise RuntimeError("expected media.answer before the ack of media.publish, got none")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.result()["sdp"], "answer"))
        await wait_connected(self.pc)
        return {"user_id": self.sock.welcome.get("you", {}).get("user_id")}

    async def publish_baseline(self, cmd: dict[str, Any]) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(base_url=cmd["url"], timeout=CONNECT_TIMEOUT) as http:
            response = await http.post("/publish", json={"sdp": self.pc.localDescription.sdp})
            response.raise_for_status()
        await self.pc.setRemoteDescription(RTCSessionDescription(response.json()["sdp"], "answer"))
        await wait_connected(self.pc)
        return {}

    def report(self) -> dict[str, Any]:
        video = next(t for t in self.tracks if t.kind == "video")
        return {
            "bytes_sent": sum(t.bytes_sent for t in self.tracks),
            "keyframe_requests": video.keyframe_requests,
            "keyframes_sent": video.keyframes_sent,
            "state": self.pc.connectionState,
            "errors": self.sock.errors if self.sock else [],
        }

    async def close(self) -> None:
        await self.pc.close()
        if self.sock is not None:
            await self.sock.close()


class Subscriber:
    """Receives every publisher, counting what arrives (no decoding)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.pc = new_pc(max_bundle=True)
        self.counts: dict[str, TrackCount] = {}  # by mid
        self.mid_users: dict[str, int] = {}
        self.readers: set[asyncio.Task[None]] = set()
        self.sock: RoomSocket | None = None
        self.started = 0.0
        self.offers = 0
        self.lock = asyncio.Lock()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = (
            next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            or f"?{len(self.counts)}"
        )
        count = self.counts[mid] = TrackCount(track.kind)
        task = asyncio.create_task(count_track(track, count))
        self.readers.add(task)

    def video_firsts(self) -> list[float]:
        return [c.first_at for c in self.counts.values() if c.kind == "video" and c.first_at]

    async def _on_offer(self, frame: dict[str, Any]) -> None:
        assert self.sock is not None
        try:
            async with self.lock:  # the node sends the next offer only after our answer anyway
                await self.pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
                mark_passthrough(self.pc)
                for track in frame.get("tracks", []):
                    self.mid_users[str(track["mid"])] = int(track["user_id"])
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                self.offers += 1
                answer = self.pc.localDescription.sdp
                await self.sock.request(
                    {"type": "media.answer", "version": frame["version"], "sdp": answer}
                )
        except Exception as exc:  # reported with the subscriber's state, not lost in a task
            self.sock.errors.append(
                {"answering_offer": frame.get("version"), "error": f"{type(exc).__name__}: {exc}"}
            )

    async def subscribe_node(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.sock = await RoomSocket.connect(cmd["ws_url"], cmd["origin"], cmd.get("cookie"))
        self.sock.on_offer = self._on_offer
        self.started = time.monotonic()
        await self.sock.request({"type": "media.subscribe"})
        return await self._first_frames(int(cmd["expect"]))

    async def subscribe_baseline(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.started = time.monotonic()
        for _ in range(int(cmd["publishers"])):
            for kind in ("audio", "video"):
                transceiver = self.pc.addTransceiver(kind, direction="recvonly")
                transceiver.setCodecPreferences(codec_preferences(kind))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(base_url=cmd["url"], timeout=CONNECT_TIMEOUT) as http:
            response = await http.post("/subscribe", json={"sdp": self.pc.localDescription.sdp})
            response.raise_for_status()
        await self.pc.setRemoteDescription(RTCSessionDescription(response.json()["sdp"], "answer"))
        mark_passthrough(self.pc)
        return await self._first_frames(int(cmd["publishers"]))

    async def _first_frames(self, expect: int) -> dict[str, Any]:
        """Wait for a first video frame from `expect` publishers; time it from the request."""
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while len(self.video_firsts()) < expect:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"expected video from {expect} publishers within {CONNECT_TIMEOUT} s, got "
                    f"{len(self.video_firsts())} (connection {self.pc.connectionState}, "
                    f"{self.offers} offers, errors {self.sock.errors if self.sock else []})"
                )
            await asyncio.sleep(0.02)
        firsts = sorted(self.video_firsts())
        return {
            "first_frame_ms": round((firsts[0] - self.started) * 1000, 1),
            "all_first_frames_ms": round((firsts[expect - 1] - self.started) * 1000, 1),
        }

    async def report(self) -> dict[str, Any]:
        lost = received = 0
        for transceiver in self.pc.getTransceivers():
            stats = await transceiver.receiver.getStats()
            for s in stats.values():
                if isinstance(s, RTCInboundRtpStreamStats):
                    lost += max(0, s.packetsLost)
                    received += s.packetsReceived
        return {
            "tracks": {mid: c.as_dict() for mid, c in self.counts.items()},
            "packets_lost": lost,
            "packets_received": received,
            "state": self.pc.connectionState,
            "offers": self.offers,
            "errors": self.sock.errors if self.sock else [],
        }

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await self.pc.close()
        if self.sock is not None:
            await self.sock.close()


class Worker:
    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.publishers: dict[str, Publisher] = {}
        self.subscribers: dict[str, Subscriber] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def emit(self, msg: dict[str, Any]) -> None:
        sys.stdout.buffer.write(orjson.dumps(msg) + b"\n")
        sys.stdout.flush()

    async def handle(self, cmd: dict[str, Any]) -> bool:
        kind = cmd.get("cmd")
        if kind == "quit":
            return False
        if kind == "report":
            subs = {k: await s.report() for k, s in self.subscribers.items()}
            pubs = {k: p.report() for k, p in self.publishers.items()}
            self.emit({"event": "report", "publishers": pubs, "subscribers": subs})
        elif kind in ("publish", "subscribe"):
            task = asyncio.create_task(self._start(cmd))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self.emit({"event": "failed", "key": cmd.get("key"), "error": f"unknown {cmd}"})
        return True

    async def _start(self, cmd: dict[str, Any]) -> None:
        key, target = str(cmd["key"]), cmd["target"]
        try:
            if cmd["cmd"] == "publish":
                pub = self.publishers[key] = Publisher(key, self.clip)
                extra = await (
                    pub.publish_node(cmd) if target == "node" else pub.publish_baseline(cmd)
                )
                self.emit({"event": "published", "key": key, **extra})
            else:
                sub = self.subscribers[key] = Subscriber(key)
                extra = await (
                    sub.subscribe_node(cmd) if target == "node" else sub.subscribe_baseline(cmd)
                )
                self.emit({"event": "subscribed", "key": key, **extra})
        except Exception as exc:  # reported to the driver, which decides
            self.emit({"event": "failed", "key": key, "error": f"{type(exc).__name__}: {exc}"})

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        peers: list[Publisher | Subscriber] = [
            *self.subscribers.values(),
            *self.publishers.values(),
        ]
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)


async def run(clip_path: Path) -> None:
    loopback_ice()
    worker = Worker(Clip.load(clip_path))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker.emit({"event": "ready"})
    try:
        while line := await reader.readline():
            if not await worker.handle(orjson.loads(line)):
                break
    finally:
        await worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="SFU benchmark load generator (driven by sfu.py)")
    parser.add_argument("--clip", type=Path, required=True, help="clip written by sfu_media")
    parser.add_argument(
        "--uvloop", action=argparse.BooleanOptionalAction, default=True, help="use uvloop"
    )
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(run(args.clip))
    else:
        asyncio.run(run(args.clip))


if __name__ == "__main__":
    main()
