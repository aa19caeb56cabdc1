"""The embedded SFU: a `MediaBackend` that forwards encoded VP8 and Opus inside the node.

Each publication is an aiortc peer connection answering the browser's offer, its receivers
marked pass-through (passthrough.py) so they yield encoded packets; a `TrackFanout` per track
copies them into one bounded `ForwardTrack` per subscriber (forward.py). Each subscriber has one
peer connection that the node offers (bundled: one ICE/DTLS transport for every track) and
renegotiates as publications come and go. aiortc handles per-connection RTCP: the publisher leg
sends NACKs upstream, every subscriber leg answers its own NACKs from its sender's history, and
PLI/FIR from a subscriber is forwarded (paced) to the publisher as PLI.

Everything runs on the node's event loop; the SFU does no decoding at all (the active speaker
comes from the RFC 6464 audio levels the browsers put in the RTP header extension).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import SessionDescription, candidate_from_sdp

from junto.media.base import (
    MediaError,
    MediaErrorCode,
    MediaListener,
    PeerStats,
    Publication,
    RoomStats,
    SubscriptionOffer,
    TapCallback,
    TrackInfo,
)
from junto.media.embedded.forward import ForwardTrack, TrackFanout
from junto.media.embedded.levels import LevelMeter, pick_active
from junto.media.embedded.passthrough import mark_passthrough

log = logging.getLogger("junto.media")

SUBSCRIBE = "subscribe"
# Fire-and-forget RTCP sends, referenced until done (asyncio keeps only weak references).
_PENDING: set[asyncio.Future[Any]] = set()
LEVELS_INTERVAL = 0.25
# How long a subscriber may take to answer an offer before its subscription is ended.
ANSWER_TIMEOUT = 20.0
# Past this many dead m-lines a subscription starts afresh rather than renegotiate forever
# (aiortc cannot reuse a transceiver whose sender has stopped).
MAX_INACTIVE_MLINES = 24

_VIDEO_CODECS = ("video/vp8", "video/rtx")
_AUDIO_CODECS = ("audio/opus",)


def _preferences(kind: str) -> list[Any]:
    wanted = _VIDEO_CODECS if kind == "video" else _AUDIO_CODECS
    caps = RTCRtpSender.getCapabilities(kind)
    return [c for c in caps.codecs if c.mimeType.lower() in wanted]


def _accept_only_forwardable(transceiver: RTCRtpTransceiver) -> None:
    """Answer with VP8 (and its RTX) or Opus only: subscribers' senders packetize as VP8/Opus.

    aiortc picks the answer's codecs in setRemoteDescription (`transceiver._codecs`), so they
    are narrowed there; setCodecPreferences afterwards would come too late.
    """
    wanted = _VIDEO_CODECS[:1] if transceiver.kind == "video" else _AUDIO_CODECS
    main = [c for c in transceiver._codecs if c.mimeType.lower() in wanted]
    types = {c.payloadType for c in main}
    rtx = [
        c
        for c in transceiver._codecs
        if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") in types
    ]
    transceiver._codecs = main + rtx


@dataclass
class _Publisher:
    room: int
    peer: str
    user_id: int
    source: str
    pc: RTCPeerConnection
    fanouts: dict[str, TrackFanout] = field(default_factory=dict)
    meter: LevelMeter = field(default_factory=LevelMeter)
    closed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.peer, self.source)

    def publication(self) -> Publication:
        return Publication(
            user_id=self.user_id,
            source=self.source,
            has_audio="audio" in self.fanouts,
            has_video="video" in self.fanouts,
        )


# (publisher peer, source, kind)
_LegKey = tuple[str, str, str]


@dataclass
class _Leg:
    transceiver: RTCRtpTransceiver
    track: ForwardTrack
    info: TrackInfo


@dataclass
class _Subscriber:
    room: int
    peer: str
    user_id: int | None
    only: frozenset[int] | None
    pc: RTCPeerConnection | None = None
    legs: dict[tuple[str, str, str], _Leg] = field(default_factory=dict)
    inactive: list[TrackInfo] = field(default_factory=list)
    version: int = 0
    awaiting: int | None = None  # the offer version we wait an answer for
    dirty: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False


@dataclass
class _Room:
    id: int
    publishers: dict[tuple[str, str], _Publisher] = field(default_factory=dict)
    subscribers: dict[str, _Subscriber] = field(default_factory=dict)
    taps: dict[tuple[int, str], list[TapCallback]] = field(default_factory=dict)
    levels_task: asyncio.Task[None] | None = None
    active: int | None = None
    last_levels: dict[int, float] = field(default_factory=dict)


class _NullListener:
    def subscription_offer(self, room: int, peer: str, offer: SubscriptionOffer) -> None:
        pass

    def publications_changed(self, room: int, publications: list[Publication]) -> None:
        pass

    def active_speaker(self, room: int, user_id: int | None, levels: dict[int, float]) -> None:
        pass

    def peer_failed(self, room: int, peer: str, target: str, message: str) -> None:
        pass


class EmbeddedSfu:
    """The media backend that runs inside the node's process (see module docstring)."""

    name = "embedded"

    def __init__(self, ice_servers: Callable[[], Sequence[RTCIceServer]] = list) -> None:
        # A function, not a list: TURN credentials expire, so each connection gets fresh ones.
        self.ice_servers = ice_servers
        self.rooms: dict[int, _Room] = {}
        self.listener: MediaListener = _NullListener()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.running = False

    def set_listener(self, listener: MediaListener) -> None:
        self.listener = listener

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False
        for room in list(self.rooms):
            await self.close_room(room)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- helpers --------------------------------------------------------------------------------

    def _config(self, *, bundle: bool) -> RTCConfiguration:
        # An explicit list, even empty: with None aiortc adds a public STUN server.
        return RTCConfiguration(
            iceServers=list(self.ice_servers()),
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE if bundle else RTCBundlePolicy.BALANCED,
        )

    def _room(self, room: int) -> _Room:
        if not self.running:
            raise MediaError(MediaErrorCode.MEDIA_UNAVAILABLE, "the media server is not running")
        found = self.rooms.get(room)
        if found is None:
            found = self.rooms[room] = _Room(room)
        return found

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _parse(sdp: str, expected: str) -> tuple[RTCSessionDescription, SessionDescription]:
        if not isinstance(sdp, str) or not sdp.strip():
            raise MediaError(MediaErrorCode.BAD_SDP, f"expected an SDP {expected}, got nothing")
        try:
            parsed = SessionDescription.parse(sdp)
        except Exception as exc:
            raise MediaError(
                MediaErrorCode.BAD_SDP, f"expected an SDP {expected}, got one that does not parse"
            ) from exc
        if not parsed.media:
            raise MediaError(
                MediaErrorCode.BAD_SDP, f"expected an SDP {expected} with media, got none"
            )
        return RTCSessionDescription(sdp=sdp, type=expected), parsed

    # ---- publishing -----------------------------------------------------------------------------

    async def publish(self, room: int, peer: str, user_id: int, source: str, offer_sdp: str) -> str:
        r = self._room(room)
        offer, parsed = self._parse(offer_sdp, "offer")
        kinds = [m.kind for m in parsed.media if m.kind in ("audio", "video")]
        if not kinds or kinds.count("audio") > 1 or kinds.count("video") > 1:
            raise MediaError(
                MediaErrorCode.BAD_SDP,
                f"expected at most one audio and one video track, got {len(kinds)} tracks "
                f"({', '.join(kinds) or 'none'})",
            )
        for m in parsed.media:
            names = {c.mimeType.lower() for c in m.rtp.codecs}
            if m.kind == "video" and "video/vp8" not in names:
                raise MediaError(
                    MediaErrorCode.UNSUPPORTED_CODEC,
                    f"expected VP8 video, got {', '.join(sorted(names)) or 'no codec'}",
                )
            if m.kind == "audio" and "audio/opus" not in names:
                raise MediaError(
                    MediaErrorCode.UNSUPPORTED_CODEC,
                    f"expected Opus audio, got {', '.join(sorted(names)) or 'no codec'}",
                )
        old = r.publishers.get((peer, source))
        if old is not None:
            await self._drop_publisher(r, old)

        pc = RTCPeerConnection(self._config(bundle=False))
        pub = _Publisher(room, peer, user_id, source, pc)

        @pc.on("track")
        def _on_track(track: Any) -> None:
            receiver = next(
                (t.receiver for t in pc.getTransceivers() if t.receiver.track is track), None
            )
            fanout = TrackFanout(
                track,
                send_pli=lambda: self._send_pli(receiver),
                taps=lambda: r.taps.get((user_id, source), []),
            )
            pub.fanouts[track.kind] = fanout
            if track.kind == "audio" and receiver is not None:
                pub.meter.attach(receiver)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            # aiortc ends a connection whose ICE consent expired (RFC 7675: the browser vanished)
            # as "closed", not "failed"; a close we did not start ourselves is a loss too.
            if pc.connectionState in ("failed", "closed") and not pub.closed:
                self.listener.peer_failed(
                    room, peer, source, "the connection to the media server was lost"
                )
                if r.publishers.get(pub.key) is pub:
                    await self._drop_publisher(r, pub)

        try:
            await pc.setRemoteDescription(offer)
            mark_passthrough(pc)
            for transceiver in pc.getTransceivers():
                _accept_only_forwardable(transceiver)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except MediaError:
            pub.closed = True
            await pc.close()
            raise
        except Exception as exc:
            pub.closed = True
            await pc.close()
            raise MediaError(
                MediaErrorCode.BAD_SDP, f"expected an offer the media server can answer: {exc}"
            ) from exc
        for fanout in pub.fanouts.values():
            fanout.start()
        r.publishers[pub.key] = pub
        self._ensure_levels(r)
        self._publications_changed(r)
        return str(pc.localDescription.sdp)

    @staticmethod
    def _send_pli(receiver: Any) -> None:
        if receiver is None:
            return
        # The PLI must name the video's own SSRC: Chromium sends bandwidth probes on the
        # retransmission (RTX) stream first, and ignores a PLI for that one.
        rtx = receiver._RTCRtpReceiver__rtx_ssrc
        sources = [s.source for s in receiver.getSynchronizationSources() if s.source not in rtx]
        if sources:
            task = asyncio.ensure_future(receiver._send_rtcp_pli(sources[-1]))
            _PENDING.add(task)
            task.add_done_callback(_PENDING.discard)

    async def unpublish(self, room: int, peer: str, source: str | None = None) -> None:
        r = self.rooms.get(room)
        if r is None:
            return
        for pub in list(r.publishers.values()):
            if pub.peer == peer and (source is None or pub.source == source):
                await self._drop_publisher(r, pub)

    async def _drop_publisher(self, r: _Room, pub: _Publisher) -> None:
        if pub.closed:
            return
        pub.closed = True
        if r.publishers.get(pub.key) is pub:
            del r.publishers[pub.key]
        for fanout in pub.fanouts.values():
            fanout.close()
        self._publications_changed(r)
        await pub.pc.close()
        self._maybe_forget(r)

    def _publications_changed(self, r: _Room) -> None:
        self.listener.publications_changed(r.id, self.publications(r.id))
        for sub in list(r.subscribers.values()):
            self._spawn(self._sync(r, sub))

    def publications(self, room: int) -> list[Publication]:
        r = self.rooms.get(room)
        if r is None:
            return []
        return [p.publication() for p in r.publishers.values() if not p.closed]

    # ---- subscribing ----------------------------------------------------------------------------

    def _wanted(self, r: _Room, sub: _Subscriber) -> dict[_LegKey, tuple[TrackFanout, TrackInfo]]:
        wanted: dict[_LegKey, tuple[TrackFanout, TrackInfo]] = {}
        for pub in r.publishers.values():
            if pub.closed or pub.peer == sub.peer:
                continue  # nobody receives their own media back
            if sub.only is not None and pub.user_id not in sub.only:
                continue
            for kind, fanout in pub.fanouts.items():
                if fanout.ended.is_set():
                    continue
                info = TrackInfo(mid="", kind=kind, user_id=pub.user_id, source=pub.source)
                wanted[(pub.peer, pub.source, kind)] = (fanout, info)
        return wanted

    async def subscribe(
        self, room: int, peer: str, user_id: int | None, only: frozenset[int] | None = None
    ) -> SubscriptionOffer | None:
        r = self._room(room)
        if only is not None:
            publishing = {p.user_id for p in r.publishers.values() if not p.closed}
            missing = sorted(only - publishing)
            if missing:
                raise MediaError(
                    MediaErrorCode.NO_SUCH_TRACK,
                    f"expected speakers who are publishing, got user {missing[0]} who is not",
                )
        old = r.subscribers.pop(peer, None)
        if old is not None:
            await self._close_subscriber(old)
        sub = _Subscriber(room, peer, user_id, only)
        r.subscribers[peer] = sub
        return await self._sync(r, sub, notify=False)

    async def _sync(
        self, r: _Room, sub: _Subscriber, *, notify: bool = True
    ) -> SubscriptionOffer | None:
        """Bring a subscription's tracks in line with the room; offer if anything changed."""
        async with sub.lock:
            if sub.closed:
                return None
            if sub.awaiting is not None:
                sub.dirty = True  # renegotiate once the pending offer is answered
                return None
            wanted = self._wanted(r, sub)
            changed = False
            for key in list(sub.legs):
                if key not in wanted or sub.legs[key].track.readyState != "live":
                    leg = sub.legs.pop(key)
                    leg.track.stop()
                    leg.transceiver.direction = "inactive"
                    sub.inactive.append(leg.info)
                    changed = True
            if sub.pc is not None and len(sub.inactive) > MAX_INACTIVE_MLINES:
                old_pc, sub.pc = sub.pc, None
                await old_pc.close()
                sub.legs.clear()
                sub.inactive.clear()
                changed = True
            new = [key for key in wanted if key not in sub.legs]
            if not new and not changed:
                return None
            if sub.pc is None:
                if not new:
                    return None
                sub.pc = self._subscriber_pc(r, sub)
            pc = sub.pc
            for key in new:
                fanout, info = wanted[key]
                track = fanout.add_leg()
                transceiver = pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(_preferences(track.kind))
                # aiortc would ask a (non-existent) encoder for a key frame; ask the publisher.
                transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
                sub.legs[key] = _Leg(transceiver, track, info)
            try:
                offer = await pc.createOffer()
                await pc.setLocalDescription(offer)
            except Exception:
                log.exception("offer for subscriber %s in room %s failed", sub.peer, r.id)
                self.listener.peer_failed(r.id, sub.peer, SUBSCRIBE, "the media server failed")
                return None
            tracks = []
            for leg in sub.legs.values():
                mid = leg.transceiver.mid or ""
                leg.info = TrackInfo(mid, leg.info.kind, leg.info.user_id, leg.info.source)
                tracks.append(leg.info)
            sub.version += 1
            sub.awaiting = sub.version
            self._expect_answer(r, sub, sub.version)
            result = SubscriptionOffer(sub.version, str(pc.localDescription.sdp), tuple(tracks))
        if notify:
            self.listener.subscription_offer(r.id, sub.peer, result)
        return result

    def _expect_answer(self, r: _Room, sub: _Subscriber, version: int) -> None:
        """A viewer who never answers would hold a live seat for as long as its socket lives."""

        def check() -> None:
            if sub.closed or sub.awaiting != version or r.subscribers.get(sub.peer) is not sub:
                return
            del r.subscribers[sub.peer]
            self.listener.peer_failed(
                r.id, sub.peer, SUBSCRIBE, "the browser did not answer the media offer in time"
            )
            self._spawn(self._close_subscriber(sub))

        asyncio.get_running_loop().call_later(ANSWER_TIMEOUT, check)

    def _subscriber_pc(self, r: _Room, sub: _Subscriber) -> RTCPeerConnection:
        pc = RTCPeerConnection(self._config(bundle=True))

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if pc.connectionState in ("failed", "closed") and not sub.closed and sub.pc is pc:
                self.listener.peer_failed(
                    r.id, sub.peer, SUBSCRIBE, "the connection to the media server was lost"
                )
                if r.subscribers.get(sub.peer) is sub:
                    del r.subscribers[sub.peer]
                await self._close_subscriber(sub)

        return pc

    async def answer(self, room: int, peer: str, version: int, answer_sdp: str) -> None:
        r = self.rooms.get(room)
        sub = r.subscribers.get(peer) if r is not None else None
        if r is None or sub is None or sub.pc is None:
            raise MediaError(MediaErrorCode.NO_SUCH_TRACK, "expected a subscription, got none")
        async with sub.lock:
            if sub.awaiting != version:
                raise MediaError(
                    MediaErrorCode.NO_SUCH_TRACK,
                    f"expected an answer to offer {sub.awaiting}, got one to offer {version}"
                    if sub.awaiting is not None
                    else f"expected no answer (no offer is pending), got one to offer {version}",
                )
            description, _ = self._parse(answer_sdp, "answer")
            try:
                await sub.pc.setRemoteDescription(description)
            except Exception as exc:
                raise MediaError(
                    MediaErrorCode.BAD_SDP, f"expected an answer matching the offer: {exc}"
                ) from exc
            sub.awaiting = None
            again = sub.dirty
            sub.dirty = False
        if again:
            self._spawn(self._sync(r, sub))

    async def add_candidate(
        self, room: int, peer: str, target: str, candidate: str, sdp_mid: str | None
    ) -> None:
        r = self.rooms.get(room)
        pc: RTCPeerConnection | None = None
        if r is not None:
            if target == SUBSCRIBE:
                sub = r.subscribers.get(peer)
                pc = sub.pc if sub is not None else None
            else:
                pub = r.publishers.get((peer, target))
                pc = pub.pc if pub is not None else None
        if pc is None:
            raise MediaError(
                MediaErrorCode.NO_SUCH_TRACK, f"expected a {target} connection, got none"
            )
        if not candidate:
            return  # end of candidates: aioice needs no word of it
        try:
            parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
        except Exception as exc:
            raise MediaError(
                MediaErrorCode.BAD_SDP,
                "expected an ICE candidate line, got one that does not parse",
            ) from exc
        parsed.sdpMid = sdp_mid
        await pc.addIceCandidate(parsed)

    async def unsubscribe(self, room: int, peer: str) -> None:
        r = self.rooms.get(room)
        if r is None:
            return
        sub = r.subscribers.pop(peer, None)
        if sub is not None:
            await self._close_subscriber(sub)
        self._maybe_forget(r)

    async def _close_subscriber(self, sub: _Subscriber) -> None:
        sub.closed = True
        for leg in sub.legs.values():
            leg.track.stop()
        sub.legs.clear()
        if sub.pc is not None:
            pc, sub.pc = sub.pc, None
            await pc.close()

    async def leave(self, room: int, peer: str) -> None:
        await self.unpublish(room, peer)
        await self.unsubscribe(room, peer)

    async def close_room(self, room: int) -> None:
        r = self.rooms.pop(room, None)
        if r is None:
            return
        if r.levels_task is not None:
            r.levels_task.cancel()
        for pub in list(r.publishers.values()):
            pub.closed = True
            for fanout in pub.fanouts.values():
                fanout.close()
            await pub.pc.close()
        r.publishers.clear()
        for sub in list(r.subscribers.values()):
            await self._close_subscriber(sub)
        r.subscribers.clear()

    def _maybe_forget(self, r: _Room) -> None:
        if not r.publishers and not r.subscribers and not r.taps and self.rooms.get(r.id) is r:
            if r.levels_task is not None:
                r.levels_task.cancel()
            del self.rooms[r.id]

    # ---- active speaker -------------------------------------------------------------------------

    def _ensure_levels(self, r: _Room) -> None:
        if r.levels_task is None or r.levels_task.done():
            r.levels_task = asyncio.get_running_loop().create_task(self._levels_loop(r))

    async def _levels_loop(self, r: _Room) -> None:
        while r.publishers or r.active is not None:
            await asyncio.sleep(LEVELS_INTERVAL)
            levels: dict[int, float] = {}
            for pub in r.publishers.values():
                if "audio" in pub.fanouts:
                    levels[pub.user_id] = max(levels.get(pub.user_id, 0.0), pub.meter.take())
            active = pick_active(levels, r.active)
            rounded = {uid: round(level, 1) for uid, level in levels.items()}
            if active != r.active or rounded != r.last_levels:
                r.active = active
                r.last_levels = rounded
                self.listener.active_speaker(r.id, active, rounded)

    # ---- observation ----------------------------------------------------------------------------

    def viewer_count(self) -> int:
        count = 0
        for r in self.rooms.values():
            publishing = {p.peer for p in r.publishers.values()}
            count += sum(1 for peer in r.subscribers if peer not in publishing)
        return count

    def stats(self, room: int | None = None) -> list[RoomStats]:
        out = []
        for r in self.rooms.values():
            if room is not None and r.id != room:
                continue
            peers = [
                PeerStats(
                    peer=p.peer,
                    user_id=p.user_id,
                    role="publisher",
                    source=p.source,
                    state=p.pc.connectionState,
                    packets_in=sum(f.received for f in p.fanouts.values()),
                )
                for p in r.publishers.values()
            ]
            for s in r.subscribers.values():
                peers.append(
                    PeerStats(
                        peer=s.peer,
                        user_id=s.user_id,
                        role="subscriber",
                        source=None,
                        state=s.pc.connectionState if s.pc is not None else "new",
                        packets_out=sum(leg.track.forwarded for leg in s.legs.values()),
                        dropped=sum(leg.track.dropped for leg in s.legs.values()),
                    )
                )
            out.append(RoomStats(r.id, len(r.publishers), len(r.subscribers), peers))
        return out

    def request_keyframe(self, room: int, user_id: int, source: str = "camera") -> None:
        r = self.rooms.get(room)
        if r is None:
            return
        for pub in r.publishers.values():
            fanout = pub.fanouts.get("video")
            if pub.user_id == user_id and pub.source == source and fanout is not None:
                fanout.request_keyframe()  # paced like subscribers' PLIs

    def add_tap(
        self, room: int, user_id: int, callback: TapCallback, source: str = "camera"
    ) -> Callable[[], None]:
        r = self._room(room)
        key = (user_id, source)
        r.taps.setdefault(key, []).append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError, KeyError):
                r.taps[key].remove(callback)
                if not r.taps[key]:
                    del r.taps[key]
            self._maybe_forget(r)

        return remove
