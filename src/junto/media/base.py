"""The media backend interface: what the stage needs from an SFU, whichever SFU it is.

Browsers never talk to the SFU's own API. They negotiate through the realtime hub
(docs/protocol.md, "Media signaling"), and `junto.realtime.signaling` turns those frames into
calls on a `MediaBackend`. The embedded SFU (`junto.media.embedded`) is the first backend; a
production SFU (Janus) implements the same interface, so the pages do not change.

Names: a *room* is one conversation (its id); a *peer* is one socket's media session (an opaque
string chosen by the caller); a *publication* is one peer's `camera` or `screen` source (up to
one audio and one video track); a *subscription* is one peer's receiving connection, which the
backend renegotiates as publications come and go.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Source(enum.StrEnum):
    CAMERA = "camera"
    SCREEN = "screen"


class MediaErrorCode(enum.StrEnum):
    """`error.code` values of media failures (docs/protocol.md, "Media errors")."""

    BAD_SDP = "bad_sdp"
    UNSUPPORTED_CODEC = "unsupported_codec"
    ICE_FAILED = "ice_failed"
    NOT_ON_STAGE = "not_on_stage"
    CONSENT_REQUIRED = "consent_required"
    NO_SUCH_TRACK = "no_such_track"
    SEATS_FULL = "seats_full"
    MEDIA_UNAVAILABLE = "media_unavailable"


class MediaError(Exception):
    """A media request was refused; `code` is a MediaErrorCode, `message` is for people."""

    def __init__(self, code: MediaErrorCode | str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = MediaErrorCode(code).value
        self.message = message


@dataclass(frozen=True)
class TrackInfo:
    """One m-line of a subscription offer: which speaker's which track it carries."""

    mid: str
    kind: str  # "audio" | "video"
    user_id: int
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"mid": self.mid, "kind": self.kind, "user_id": self.user_id, "source": self.source}


@dataclass(frozen=True)
class SubscriptionOffer:
    version: int
    sdp: str
    tracks: tuple[TrackInfo, ...]


@dataclass(frozen=True)
class Publication:
    """What the room shows about one speaker's source."""

    user_id: int
    source: str
    has_audio: bool
    has_video: bool


@dataclass
class PeerStats:
    peer: str
    user_id: int | None
    role: str  # "publisher" | "subscriber"
    source: str | None
    state: str
    packets_in: int = 0
    packets_out: int = 0
    dropped: int = 0


@dataclass
class RoomStats:
    room: int
    publishers: int
    subscribers: int
    peers: list[PeerStats] = field(default_factory=list)


# An encoded media packet handed to a tap: (kind, av.Packet). Taps must return quickly: they run
# on the forwarding path. The recorder and the live captioner queue and work elsewhere.
TapCallback = Callable[[str, Any], None]


class MediaListener(Protocol):
    """How a backend tells the signaling layer about things nobody asked for just now."""

    def subscription_offer(self, room: int, peer: str, offer: SubscriptionOffer) -> None:
        """A renegotiated offer for `peer`'s subscription (send it as `media.offer`)."""

    def publications_changed(self, room: int, publications: list[Publication]) -> None:
        """The set of publications in `room` changed."""

    def active_speaker(self, room: int, user_id: int | None, levels: dict[int, float]) -> None:
        """The loudest speaker changed (or their levels moved noticeably)."""

    def peer_failed(self, room: int, peer: str, target: str, message: str) -> None:
        """A peer's connection failed or was lost; `target` is a source or "subscribe"."""


class MediaBackend(Protocol):
    """The SFU behind the stage. Every method may raise MediaError; nothing else is expected."""

    name: str

    def set_listener(self, listener: MediaListener) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, room: int, peer: str, user_id: int, source: str, offer_sdp: str) -> str:
        """Accept a publisher's offer; returns the answer SDP. Replaces the peer's earlier
        publication of the same source."""
        ...

    async def unpublish(self, room: int, peer: str, source: str | None = None) -> None:
        """Stop one source of a peer (or all, with None). Unknown sources are ignored."""
        ...

    async def subscribe(
        self, room: int, peer: str, user_id: int | None, only: frozenset[int] | None = None
    ) -> SubscriptionOffer | None:
        """Start (or restart) a peer's subscription; returns the first offer, or None while
        nobody is publishing (the first offer then comes through the listener)."""
        ...

    async def answer(self, room: int, peer: str, version: int, answer_sdp: str) -> None:
        """The subscriber's answer to offer `version`."""
        ...

    async def add_candidate(
        self, room: int, peer: str, target: str, candidate: str, sdp_mid: str | None
    ) -> None:
        """A trickled ICE candidate from the browser for a publication or the subscription."""
        ...

    async def unsubscribe(self, room: int, peer: str) -> None: ...

    async def leave(self, room: int, peer: str) -> None:
        """Everything of this peer ends (its socket closed)."""
        ...

    async def close_room(self, room: int) -> None: ...

    def publications(self, room: int) -> list[Publication]: ...

    def viewer_count(self) -> int:
        """Subscriptions held by people who are not publishing (the node's live seats)."""
        ...

    def stats(self, room: int | None = None) -> list[RoomStats]: ...

    def request_keyframe(self, room: int, user_id: int, source: str = "camera") -> None:
        """Ask a speaker's browser for a key frame (a recording that starts mid-stream needs one
        to be decodable from its first frame). Unknown speakers are ignored."""
        ...

    def add_tap(
        self, room: int, user_id: int, callback: TapCallback, source: str = "camera"
    ) -> Callable[[], None]:
        """Receive every encoded packet of one speaker's source (`callback(kind, packet)`, with
        `packet.pts` and `packet.time_base` on the RTP clock); returns a function that removes
        it. A tap outlives publications: a speaker who publishes again feeds the same tap."""
        ...
