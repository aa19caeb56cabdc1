"""What the node reads from VP8 frames without decoding them (RFC 6386 section 9.1).

The SFU needs to know key frames (a new subscriber starts at one), the recorder too (a file
must start at one), and the WebM muxer needs the picture size, which only key frames carry.
"""

from __future__ import annotations

import struct

_START_CODE = b"\x9d\x01\x2a"


def is_vp8_keyframe(data: bytes) -> bool:
    """Bit 0 of the first byte of a VP8 frame is 0 for a key frame."""
    return len(data) >= 3 and not data[0] & 0x01


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame's header, else None."""
    if len(frame) < 10 or not is_vp8_keyframe(frame) or frame[3:6] != _START_CODE:
        return None
    width, height = struct.unpack_from("<HH", frame, 6)
    width, height = width & 0x3FFF, height & 0x3FFF
    return (width, height) if width and height else None
