"""Pre-encoded media for the SFU benchmark's aiortc clients, and a cheap way to count what arrives.

The clients must cost as little as possible, or their CPU competes with the server under test on
a 2-core machine. So publishers never encode: `encode_clip` encodes a 640x480 VP8 clip (ffmpeg's
moving `testsrc2` pattern, 20 fps, about 450 kbit/s, a keyframe every 3 s) and an Opus track
(espeak-ng speech, or a tone without it) ONCE, and every publisher's `PacketTrack` hands those
packets to aiortc in real time. aiortc's sender only packetizes an `av.Packet` (no encoder runs).
A keyframe request (PLI) from the SFU makes the track jump to the clip's nearest keyframe, as a
real encoder would send one, so a new subscriber need not wait for the next scheduled keyframe.

Subscribers do not decode either: `count_track` reads the `av.Packet`s that a pass-through
receiver hands on and counts frames, keyframes and bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from junto.media.embedded.ice import use_addresses
from junto.media.vp8 import is_vp8_keyframe

WIDTH, HEIGHT, FPS = 640, 480, 20
VIDEO_CLOCK = 90_000  # RTP clock of VP8 (RFC 7741)
AUDIO_CLOCK = 48_000  # RTP clock of Opus (RFC 7587)
AUDIO_FRAME = 960  # 20 ms of Opus at 48 kHz
SPEECH = (
    "This is the Junto stage benchmark. Four speakers talk while twenty people watch and "
    "listen live. Every word travels through the embedded forwarding unit without being "
    "decoded or encoded again."
)


@dataclass
class Clip:
    """Encoded packets of one clip: `video` and `audio` are lists of (payload, keyframe)."""

    video: list[tuple[bytes, bool]] = field(default_factory=list)
    audio: list[tuple[bytes, bool]] = field(default_factory=list)

    @property
    def video_kbps(self) -> float:
        seconds = len(self.video) / FPS
        return sum(len(d) for d, _ in self.video) * 8 / seconds / 1000 if seconds else 0.0

    def save(self, path: Path) -> None:
        """Per stream: a packet count, then per packet a keyframe flag, a length, the bytes."""
        out = bytearray()
        for stream in (self.video, self.audio):
            out += struct.pack("!I", len(stream))
            for data, key in stream:
                out += struct.pack("!?I", key, len(data)) + data
        path.write_bytes(bytes(out))

    @classmethod
    def load(cls, path: Path) -> Clip:
        raw = path.read_bytes()
        pos = 0
        streams: list[list[tuple[bytes, bool]]] = []
        for _ in range(2):
            (count,) = struct.unpack_from("!I", raw, pos)
            pos += 4
            stream = []
            for _ in range(count):
                key, size = struct.unpack_from("!?I", raw, pos)
                pos += 5
                stream.append((raw[pos : pos + size], key))
                pos += size
            streams.append(stream)
        return cls(streams[0], streams[1])


def encode_clip(seconds: float = 12.0, bitrate: int = 450_000, gop: int = 60) -> Clip:
    """Encode the synthetic clip once (about half a second of CPU per 10 s of clip)."""
    clip = Clip()
    graph = av.filter.Graph()
    src = graph.add("testsrc2", f"s={WIDTH}x{HEIGHT}:r={FPS}")
    fmt = graph.add("format", "pix_fmts=yuv420p")
    sink = graph.add("buffersink")
    src.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.framerate = Fraction(FPS)
    enc.bit_rate = bitrate
    enc.gop_size = gop
    # Real-time settings, as a browser encodes: no look-ahead and no hidden alt-ref frames,
    # so every packet is one displayable frame.
    enc.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "auto-alt-ref": "0",
    }
    frames = int(seconds * FPS)
    for i in range(frames):
        frame = sink.pull()
        assert isinstance(frame, av.VideoFrame)  # a buffersink after a video source
        # testsrc2 marks every frame as an I picture, which would force libvpx to make every
        # frame a keyframe.
        frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = i
        frame.time_base = Fraction(1, FPS)
        clip.video += [(bytes(p), is_vp8_keyframe(bytes(p))) for p in enc.encode(frame)]
    clip.video += [(bytes(p), is_vp8_keyframe(bytes(p))) for p in enc.encode(None)]
    clip.audio = _encode_audio(seconds)
    return clip


def _speech_wav(seconds: float, folder: Path) -> Path | None:
    if not shutil.which("espeak-ng"):
        return None
    path = folder / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(path), SPEECH],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def _encode_audio(seconds: float) -> list[tuple[bytes, bool]]:
    """Opus at 48 kHz stereo in 20 ms packets: speech from espeak-ng (or a tone), then silence."""
    total = int(seconds * AUDIO_CLOCK)
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_CLOCK)
    pcm = bytearray()
    with tempfile.TemporaryDirectory() as tmp:
        wav = _speech_wav(seconds, Path(tmp))
        if wav is not None:
            with av.open(str(wav)) as container:
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        pcm += bytes(out.planes[0])[: out.samples * 4]
    if not pcm:  # no espeak-ng: a 440 Hz tone
        graph = av.filter.Graph()
        src = graph.add("sine", f"frequency=440:sample_rate={AUDIO_CLOCK}:duration={seconds}")
        sink = graph.add("abuffersink")
        src.link_to(sink)
        graph.configure()
        with contextlib.suppress(av.error.EOFError, av.error.BlockingIOError):
            while len(pcm) < total * 4:
                tone = sink.pull()
                assert isinstance(tone, av.AudioFrame)  # an abuffersink after an audio source
                for out in resampler.resample(tone):
                    pcm += bytes(out.planes[0])[: out.samples * 4]
    pcm = pcm[: total * 4].ljust(total * 4, b"\0")
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = AUDIO_CLOCK
    enc.layout = "stereo"
    enc.format = "s16"
    enc.bit_rate = 48_000
    enc.time_base = Fraction(1, AUDIO_CLOCK)
    packets: list[tuple[bytes, bool]] = []
    step = AUDIO_FRAME * 4
    for n, offset in enumerate(range(0, len(pcm) - step + 1, step)):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=AUDIO_FRAME)
        frame.planes[0].update(bytes(pcm[offset : offset + step]))
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = n * AUDIO_FRAME
        frame.time_base = Fraction(1, AUDIO_CLOCK)
        packets += [(bytes(p), True) for p in enc.encode(frame)]
    packets += [(bytes(p), True) for p in enc.encode(None)]
    return packets


class PacketTrack(MediaStreamTrack):
    """Hands pre-encoded packets to aiortc's sender at the clip's pace, looping forever."""

    def __init__(self, kind: str, packets: list[tuple[bytes, bool]]) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._keyframes = [i for i, (_, key) in enumerate(packets) if key] or [0]
        if kind == "video":
            self._interval, self._ticks, self._clock = 1 / FPS, VIDEO_CLOCK // FPS, VIDEO_CLOCK
        else:
            self._interval, self._ticks, self._clock = AUDIO_FRAME / AUDIO_CLOCK, AUDIO_FRAME, 48000
        self._time_base = Fraction(1, self._clock)
        self._pos = 0
        self._sent = 0
        self._start: float | None = None
        self.bytes_sent = 0
        self.keyframe_requests = 0
        self.keyframes_sent = 0

    def request_keyframe(self) -> None:
        """A PLI/FIR arrived: send the clip's latest keyframe at or before the next packet."""
        self.keyframe_requests += 1
        self._pos = max((k for k in self._keyframes if k <= self._pos), default=0)

    async def recv(self) -> av.Packet[av.stream.Stream]:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._sent * self._interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        data, key = self._packets[self._pos]
        self._pos = (self._pos + 1) % len(self._packets)
        packet = av.Packet(data)
        packet.pts = self._sent * self._ticks
        packet.time_base = self._time_base
        self._sent += 1
        self.bytes_sent += len(data)
        if key and self.kind == "video":
            self.keyframes_sent += 1
        return packet


