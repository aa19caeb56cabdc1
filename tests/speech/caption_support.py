"""Speech for the caption tests: espeak-ng scripts as WAV, 16 kHz samples and Opus packets.

Each speaker has an espeak-ng voice and a few sentences; the WAV is what a browser's fake
microphone would play, and the Opus packets (20 ms, libopus through PyAV) are what the SFU's
tap hands the live captioner. Scoring uses the lead's `speech_scoring.wer` (normalised WER).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from helpers import eventually, need_tool
from junto.speech.offline import decode_16k

RATE = 48_000
PACKET_SAMPLES = 960  # 20 ms at 48 kHz: what browsers send

# Lines espeak-ng says clearly enough for tiny.en (tests/media/conversation_support.py has the
# measurements): "Water brought trade" or "houseboat" come out as "Wager" and "house note" even
# offline, and a 24-word script then fails a 20 % bound on one such word too many.
ANA = (
    "en-us",
    "Welcome to the stage. Today we talk about rivers and the cities built beside them. "
    "Rivers brought trade, and trade brought people.",
)
BEN = (
    "en+f3",
    "Thank you for having me. I grew up on a river, so this is personal. "
    "Many towns forget the river when the money stops.",
)
# One sentence of about 18 s without a pause: longer than the VAD's 12 s limit, so it is cut.
MONOLOGUE = (
    "en-us",
    "The city council met on Tuesday evening to discuss the new budget for the river parks and "
    "after a long debate about the cost of the bridges and the footpaths along the water the "
    "members agreed to spend more money on the northern bank where the old warehouses stand "
    "empty and the children have nowhere to play in the summer months",
)
# One sentence with two half-second pauses in it (SSML breaks): longer than the VAD's 400 ms,
# so the pauses end utterances mid-sentence.
PAUSED = (
    "en-us",
    '<speak>The people who worked on the docks <break time="500ms"/> cannot afford to stay '
    'in the city <break time="500ms"/> where their parents grew up.</speak>',
)
# A turn of two sentences with a breath between them: captioned apart, then re-heard as one.
TURN = (
    "en-us",
    "<speak>The river flooded the old market twice this spring. "
    '<break time="1500ms"/> Next year the council will raise the walls along the bank.</speak>',
)
# Real words that Whisper also invents on noise: said alone, with pauses between them.
SHORT_WORDS = (
    "en-us",
    '<speak>Okay. <break time="1500ms"/> Thank you. <break time="1500ms"/> Bye.</speak>',
)


def script(text: str) -> str:
    """What a script says (its SSML tags removed)."""
    return re.sub(r"<[^>]+>", "", text)


def need_tools() -> None:
    for tool in ("espeak-ng", "sox"):
        need_tool(tool, f"Debian package {tool}")


def speak(folder: Path, name: str, voice: str, text: str, lead_s: float = 0.5) -> Path:
    """`text` spoken by espeak-ng `voice` as a 48 kHz mono 16-bit WAV, with silence around it."""
    need_tools()
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"{name}-raw.wav"
    out = folder / f"{name}.wav"
    ssml = ["-m"] if text.startswith("<speak>") else []
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "160", *ssml, "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "sox",
            str(raw),
            "-b",
            "16",
            "-c",
            "1",
            str(out),
            "norm",
            "-3",
            "rate",
            str(RATE),
            "pad",
            str(lead_s),
            "1.0",
        ],
        check=True,
        capture_output=True,
    )
    return out


def pcm16k(path: Path) -> npt.NDArray[np.float32]:
    return decode_16k(path)  # as the final pass hears it


def encode_opus(samples: npt.NDArray[np.int16]) -> list[bytes]:
    """48 kHz mono int16 samples as 20 ms Opus packets (libopus, 32 kbit/s, like a browser)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = RATE
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = 32_000
    packets: list[bytes] = []
    usable = len(samples) - len(samples) % PACKET_SAMPLES
    for start in range(0, usable, PACKET_SAMPLES):
        frame = av.AudioFrame.from_ndarray(
            samples[start : start + PACKET_SAMPLES].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = start
        packets += [bytes(p) for p in enc.encode(frame)]
    packets += [bytes(p) for p in enc.encode(None)]
    return packets


def wav_samples(path: Path) -> npt.NDArray[np.int16]:
    import wave

    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()


def opus_packets(path: Path) -> list[bytes]:
    return encode_opus(wav_samples(path))


def silence_packets(seconds: float) -> list[bytes]:
    return encode_opus(np.zeros(int(seconds * RATE), dtype=np.int16))


def noise_packets(seconds: float, level: float = 0.3, seed: int = 7) -> list[bytes]:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(int(seconds * RATE)) * level * 32767
    return encode_opus(np.clip(noise, -32767, 32767).astype(np.int16))


def garbage_packets(count: int, seed: int = 3) -> list[bytes]:
    """Random bytes in place of Opus: a corrupt or hostile stream."""
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes()
        for _ in range(count)
    ]


