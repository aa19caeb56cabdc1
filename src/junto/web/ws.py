"""WebSocket endpoints: `/ws/conversations/{slug}` (room and presence) and `/ws/lobby`, the
realtime hub's doors on the web (junto.realtime holds what they connect to).

A room connection goes: handshake checks (origin 4400, conversation 4404, visibility 4403) ->
`hello` -> register with the room -> `welcome` -> replay or snapshot -> live. Registering
before the backlog is read means every event committed afterwards reaches the connection's
queue; live events the backlog already covered (id <= its last id) are dropped by the writer,
so nothing is lost or repeated in the race (docs/protocol.md, Resuming).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from junto import accounts, conversations, strict_json
from junto.enums import ConversationState, Role
from junto.events import log as eventlog
from junto.node import Node
from junto.ratelimit import AddressConnections
from junto.realtime.connection import Connection, Message, control, error, message
from junto.realtime.hub import Hub
from junto.realtime.presence import Present
from junto.realtime.room import Room
from junto.realtime.signaling import MediaSession
from junto.room import actions
from junto.room import protocol as p
from junto.storage.tables import Conversation, User
from junto.web import security
from junto.web.deps import get_node

log = logging.getLogger("junto.realtime")

router = APIRouter()

CLOSE_BAD_HANDSHAKE = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN_LATER = 1013  # too many sockets from one address (junto.ratelimit)
# A client that connects but never says hello is dropped after this long.
HELLO_TIMEOUT_SECONDS = 30.0


def _hub(node: Node) -> Hub:
    if node.hub is None:
        raise RuntimeError("expected a started hub, got none")
    return node.hub


# ---- reading frames ------------------------------------------------------------------------------


class _Disconnected(Exception):
    pass


async def _read(ws: WebSocket, max_bytes: int) -> tuple[Any, Message | None]:
    """The next client frame, decoded: (frame, None), or (None, error to send back)."""
    msg = await ws.receive()
    if msg["type"] == "websocket.disconnect":
        raise _Disconnected
    text = msg.get("text")
    if text is None:
        return None, error("bad_message", "expected a text frame, got a binary one")
    # Characters never outnumber UTF-8 bytes, so only long texts need encoding to be measured.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        size = len(text.encode())
        return None, error(
            "too_large", f"expected a frame of at most {max_bytes} bytes, got {size}"
        )
    try:
        raw = strict_json.loads(text)  # the same rules as HTTP bodies (junto.strict_json)
    except strict_json.BadJson as exc:
        return None, error("bad_message", f"invalid frame: {exc}")
    if not isinstance(raw, dict):
        return None, error("bad_message", "expected a JSON object")
    return raw, None


# ---- the room endpoint ---------------------------------------------------------------------------


@dataclass
class _Admission:
    conv: Conversation
    user: User | None
    you: dict[str, Any]
    person: Present | None
    summary: dict[str, Any]


@router.websocket("/ws/conversations/{slug}")
async def conversation_socket(websocket: WebSocket, slug: str) -> None:
    # Accept first: browsers cannot see why a refused handshake failed, but they do see the
    # close code and reason of an accepted one.
    await websocket.accept()
    async with _address_place(websocket) as admitted:
        if not admitted:
            return
        node = get_node(websocket)
        admission = await _admit(websocket, node, slug)
        if admission is not None:
            await RoomSession(node, websocket, admission).run()


@asynccontextmanager
async def _address_place(ws: WebSocket) -> AsyncIterator[bool]:
    """Hold one of the client address's places (True), or close the socket with 1013 (False).

    Checked before anything is read from the database, so refused sockets cost nothing and are
    never counted as watchers.
    """
    places: AddressConnections = ws.app.state.ws_addresses
    address = security.client_address(ws)
    refusal = places.admit(address)
    if refusal is not None:
        await ws.close(CLOSE_TRY_AGAIN_LATER, refusal)
        yield False
        return
    try:
        yield True
    finally:
        places.release(address)


async def _admit(ws: WebSocket, node: Node, slug: str) -> _Admission | None:
    if not security.origin_allowed(ws):
        await ws.close(CLOSE_BAD_HANDSHAKE, "origin not allowed")
        return None
    async with node.db() as db:
        conv = await conversations.get_by_slug(db, slug)
        if conv is None:
            await ws.close(CLOSE_NOT_FOUND, "no such conversation")
            return None
        user = await security.user_for_connection(ws, db)
        if not await conversations.can_view(db, conv, user):
            await ws.close(CLOSE_FORBIDDEN, "this conversation is invite-only")
            return None
        you = await actions.viewer_info(db, conv, user)
        person = None
        if user is not None:
            row = await conversations.participant_of(db, conv, user.id)
            person = Present(
                **accounts.person(user),
                role=you["role"],
                hand_raised=row is not None and row.hand_raised_at is not None,
            )
        summary = conversations.summary(conv, await conversations.tags_of(db, conv))
    return _Admission(conv, user, you, person, summary)


class RoomSession:
    """One client in one conversation, from `hello` to goodbye."""

    def __init__(self, node: Node, ws: WebSocket, admission: _Admission) -> None:
        self.node = node
        self.ws = ws
        self.a = admission
        self.hub = _hub(node)
        limits = node.settings.limits
        self.max_bytes = limits.ws_message_max_bytes
        self.conn = Connection(ws, limits.send_queue_max)
        self.dispatching = False
        self.task = asyncio.current_task()
        self.conn.on_close(self._closed)
        self.media: MediaSession | None = None
        if node.stage is not None:
            user = admission.user
            self.media = node.stage.open_session(
                self.conn, admission.conv.id, user, user.display_name if user else None
            )

    def _closed(self, conn: Connection) -> None:
        # Closed by the hub (too slow, shutting down): stop reading too, unless an action is
        # being carried out (let it finish: it commits and delivers), then the loop stops.
        if (
            conn.close_code is not None
            and not self.dispatching
            and self.task is not None
            and asyncio.current_task() is not self.task
        ):
            self.task.cancel()

    async def run(self) -> None:
        try:
            hello = await self._hello()
            if hello is None:
                return
            room = await self.hub.join(self.a.conv.id, self.conn, self.a.person)
            # Before any await, so that no live event reaches the socket unfiltered.
            room.set_reader(self.conn, self.reader)
            await self._catch_up(room, hello.resume_from)
            room.send_presence(self.conn)
            if self.node.stage is not None:
                self.conn.push((0, self.node.stage.publishers_message(self.a.conv.id)))
                self.conn.push((0, self.node.stage.viewers_message()))
            self.conn.start_writer()
            await self._receive_loop()
        except (_Disconnected, WebSocketDisconnect):
            pass
        except asyncio.CancelledError:
            if self.conn.close_code is None:
                raise
            # We cancelled ourselves in _closed(): the connection is closing already.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        except Exception:
            log.exception("room connection to %s failed", self.a.conv.slug)
            self.conn.close(CLOSE_INTERNAL, "internal error")
        finally:
            self.conn.detach()
            if self.media is not None and self.node.stage is not None:
                # In the background: the socket is gone, and closing peer connections must
                # not hold up this task's cancellation.
                self.node.stage.spawn(self.media.close())
        await self.conn.wait_closed()

    async def _hello(self) -> p.Hello | None:
        """Wait for a valid `hello`, answering anything else with an error."""
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_SECONDS):
                while True:
                    raw, problem = await _read(self.ws, self.max_bytes)
                    if problem is None:
                        problem = self._check_hello(raw)
                        if problem is None:
                            return p.parse_client_frame(raw)  # type: ignore[return-value]
                    await self.ws.send(problem)
        except TimeoutError:
            await self.ws.close(CLOSE_BAD_HANDSHAKE, "expected hello")
            return None

    @staticmethod
    def _check_hello(raw: dict[str, Any]) -> Message | None:
        ref = p.ref_of(raw)
        if raw.get("type") != "hello":
            return error("hello_required", f"expected hello first, got {raw.get('type')!r}", ref)
        try:
            hello = p.parse_client_frame(raw)
        except p.ActionError as exc:
            return error(exc.code, exc.message, ref)
        assert isinstance(hello, p.Hello)
        if hello.protocol != p.PROTOCOL_VERSION:
            return error(
                "unsupported_protocol",
                f"expected protocol {p.PROTOCOL_VERSION}, got {hello.protocol}",
                ref,
            )
        return None

    @property
    def reader(self) -> conversations.Reader:
        user = self.a.user
        if user is None:
            return conversations.Reader()
        return conversations.Reader(user.id, Role(self.a.you["role"]), user.is_admin)

    async def _catch_up(self, room: Room, resume_from: int | None) -> None:
        """Send welcome, then the missed events or a snapshot (straight to the socket)."""
        max_events = self.node.settings.limits.resume_max_events
        events: list[eventlog.StoredEvent] | None = None
        bad_resume: Message | None = None
        if resume_from is not None:
            async with self.node.db() as db:
                latest, state = await eventlog.position(db, self.a.conv.id)
                if resume_from > latest:
                    bad_resume = error(
                        "bad_resume",
                        f"expected resume_from of at most {latest}, got {resume_from}",
                    )
                else:
                    # The stored events are read under the rule as it stands now: captions of
                    # a conversation under review replay to its reviewers only.
                    withhold = conversations.withheld_events(
                        state or ConversationState.ENDED, self.reader.reviews
                    )
                    found = await eventlog.events_after(
                        db, self.a.conv.id, resume_from, max_events + 1, withhold
                    )
                    if len(found) <= max_events:
                        events = found
        await self.ws.send(self._welcome("snapshot" if events is None else "replay"))
        if events is None:
            if bad_resume is not None:
                await self.ws.send(bad_resume)
            last_id, snapshot = await self._snapshot(room)
            await self.ws.send(snapshot)
            self.conn.skip_upto = last_id
            return
        for event in events:
            await self.ws.send_text(event.frame().decode())
        assert resume_from is not None
        self.conn.skip_upto = events[-1].id if events else resume_from

    async def _snapshot(self, room: Room) -> tuple[int, Message]:
        # Anonymous watchers all see the same snapshot (members also see their own reactions).
        anonymous = self.a.user is None
        cached = room.cached_snapshot() if anonymous else None
        if cached is not None:
            return cached
        snap = await actions.snapshot(self.node, self.a.conv, self.a.user)
        last_id = int(snap["last_id"])
        msg = message(orjson.dumps({"type": "snapshot", **snap}).decode())
        if anonymous:
            room.cache_snapshot(last_id, msg)
        return last_id, msg

    def _welcome(self, resume: str) -> Message:
        media = None
        if self.node.stage is not None and self.media is not None:
            media = self.node.stage.welcome_media(self.media.peer)
        return control(
            "welcome",
            protocol=p.PROTOCOL_VERSION,
            conversation=self.a.summary,
            you=self.a.you,
            heartbeat_seconds=self.node.settings.heartbeat_seconds,
            resume=resume,
            media=media,
        )

    async def _receive_loop(self) -> None:
        conn = self.conn
        while not conn.closed:
            raw, problem = await _read(self.ws, self.max_bytes)
            if problem is not None:
                conn.send(problem)
                continue
            kind = raw.get("type")
            if kind == "ping":
                conn.send(_PONG)
            elif kind in p.MEDIA_SIGNAL_TYPES:
                await self._media(raw)
            elif kind == "hello":
                conn.send(error("bad_message", "expected a room action, got a second hello",
                                p.ref_of(raw)))  # fmt: skip
            else:
                await self._dispatch(raw)

    async def _media(self, raw: dict[str, Any]) -> None:
        if self.media is None:
            self.conn.send(
                error("media_unavailable", "live media is turned off on this node", p.ref_of(raw))
            )
            return
        self.dispatching = True
        try:
            still_signed_in, _ = await self._actor(p.ref_of(raw))
            if still_signed_in:
                await self.media.handle(raw)
        finally:
            self.dispatching = False

    async def _current_user(self) -> User | None:
        """The connection's person, re-read from the session cookie it connected with.

        A socket outlives its handshake by hours: signing out, a password reset (which revokes
        every session) or an expired session must stop it acting as that person, or a stolen
        cookie would keep working over an open socket. It costs one primary-key lookup per
        action, small beside the action's own locking transaction. Anonymous viewers have
        nothing to re-check.
        """
        if self.a.user is None:
            return None
        user = await security.user_for_connection(self.ws, self.node.db)
        return user if user is not None and user.id == self.a.user.id else None

    async def _actor(self, ref: str | None) -> tuple[bool, User | None]:
        """(still signed in, the person acting): a socket whose session has ended is told so
        and closed with 4403, and then the frame must not be carried out."""
        actor = await self._current_user()
        if self.a.user is not None and actor is None:
            self.conn.send(error("not_signed_in", "your session has ended: sign in again", ref))
            self.conn.close(CLOSE_FORBIDDEN, "session ended")
            return False, None
        return True, actor

    async def _dispatch(self, raw: dict[str, Any]) -> None:
        ref = p.ref_of(raw)
        self.dispatching = True
        try:
            still_signed_in, actor = await self._actor(ref)
            if not still_signed_in:
                return
            event = await actions.dispatch(self.node, self.a.conv, actor, raw)
        except p.ActionError as exc:
            self.conn.send(message(orjson.dumps(p.error_frame_for(exc, ref)).decode()))
        except Exception:
            log.exception("action %r in %s failed", raw.get("type"), self.a.conv.slug)
            self.conn.send(error("internal", "the server failed to carry this out", ref))
        else:
            ack = p.ack_frame(ref, event.id if event is not None else None)
            self.conn.send(message(orjson.dumps(ack).decode()))
        finally:
            self.dispatching = False


_PONG = control("pong")


# ---- the lobby endpoint --------------------------------------------------------------------------


@router.websocket("/ws/lobby")
async def lobby_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    async with _address_place(websocket) as admitted:
        if admitted:
            await _lobby(websocket)


async def _lobby(websocket: WebSocket) -> None:
    if not security.origin_allowed(websocket):
        await websocket.close(CLOSE_BAD_HANDSHAKE, "origin not allowed")
        return
    node = get_node(websocket)
    lobby = _hub(node).lobby
    limits = node.settings.limits
    conn = Connection(websocket, limits.send_queue_max)
    task = asyncio.current_task()

    def closed(c: Connection) -> None:
        # Closed by the hub (too slow, shutting down): stop reading as well.
        if c.close_code is not None and task is not None and asyncio.current_task() is not task:
            task.cancel()

    conn.on_close(closed)
    try:
        lobby.add_client(conn)
        snapshot = await lobby.snapshot_message()
        await websocket.send_text(orjson.dumps(snapshot).decode())
        conn.start_writer()
        while not conn.closed:
            raw, problem = await _read(websocket, limits.ws_message_max_bytes)
            if problem is None:
                problem = (
                    _PONG
                    if raw.get("type") == "ping"
                    else error(
                        "bad_message", f"expected ping, got {raw.get('type')!r}", p.ref_of(raw)
                    )
                )
            conn.send(problem)
    except (_Disconnected, WebSocketDisconnect):
        pass
    except asyncio.CancelledError:
        if conn.close_code is None:
            raise
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    finally:
        conn.detach()
    await conn.wait_closed()
