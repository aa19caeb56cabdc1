"""Media signaling: the `media.*` frames of docs/protocol.md, between sockets and the SFU.

`StageMedia` is node-wide. It is the media backend's listener (renegotiated offers, publication
changes, the active speaker, failed connections), it routes what the backend says to the right
socket or room, and it enforces the stage's rules on media: people sent back to the audience,
blocked, or in a conversation that ended stop publishing at once, whatever their browser does.

`MediaSession` is one socket's media: its publications and its subscription. It checks each
request (role, consent, state, seats), calls the backend, and answers with `ack` or `error`. It
ends with its socket, so a closed page leaves the stage for everyone within a second.

The embedded SFU lives in this process, so the room broadcasts here go to this process's
sockets; a deployment with several web processes routes a conversation's media to one of them
(or uses a separate SFU), see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from junto.enums import ConversationState, Role
from junto.media import ice_servers
from junto.media.base import MediaBackend, MediaError, Publication, SubscriptionOffer
from junto.realtime.connection import Connection, Message, control, error, message
from junto.realtime.presence import COALESCE_SECONDS, Throttle
from junto.room import protocol as p
from junto.storage.tables import Conversation, MediaConsent, Participant, User

if TYPE_CHECKING:
    from junto.node import Node

log = logging.getLogger("junto.media")

PUBLISHING_STATES = (ConversationState.SCHEDULED, ConversationState.LIVE)
STAGE_ROLES = (Role.HOST, Role.COHOST, Role.SPEAKER)
# Room events that change who may publish (see StageMedia.on_room_event).
WATCHED_EVENTS = frozenset({"stage.role", "participant.blocked", "conversation.state"})


@dataclass
class _SpeakerState:
    audio_muted: bool = False
    video_off: bool = False
    quality: str | None = None


class StageMedia:
    """Node-wide media coordinator (see module docstring)."""

    def __init__(self, node: Node, backend: MediaBackend) -> None:
        self.node = node
        self.backend = backend
        self.sessions: dict[str, MediaSession] = {}
        # The same sessions by conversation, so room work never walks the whole node.
        self.by_room: dict[int, dict[str, MediaSession]] = {}
        self.states: dict[tuple[int, int], _SpeakerState] = {}
        # `media.publishers` per room, built on change: every joining socket gets a copy.
        self._publishers: dict[int, Message] = {}
        # Seat counts go to every room; a burst of viewers joining becomes one broadcast.
        self._viewers_throttle = Throttle(COALESCE_SECONDS, self._broadcast_viewers)
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        # Told about every change of a room's publications (junto.recording.on_air).
        self.publication_listeners: list[Callable[[int, list[Publication]], None]] = []
        backend.set_listener(self)

    # ---- sessions --------------------------------------------------------------------------------

    def open_session(
        self, conn: Connection, conversation_id: int, user: User | None, name: str | None
    ) -> MediaSession:
        peer = f"{self.node.settings.node_id}.{next(self._ids)}"
        session = MediaSession(self, conn, conversation_id, user, name, peer)
        self.sessions[peer] = session
        self.by_room.setdefault(conversation_id, {})[peer] = session
        return session

    def forget_session(self, session: MediaSession) -> None:
        self.sessions.pop(session.peer, None)
        room = self.by_room.get(session.conversation_id)
        if room is not None:
            room.pop(session.peer, None)
            if not room:
                del self.by_room[session.conversation_id]
                self._publishers.pop(session.conversation_id, None)

    def welcome_media(self, who: str) -> dict[str, Any]:
        """`welcome.media`: how this socket reaches the media backend."""
        settings = self.node.settings
        return {
            "backend": self.backend.name,
            "ice_servers": ice_servers.for_browser(settings, who),
            "max_viewers": settings.media_max_viewers,
            "publishing_states": [s.value for s in PUBLISHING_STATES],
        }

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        self._viewers_throttle.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- room broadcasts -------------------------------------------------------------------------

    def broadcast(self, conversation_id: int, msg: Message) -> None:
        hub = self.node.hub
        room = hub.rooms.get(conversation_id) if hub is not None else None
        if room is not None:
            room.broadcast(msg)

    def publishers_message(self, conversation_id: int) -> Message:
        msg = self._publishers.get(conversation_id)
        if msg is None:
            msg = self._build_publishers(conversation_id)
            self._publishers[conversation_id] = msg
        return msg

    def publishers_changed(self, conversation_id: int) -> None:
        """Rebuild the room's `media.publishers` and send it to everyone in the room."""
        self._publishers.pop(conversation_id, None)
        if not self.by_room.get(conversation_id) and not self.backend.publications(conversation_id):
            return  # nobody here to tell, and nothing to cache
        self.broadcast(conversation_id, self.publishers_message(conversation_id))

    def _build_publishers(self, conversation_id: int) -> Message:
        by_user: dict[int, dict[str, Any]] = {}
        names = {
            s.user.id: s.name
            for s in self.by_room.get(conversation_id, {}).values()
            if s.user is not None
        }
        for pub in self.backend.publications(conversation_id):
            entry = by_user.get(pub.user_id)
            if entry is None:
                state = self.states.get((conversation_id, pub.user_id), _SpeakerState())
                entry = by_user[pub.user_id] = {
                    "user_id": pub.user_id,
                    "name": names.get(pub.user_id),
                    "sources": [],
                    "audio": False,
                    "video": False,
                    "audio_muted": state.audio_muted,
                    "video_off": state.video_off,
                    "quality": state.quality,
                }
            entry["sources"].append(pub.source)
            entry["audio"] = entry["audio"] or pub.has_audio
            entry["video"] = entry["video"] or pub.has_video
        return control("media.publishers", publishers=list(by_user.values()))

    def viewers_message(self) -> Message:
        return control(
            "media.viewers",
            viewers=self.backend.viewer_count(),
            max_viewers=self.node.settings.media_max_viewers,
        )

    def viewers_changed(self) -> None:
        self._viewers_throttle.mark()

    def _broadcast_viewers(self) -> None:
        msg = self.viewers_message()
        hub = self.node.hub
        if hub is not None:
            for room in hub.rooms.values():
                room.broadcast(msg)

    # ---- the backend's listener ------------------------------------------------------------------

    def subscription_offer(self, room: int, peer: str, offer: SubscriptionOffer) -> None:
        session = self.sessions.get(peer)
        if session is not None:
            session.send_offer(offer)

    def publications_changed(self, room: int, publications: list[Publication]) -> None:
        self.publishers_changed(room)
        for listener in self.publication_listeners:
            try:
                listener(room, publications)
            except Exception:
                log.exception("a publication listener failed")

    def active_speaker(self, room: int, user_id: int | None, levels: dict[int, float]) -> None:
        self.broadcast(
            room,
            control(
                "media.active",
                user_id=user_id,
                levels={str(uid): level for uid, level in levels.items()},
            ),
        )

    def peer_failed(self, room: int, peer: str, target: str, message_: str) -> None:
        session = self.sessions.get(peer)
        if session is None:
            return
        session.conn.send(control("error", code="ice_failed", message=message_, target=target))
        if target == "subscribe":
            session.subscribed = False
            self.viewers_changed()
        else:
            session.publishing.discard(target)
            session.conn.send(
                control("media.ended", source=target, code="ice_failed", reason=message_)
            )

    # ---- stage rules -----------------------------------------------------------------------------

    def on_room_event(self, conversation_id: int, event_type: str, frame: bytes) -> None:
        """Stop publications the stage no longer allows (called for every WATCHED_EVENTS event)."""
        if event_type not in WATCHED_EVENTS:
            return
        data = orjson.loads(frame).get("data") or {}
        if event_type == "stage.role" and data.get("role") == Role.AUDIENCE.value:
            user_id = (data.get("user") or {}).get("id")
            self._end_for(conversation_id, user_id, "stage_left", "you are back in the audience")
        elif event_type == "participant.blocked" and data.get("blocked"):
            self._end_for(conversation_id, data.get("user_id"), "blocked", "a host blocked you")
        elif event_type == "conversation.state" and data.get("state") not in {
            s.value for s in PUBLISHING_STATES
        }:
            self._end_for(conversation_id, None, "conversation_ended", "the conversation has ended")

    def _end_for(self, conversation_id: int, user_id: int | None, code: str, reason: str) -> None:
        for session in list(self.by_room.get(conversation_id, {}).values()):
            if not session.publishing:
                continue
            if user_id is not None and (session.user is None or session.user.id != user_id):
                continue
            self.spawn(session.end_publishing(code, reason))


