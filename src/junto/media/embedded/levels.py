"""Who is speaking, from the audio levels browsers put in every Opus packet's RTP header.

RFC 6464: the ssrc-audio-level header extension carries the level of the audio in the packet
as -dBov (0 loudest, 127 silence) and a voice-activity flag. Reading it costs nothing next to
decoding audio; Janus and LiveKit pick the active speaker the same way.
"""

from __future__ import annotations

from typing import Any

# -dBov below which a packet counts as silence; speech sits around 20-40.
SILENCE_DBOV = 70
# A level (0..1) a speaker must reach to become the active speaker, and by how much a challenger
# must beat the current one, so the highlight does not flicker between two people talking.
ACTIVE_THRESHOLD = 0.2
HYSTERESIS = 0.1


class LevelMeter:
    """Averages the audio levels of one publication's packets between two `take()` calls."""

    def __init__(self) -> None:
        self._sum = 0.0
        self._count = 0

    def add(self, dbov: int) -> None:
        self._sum += max(0.0, (SILENCE_DBOV - dbov) / SILENCE_DBOV)
        self._count += 1

    def take(self) -> float:
        level = self._sum / self._count if self._count else 0.0
        self._sum = 0.0
        self._count = 0
        return level

    def attach(self, receiver: Any) -> None:
        """Read the level of every RTP packet `receiver` gets, before aiortc handles it."""
        handle = receiver._handle_rtp_packet

        async def measured(packet: Any, arrival_time_ms: int) -> None:
            level = packet.extensions.audio_level
            if level is not None:
                self.add(level[1])
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = measured


def pick_active(levels: dict[int, float], current: int | None) -> int | None:
    """The loudest speaker above the threshold; the current one keeps it unless clearly beaten."""
    if not levels:
        return None
    loudest = max(levels, key=lambda uid: levels[uid])
    top = levels[loudest]
    if current in levels:
        mine = levels[current]
        if mine >= ACTIVE_THRESHOLD and top < mine + HYSTERESIS:
            return current
    if top >= ACTIVE_THRESHOLD:
        return loudest
    # Nobody is loud now: the last speaker stays highlighted until someone else speaks up.
    return current if current in levels else None
