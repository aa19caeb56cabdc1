"""Real VP8 and Opus packets, stamped the way the SFU's taps hand them on.

The packets come from PyAV's libvpx and libopus encoders (a moving picture and a sine), so the
recordings made from them are real media that decoders must accept. `arrivals` gives them RTP
timestamps (90 kHz video, 48 kHz audio, from a chosen start, wrapping at 2^32 like RTP does) and
arrival wall-clock times, as a speaker's browser would send them.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg  # type: ignore[import-untyped]
import numpy as np

FPS = 30
WIDTH, HEIGHT = 320, 240
VIDEO_TB = Fraction(1, 90000)
AUDIO_TB = Fraction(1, 48000)
RTP_MOD = 1 << 32


@dataclass(frozen=True)
class Arrival:
    kind: str
    data: bytes
    pts: int
    time_base: Fraction
    keyframe: bool
    wall: float

    def packet(self) -> av.Packet:  # type: ignore[type-arg]
        """The packet as a tap receives it: an av.Packet with pts and time base."""
        packet = av.Packet(self.data)
        packet.pts = self.pts
        packet.time_base = self.time_base
        return packet


@functools.cache
def vp8_frames(seconds: float = 4.0, keyframe_every: int = 60) -> tuple[tuple[bytes, bool], ...]:
    """VP8 frames at 30 fps: a key frame every `keyframe_every` frames."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.bit_rate = 300_000
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frames: list[tuple[bytes, bool]] = []
    for i in range(round(seconds * FPS)):
        img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        img[:, :, 1] = (i * 4) % 256
        img[:, (i * 5) % WIDTH] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        if i % keyframe_every == 0:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in enc.encode(frame):
            frames.append((bytes(packet), bool(packet.is_keyframe)))
    for packet in enc.encode(None):
        frames.append((bytes(packet), bool(packet.is_keyframe)))
    return tuple(frames)


@functools.cache
def opus_packets(seconds: float = 4.0) -> tuple[bytes, ...]:
    """20 ms Opus packets of a 440 Hz sine, 48 kHz mono: what Chrome sends by default (its
    SDP says opus/48000/2, but without stereo=1 it encodes mono packets)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    enc.time_base = AUDIO_TB
    enc.bit_rate = 32_000
    total = round(seconds * 48000)
    t = np.arange(total) / 48000
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
    packets: list[bytes] = []
    for start in range(0, total, 960):
        chunk = np.ascontiguousarray(tone[:, start : start + 960])
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, start, AUDIO_TB
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    return tuple(packets[: total // 960])  # one packet per 20 ms of input


def arrivals(
    *,
    seconds: float = 4.0,
    wall0: float = 1_780_000_000.0,
    video: bool = True,
    audio: bool = True,
    video_rtp0: int = 1234,
    audio_rtp0: int = 98765,
    video_delay: float = 0.0,
    keyframe_every: int = 60,
) -> list[Arrival]:
    """Packets of `seconds` of media in arrival order: audio from `wall0`, video from
    `wall0 + video_delay`, RTP timestamps from the given starts (mod 2^32)."""
    out: list[Arrival] = []
    if video:
        for i, (data, key) in enumerate(vp8_frames(seconds, keyframe_every)):
            pts = (video_rtp0 + i * 3000) % RTP_MOD
            out.append(Arrival("video", data, pts, VIDEO_TB, key, wall0 + video_delay + i / FPS))
    if audio:
        for i, data in enumerate(opus_packets(seconds)):
            pts = (audio_rtp0 + i * 960) % RTP_MOD
            out.append(Arrival("audio", data, pts, AUDIO_TB, False, wall0 + i * 0.02))
    out.sort(key=lambda a: a.wall)
    return out


@dataclass(frozen=True)
class Probe:
    duration: float
    video_frames: int
    audio_seconds: float
    audio_peak: float  # loudest decoded sample (full scale = 1): sound, not silence
    streams: tuple[str, ...]


def probe(path: Path) -> Probe:
    """Decode every frame with PyAV: what a player would get out of the file."""
    with av.open(str(path)) as container:
        duration = (container.duration or 0) / 1_000_000
        streams = tuple(s.codec_context.name for s in container.streams)
        video_frames = 0
        samples = 0
        peak = 0.0
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                video_frames += 1
            elif isinstance(frame, av.AudioFrame):
                samples += frame.samples
                peak = max(peak, float(np.abs(frame.to_ndarray()).max()))
    return Probe(duration, video_frames, samples / 48000, peak, streams)


def ffmpeg_decodes(path: Path) -> str:
    """Decode the whole file with the ffmpeg binary (the player's view, outside PyAV); returns
    its error output, which must be empty of errors."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr
