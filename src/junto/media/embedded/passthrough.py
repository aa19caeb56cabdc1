"""Receive encoded media without decoding it: the heart of forwarding instead of transcoding.

aiortc's receiver reassembles each encoded frame in its jitter buffer and hands it to a decoder
on a thread (aiortc.rtcrtpreceiver.decoder_worker, which calls `get_decoder(codec)` for the first
frame). For a peer connection marked with `mark_passthrough`, our decoder does no decoding: it
wraps the frame's bytes in an `av.Packet` with its RTP timestamp, so the track yields packets,
and an aiortc sender given a packet only packetizes it (RTCRtpSender._next_encoded_frame). That
is an SFU: about 1 % of a core per forwarded leg instead of ~19 % for decode + re-encode
(docs/ARCHITECTURE.md, engineering notes).

The mark is an attribute on the codec parameter objects the receiver decodes with. They are the
transceiver's `_codecs`, set by setRemoteDescription; the decoder is made on the first frame,
which cannot arrive before DTLS connects, long after we mark them. This touches aiortc
internals, which is why aiortc is pinned and the media tests run a real browser.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import aiortc.rtcrtpreceiver
import av
from aiortc import RTCPeerConnection
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame

_MARK = "_junto_passthrough"
_original_get_decoder = aiortc.rtcrtpreceiver.get_decoder  # type: ignore[attr-defined]


class PassthroughDecoder(Decoder):
    """Turns a reassembled encoded frame into an `av.Packet` (no decoding)."""

    def __init__(self, clock_rate: int) -> None:
        self.time_base = Fraction(1, clock_rate)

    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = self.time_base
        return [packet]


def _get_decoder(codec: Any) -> Decoder:
    if getattr(codec, _MARK, False):
        return PassthroughDecoder(codec.clockRate)
    return _original_get_decoder(codec)


aiortc.rtcrtpreceiver.get_decoder = _get_decoder  # type: ignore[attr-defined]


def mark_passthrough(pc: RTCPeerConnection) -> None:
    """Make every receiver of `pc` hand on encoded packets. Call after setRemoteDescription."""
    for transceiver in pc.getTransceivers():
        for codec in transceiver._codecs:
            setattr(codec, _MARK, True)