class MediaSession:
    """One socket's media (see module docstring)."""

    def __init__(
        self,
        stage: StageMedia,
        conn: Connection,
        conversation_id: int,
        user: User | None,
        name: str | None,
        peer: str,
    ) -> None:
        self.stage = stage
        self.backend = stage.backend
        self.conn = conn
        self.conversation_id = conversation_id
        self.user = user
        self.name = name
        self.peer = peer
        self.publishing: set[str] = set()
        self.subscribed = False
        self.closed = False

    # ---- frames ----------------------------------------------------------------------------------

    async def handle(self, raw: dict[str, Any]) -> None:
        ref = p.ref_of(raw)
        try:
            frame = p.parse_client_frame(raw)
            await self._carry_out(frame, ref)
        except p.ActionError as exc:
            self.conn.send(message(orjson.dumps(p.error_frame_for(exc, ref)).decode()))
        except MediaError as exc:
            self.conn.send(error(exc.code, exc.message, ref))
        except Exception:
            log.exception("media frame %r failed", raw.get("type"))
            self.conn.send(error("internal", "the media server failed to carry this out", ref))
        else:
            self.conn.send(message(orjson.dumps(p.ack_frame(ref, None)).decode()))

    async def _carry_out(self, frame: Any, ref: str | None) -> None:
        room = self.conversation_id
        if isinstance(frame, p.MediaPublish):
            user = await self._check_may_publish()
            answer = await self.backend.publish(room, self.peer, user.id, frame.source, frame.sdp)
            self.publishing.add(frame.source)
            self.conn.send(control("media.answer", source=frame.source, sdp=answer, ref=ref))
            self.stage.viewers_changed()
        elif isinstance(frame, p.MediaUnpublish):
            await self.backend.unpublish(room, self.peer, frame.source)
            self.publishing.discard(frame.source)
            self.stage.viewers_changed()
        elif isinstance(frame, p.MediaSubscribe):
            await self._check_seat()
            only = frozenset(frame.user_ids) if frame.user_ids else None
            user_id = self.user.id if self.user is not None else None
            offer = await self.backend.subscribe(room, self.peer, user_id, only)
            self.subscribed = True
            if offer is not None:
                self.send_offer(offer)
            self.stage.viewers_changed()
        elif isinstance(frame, p.MediaAnswer):
            await self.backend.answer(room, self.peer, frame.version, frame.sdp)
        elif isinstance(frame, p.MediaUnsubscribe):
            await self.backend.unsubscribe(room, self.peer)
            self.subscribed = False
            self.stage.viewers_changed()
        elif isinstance(frame, p.MediaCandidate):
            await self.backend.add_candidate(
                room, self.peer, frame.target, frame.candidate, frame.sdp_mid
            )
        elif isinstance(frame, p.MediaState):
            if not self.publishing or self.user is None:
                raise MediaError("not_on_stage", "expected to be publishing, got no publication")
            self.stage.states[(room, self.user.id)] = _SpeakerState(
                frame.audio_muted, frame.video_off, frame.quality
            )
            self.stage.publishers_changed(room)
        else:
            raise p.ActionError("bad_message", f"expected a media frame, got {frame.type}")

    def send_offer(self, offer: SubscriptionOffer) -> None:
        self.conn.send(
            control(
                "media.offer",
                version=offer.version,
                sdp=offer.sdp,
                tracks=[t.as_dict() for t in offer.tracks],
            )
        )

    # ---- rules -----------------------------------------------------------------------------------

    async def _check_may_publish(self) -> User:
        user = self.user
        if user is None:
            raise p.ActionError("not_signed_in", "sign in or choose a guest name to go on stage")
        async with self.stage.node.db() as db:
            conv = await db.get(Conversation, self.conversation_id)
            row = await db.get(Participant, (self.conversation_id, user.id))
            consent = await db.get(MediaConsent, (self.conversation_id, user.id))
        if conv is None:
            raise p.ActionError("not_found", "this conversation no longer exists")
        role = row.role if row is not None else Role.AUDIENCE
        if row is not None and row.blocked:
            raise p.ActionError("blocked", "you are blocked in this conversation")
        if role not in STAGE_ROLES:
            raise MediaError(
                "not_on_stage",
                f"expected a host, co-host or speaker to publish, got {role.value}: raise your "
                "hand and a host can bring you on stage",
            )
        if conv.state not in PUBLISHING_STATES:
            raise p.ActionError(
                "invalid_state",
                f"expected a scheduled or live conversation to publish, got {conv.state.value}",
            )
        if consent is None:
            raise MediaError(
                "consent_required",
                "expected consent to be recorded, transcribed and published (media.consent) "
                "before publishing, got none",
            )
        return user

    async def _check_seat(self) -> None:
        """People on stage always get a seat; the audience shares the node's viewer cap."""
        if self.subscribed or self.publishing:
            return
        if self.user is not None:
            async with self.stage.node.db() as db:
                row = await db.get(Participant, (self.conversation_id, self.user.id))
            if row is not None and row.role in STAGE_ROLES:
                return
        limit = self.stage.node.settings.media_max_viewers
        if self.backend.viewer_count() >= limit:
            taken = "The 1 live seat is" if limit == 1 else f"All {limit} live seats are"
            raise MediaError(
                "seats_full",
                f"{taken} taken. You can still follow the chat and the backchannel.",
            )

    async def end_publishing(self, code: str, reason: str) -> None:
        sources = sorted(self.publishing)
        self.publishing.clear()
        await self.backend.unpublish(self.conversation_id, self.peer)
        for source in sources:
            self.conn.send(control("media.ended", source=source, code=code, reason=reason))
        self.stage.viewers_changed()

    async def close(self) -> None:
        """The socket closed: everything of this session ends."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.backend.leave(self.conversation_id, self.peer)
        finally:
            self.stage.forget_session(self)
            if self.user is not None and not any(
                s.user is not None and s.user.id == self.user.id and s.publishing
                for s in self.stage.by_room.get(self.conversation_id, {}).values()
            ):
                self.stage.states.pop((self.conversation_id, self.user.id), None)
            if self.subscribed or self.publishing:
                self.stage.viewers_changed()
