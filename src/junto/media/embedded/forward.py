"""Fan-out of one published track to many subscriber legs, with bounded buffers.

A `TrackFanout` reads a publisher's track (encoded packets, see passthrough.py) as fast as it
arrives and pushes each packet into every subscriber's `ForwardTrack`, and to taps (recording and
transcription, later). Nothing waits on a slow subscriber: each leg keeps at most `max_packets`;
a video leg that overflows drops what it holds and waits for the next key frame (asking the
publisher for one), since a VP8 stream with a hole cannot be decoded until then. An audio leg
drops its oldest packets (a short glitch beats growing latency). A leg whose sender is gone is
stopped and removed. Memory per leg is therefore bounded whatever the consumer does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from junto.media.vp8 import is_vp8_keyframe

log = logging.getLogger("junto.media")

# About 2.5 s of 640x480 video at 20 fps (~10 packets a frame) or 5 s of 20 ms Opus frames.
MAX_VIDEO_FRAMES = 50
MAX_AUDIO_FRAMES = 250
# RFC 4585 leaves PLI pacing to us; one per 300 ms keeps a publisher from being asked for a
# key frame per joining viewer (each costs it a burst of bits) while joins stay fast.
PLI_MIN_INTERVAL = 0.3


class ForwardTrack(MediaStreamTrack):
    """One subscriber leg: a bounded queue of encoded packets that an aiortc sender packetizes."""

    def __init__(self, fanout: TrackFanout) -> None:
        super().__init__()
        self.kind = fanout.kind
        self.fanout = fanout
        self.max_frames = MAX_VIDEO_FRAMES if self.kind == "video" else MAX_AUDIO_FRAMES
        self._queue: deque[Any] = deque()
        self._wake: asyncio.Future[None] | None = None
        self.waiting_for_keyframe = self.kind == "video"
        self.forwarded = 0
        self.dropped = 0

    def push(self, packet: Any, keyframe: bool) -> None:
        if self.readyState != "live":
            return
        queue = self._queue
        if self.waiting_for_keyframe:
            if not keyframe:
                self.dropped += 1
                return
            self.waiting_for_keyframe = False
        if len(queue) >= self.max_frames:
            if self.kind == "video":
                self.dropped += len(queue) + 1
                queue.clear()
                self.waiting_for_keyframe = True
                self.fanout.request_keyframe()
                return
            queue.popleft()
            self.dropped += 1
        queue.append(packet)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def recv(self) -> Any:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        self.forwarded += 1
        return self._queue.popleft()

    def request_keyframe(self) -> None:
        """Called by aiortc's sender when the subscriber sends PLI or FIR."""
        self.fanout.request_keyframe()

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        self.fanout.legs.discard(self)

    @property
    def queued(self) -> int:
        return len(self._queue)


Tap = Callable[[str, Any], None]


class TrackFanout:
    """Reads one published track and hands every packet to the legs and taps."""

    def __init__(
        self,
        track: MediaStreamTrack,
        send_pli: Callable[[], None],
        taps: Callable[[], list[Tap]],
    ) -> None:
        self.track = track
        self.kind = track.kind
        self.legs: set[ForwardTrack] = set()
        self._send_pli = send_pli
        self._taps = taps
        self._last_pli = 0.0
        self._pli_timer: asyncio.TimerHandle | None = None
        self.received = 0
        self.keyframes = 0
        self.task: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def add_leg(self) -> ForwardTrack:
        leg = ForwardTrack(self)
        if self.ended.is_set():
            leg.stop()
        else:
            self.legs.add(leg)
            if self.kind == "video":
                self.request_keyframe()
        return leg

    def request_keyframe(self) -> None:
        if self.kind != "video" or self.ended.is_set():
            return
        wait = self._last_pli + PLI_MIN_INTERVAL - time.monotonic()
        if wait <= 0:
            self._fire_pli()
        elif self._pli_timer is None:
            self._pli_timer = asyncio.get_running_loop().call_later(wait, self._fire_pli)

    def _fire_pli(self) -> None:
        self._pli_timer = None
        self._last_pli = time.monotonic()
        try:
            self._send_pli()
        except Exception:
            log.debug("could not send PLI", exc_info=True)

    async def _run(self) -> None:
        video = self.kind == "video"
        try:
            while True:
                packet: Any = await self.track.recv()
                self.received += 1
                keyframe = video and is_vp8_keyframe(bytes(memoryview(packet)[:3]))
                if keyframe:
                    self.keyframes += 1
                for leg in tuple(self.legs):
                    leg.push(packet, keyframe)
                for tap in self._taps():
                    try:
                        tap(self.kind, packet)
                    except Exception:
                        log.exception("a media tap failed; it keeps receiving")
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.ended.set()
        if self._pli_timer is not None:
            self._pli_timer.cancel()
            self._pli_timer = None
        for leg in tuple(self.legs):
            leg.stop()
        self.legs.clear()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