def honour_keyframe_requests(sender: Any, track: PacketTrack) -> None:
    """Route the sender's PLI/FIR handling to the track (aiortc only forces its own encoder)."""
    sender._send_keyframe = track.request_keyframe


@dataclass
class TrackCount:
    """What one received track delivered."""

    kind: str
    frames: int = 0
    keyframes: int = 0
    bytes: int = 0
    first_at: float | None = None  # time.monotonic() of the first frame
    first_key_at: float | None = None
    ended: bool = False
    decoded: int = 0  # frames that were decoded instead of passed through (should stay 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "bytes": self.bytes,
            "first_at": self.first_at,
            "first_key_at": self.first_key_at,
            "ended": self.ended,
            "decoded": self.decoded,
        }


async def count_track(track: MediaStreamTrack, count: TrackCount) -> None:
    """Read every frame of a remote track (a reader must never stop) and count it."""
    try:
        while True:
            item = await track.recv()
            now = time.monotonic()
            if count.first_at is None:
                count.first_at = now
            count.frames += 1
            if isinstance(item, av.Packet):
                data = bytes(item)
                count.bytes += len(data)
                if count.kind == "video" and is_vp8_keyframe(data):
                    count.keyframes += 1
                    if count.first_key_at is None:
                        count.first_key_at = now
            else:
                count.decoded += 1
                if count.first_key_at is None:
                    count.first_key_at = now
    except MediaStreamError:
        count.ended = True


def loopback_ice() -> None:
    """Make aioice gather 127.0.0.1 (it leaves loopback out), as the node does on loopback."""
    use_addresses(["127.0.0.1"])