class Inbox:
    """Messages from a caption worker (called from its reader thread), with waiting."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, message: dict[str, Any]) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 60.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for message in self.messages[seen:]:
                    if check(message):
                        return message
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching worker message in {timeout} s")
                self._cond.wait(left)

    def finals(
        self, user_id: int, conversation_id: int | None = None, kinds: tuple[str, ...] = ("final",)
    ) -> list[dict[str, Any]]:
        with self._cond:
            return [
                m
                for m in self.messages
                if m.get("type") in kinds
                and m["user_id"] == user_id
                and (conversation_id is None or m["conversation_id"] == conversation_id)
            ]

    def shown(self, user_id: int, conversation_id: int) -> list[str]:
        """The caption texts a listener ends up reading: revisions in place of what they
        replace, in time order."""
        standing: dict[int, tuple[float, str]] = {}
        for index, m in enumerate(self.finals(user_id, conversation_id, ("final", "revised"))):
            for seq in m.get("replaces", ()):
                standing.pop(seq, None)
            standing[m.get("seq", -index)] = (m["start"], m["text"])
        return [text for _, text in sorted(standing.values())]


def interleave(*streams: Iterable[tuple[Any, bytes]]) -> list[tuple[Any, bytes, int]]:
    """Packets of several streams in arrival order: (key, packet, index in its stream)."""
    lists = [list(s) for s in streams]
    out: list[tuple[Any, bytes, int]] = []
    for i in range(max(len(items) for items in lists)):
        for items in lists:
            if i < len(items):
                key, packet = items[i]
                out.append((key, packet, i))
    return out


# ---- a node's captioner fed as the SFU feeds it ---------------------------------------------


def camera_taps(media: Any, room: int, user_id: int) -> list[Callable[[str, Any], None]]:
    """The taps on `user_id`'s camera in the embedded SFU's `room` (empty until one is added)."""
    found = media.rooms.get(room)
    return list(found.taps.get((user_id, "camera"), ())) if found is not None else []


async def feed_camera(
    node: Any, room: int, user_id: int, packets: Iterable[bytes], *, with_video: bool = False
) -> None:
    """Wait for the captioner's tap on `user_id`'s camera and for the conversation's names to
    reach its worker, then hand it every Opus packet, as the SFU's forwarding path does (a small
    video packet before each, if `with_video`).

    The packets go in at once but are stamped 20 ms apart from now on, as if spoken in real
    time: a busy machine pausing this loop must not look like the speaker pausing."""
    media, captioner = node.media, node.captioner

    async def tapped() -> bool:
        return bool(camera_taps(media, room, user_id))

    await eventually(tapped, 10)
    await captioner.vocabulary_sent()
    taps = camera_taps(media, room, user_id)
    packets = list(packets)
    now = [time.time()]
    real_clock = captioner.clock
    captioner.clock = lambda: now[0]
    try:
        for packet in packets:
            now[0] += 0.02
            for tap in taps:
                if with_video:
                    tap("video", av.Packet(b"\x00" * 10))  # video is not captioned
                tap("audio", av.Packet(packet))
    finally:
        captioner.clock = real_clock
