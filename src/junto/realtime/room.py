"""One conversation's live side in this process: ordered fan-out of the room stream and presence.

A `Room` exists while this process has at least one connection to the conversation (and lingers
briefly after the last one leaves, so a reconnecting client finds it warm). It subscribes to
pub/sub channel `room:{id}` and hands every event to every local connection in id order without
gaps. Events can arrive out of order: process A commits 5, process B commits 6, and B's publish
arrives first. Later ids wait in `_pending`; a gap that is not filled within `GAP_WAIT_SECONDS`
is read from the database (which is complete up to any id we have seen, see events/log.py).
That read, the initial `last_seq` and a periodic tail check are the only database access here:
the per-event path touches no database and serialises nothing per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from junto import conversations
from junto.conversations import Reader
from junto.enums import ConversationState, Role, Visibility
from junto.events import log as eventlog
from junto.pubsub import Subscription
from junto.pubsub.base import SubscriptionOverflow
from junto.realtime.connection import Connection, Item, Message, control, message
from junto.realtime.presence import (
    COALESCE_SECONDS,
    REPUBLISH_SECONDS,
    LatestPublisher,
    LocalPresence,
    PresenceView,
    Present,
    Throttle,
    resubscribe,
)
from junto.storage.tables import Conversation, Participant, User

if TYPE_CHECKING:
    from junto.realtime.hub import Hub

log = logging.getLogger("junto.realtime")

# The room socket's "not allowed in this conversation" close code (docs/protocol.md).
CLOSE_FORBIDDEN = 4403
GAP_WAIT_SECONDS = 0.5
# How often a room compares its position with the database (see _tail_check).
TAIL_CHECK_SECONDS = 5.0
FILL_BATCH = 500
# How long an anonymous viewer's snapshot may be reused (see Room.cached_snapshot).
SNAPSHOT_TTL = 2.0
# Hand the event loop to the connection writers after this many events in a row.
YIELD_EVERY = 64
# Events that change someone's presence entry (role, raised hand).
PRESENCE_EVENTS = frozenset({"stage.role", "stage.hand", "participant.blocked"})


def room_channel(conversation_id: int) -> str:
    return f"room:{conversation_id}"


def presence_channel(conversation_id: int) -> str:
    return f"presence:{conversation_id}"


def wire(event: eventlog.StoredEvent) -> bytes:
    """The pub/sub form of an event: a one-line header, then the client frame verbatim."""
    header = f"{event.conversation_id} {event.id} {event.type}\n".encode()
    return header + event.frame()


def parse_wire(data: bytes) -> tuple[int, str, bytes]:
    """(id, type, frame) of a `wire()` message."""
    header, _, frame = data.partition(b"\n")
    _conversation, event_id, event_type = header.split(b" ", 2)
    return int(event_id), event_type.decode(), frame


class Room:
    def __init__(self, hub: Hub, conversation_id: int) -> None:
        self.hub = hub
        self.id = conversation_id
        node = hub.node
        self.pubsub = node.pubsub
        self.node_id = node.settings.node_id
        self.heartbeat_seconds = node.settings.heartbeat_seconds
        self._conns: dict[Connection, Present | None] = {}
        self._fanout: tuple[Connection, ...] = ()
        self.next_id = 0  # the id the room expects next; set by open()
        # The conversation's state as of the last emitted event (set by open(), then followed
        # through `conversation.state` events): what each reader may receive depends on it.
        self.state: ConversationState | None = None
        # Who reads through each connection (see set_reader); without one, a connection is
        # treated as an anonymous watcher, the safe default.
        self._readers: dict[Connection, Reader] = {}
        self._reviewing: frozenset[Connection] = frozenset()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending: dict[int, tuple[str, bytes]] = {}
        self._gap_timer: asyncio.TimerHandle | None = None
        self._filling = False
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = False
        # Presence
        self.local = LocalPresence()
        self.view = PresenceView(self.node_id, self.local)
        self._presence_publisher = LatestPublisher(self.pubsub, presence_channel(self.id))
        self._presence_throttle = Throttle(COALESCE_SECONDS, self._flush_presence)
        self._local_dirty = False
        self._presence_seq = 0
        self._presence_msg: Message | None = None
        self._presence_data: dict[str, Any] | None = None
        self._snapshot: tuple[int, Message, float] | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Subscribe, then learn where the stream stands; events published meanwhile are kept."""
        try:
            room_sub = await self.pubsub.subscribe(room_channel(self.id))
            self._subs.append(room_sub)
            presence_sub = await self.pubsub.subscribe(presence_channel(self.id))
            self._subs.append(presence_sub)
            async with self.hub.node.db() as db:
                last, self.state = await eventlog.position(db, self.id)
            self.next_id = max(last, 0) + 1
        except BaseException as exc:
            await self._close_subscriptions()
            if not self.ready.done():
                self.ready.set_exception(exc)
                self.ready.exception()  # mark retrieved: joiners re-raise it themselves
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_room(room_sub)),
            loop.create_task(self._read_presence(presence_sub)),
            loop.create_task(self._every(REPUBLISH_SECONDS, self._presence_tick)),
            loop.create_task(self._every(self.heartbeat_seconds, self._heartbeat_tick)),
            loop.create_task(self._every(TAIL_CHECK_SECONDS, self._tail_check)),
        ]
        self.ready.set_result(None)

    async def close(self) -> None:
        self.closed = True
        self._presence_throttle.cancel()
        if self._gap_timer is not None:
            self._gap_timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close_subscriptions()
        # Tell the other processes (and the lobby) we are gone rather than letting them time out,
        # unless a new room for this conversation has already announced itself meanwhile.
        if self.hub.rooms.get(self.id) is None:
            self._presence_publisher.publish(self.local.summary(self.node_id, gone=True))
            self.hub.lobby.report(self.id, self.node_id, [], [], 0)
        with contextlib.suppress(Exception):
            await self._presence_publisher.flush()

    async def _close_subscriptions(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.close()
        self._subs = []

    # ---- connections --------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    @property
    def last_id(self) -> int:
        """The latest id handed to local connections."""
        return self.next_id - 1

    def add(self, conn: Connection, person: Present | None) -> None:
        """Register before reading the backlog: every later event reaches `conn`'s queue."""
        self._conns[conn] = person
        self._fanout = tuple(self._conns)
        if self.local.join(person):
            self._local_changed()

    def set_reader(self, conn: Connection, reader: Reader) -> None:
        """Say who reads through `conn` (right after joining, before any await), so that what
        it receives follows junto.conversations.withheld_events."""
        self._readers[conn] = reader
        self._reviewing = frozenset(c for c, r in self._readers.items() if r.reviews)

    def remove(self, conn: Connection) -> None:
        if conn not in self._conns:
            return
        if self._readers.pop(conn, None) is not None:
            self._reviewing = frozenset(c for c, r in self._readers.items() if r.reviews)
        person = self._conns.pop(conn)
        self._fanout = tuple(self._conns)
        if self.local.leave(person):
            self._local_changed()

    def broadcast(self, msg: Message) -> None:
        """Queue a control frame (not part of the room stream) for every local connection."""
        item: Item = (0, msg)
        for conn in self._fanout:
            conn.push(item)

    def broadcast_control(self, type_: str, **fields: Any) -> None:
        """`broadcast(control(type_, **fields))`, for services that do not build frames."""
        self.broadcast(control(type_, **fields))

    def close_connections(self, code: int, reason: str) -> None:
        for conn in list(self._conns):
            conn.close(code, reason)

    def send_presence(self, conn: Connection) -> None:
        """Queue the current `presence.state` for a connection that just joined, unless a
        broadcast since it registered already did."""
        if self._presence_msg is None:
            self._build_presence(self.view.picture())
        assert self._presence_msg is not None
        if conn.presence_id < self._presence_seq:
            conn.presence_id = self._presence_seq
            conn.push((0, self._presence_msg))

    def cached_snapshot(self) -> tuple[int, Message] | None:
        """A recent anonymous viewer's snapshot, if it is still valid for a new connection.

        A snapshot at id L is complete for a connection that registered when the room had
        handed out up to R <= L: everything after L reaches its queue. Everything a snapshot
        shows changes through a room event, so one at L is current while last_id == L; the
        short lifetime bounds what changes without an event (a display name) can leave stale.
        A join storm of thousands of watchers then costs one snapshot query, not thousands.
        """
        cached = self._snapshot
        if cached is None:
            return None
        last_id, msg, made = cached
        if last_id < self.last_id or asyncio.get_running_loop().time() - made > SNAPSHOT_TTL:
            self._snapshot = None
            return None
        return last_id, msg

    def cache_snapshot(self, last_id: int, msg: Message) -> None:
        if last_id >= self.last_id:
            self._snapshot = (last_id, msg, asyncio.get_running_loop().time())

    def counts(self) -> tuple[int, int]:
        data = self._presence_data or self.view.picture()
        return int(data["present"]), int(data["on_stage"])

    # ---- the room stream ----------------------------------------------------------------------

    async def _read_room(self, sub: Subscription) -> None:
        while not self.closed:
            try:
                burst = 0
                async for data in sub:
                    self._on_wire(data)
                    burst += 1
                    if burst == YIELD_EVERY:
                        # A backlog of messages would otherwise be fanned out in one go,
                        # before any writer could drain: let them run, so that only clients
                        # that really are slow hit their queue limit.
                        burst = 0
                        await asyncio.sleep(0)
                return
            except SubscriptionOverflow:
                # We fell behind pub/sub (or its connection dropped) and lost messages:
                # resubscribe, then catch up from the database (what arrives meanwhile is
                # ordered as usual).
                log.warning("room %s lost pub/sub messages; catching up from the database", self.id)
            sub = await self._resubscribe(sub, room_channel(self.id))
            self._start_fill()

    def _on_wire(self, data: bytes) -> None:
        try:
            event_id, event_type, frame = parse_wire(data)
        except ValueError:
            log.warning("room %s: ignoring a malformed pub/sub message %r", self.id, data[:100])
            return
        self.accept(event_id, event_type, frame)

    def accept(self, event_id: int, event_type: str, frame: bytes) -> None:
        """Take one event from any source; emit everything that is now in order."""
        if event_id < self.next_id or self.closed:
            return  # already delivered (a duplicate from a fill or a second publish)
        if event_id > self.next_id:
            self._pending[event_id] = (event_type, frame)
            if self._gap_timer is None and not self._filling:
                self._gap_timer = asyncio.get_running_loop().call_later(
                    GAP_WAIT_SECONDS, self._gap_timeout
                )
            return
        self._emit(event_id, event_type, frame)
        pending = self._pending
        while pending:
            nxt = pending.pop(self.next_id, None)
            if nxt is None:
                break
            self._emit(self.next_id, nxt[0], nxt[1])
        if not pending and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    def _emit(self, event_id: int, event_type: str, frame: bytes) -> None:
        self.next_id = event_id + 1
        item: Item = (event_id, message(frame.decode()))
        if self.state is not None and event_type in conversations.withheld_events(
            self.state, reviews=False
        ):
            self._emit_withheld(item, frame)
        else:
            for conn in self._fanout:
                conn.push(item)
        for listener in self.hub.event_listeners:
            listener(self.id, event_type, frame)
        if event_type == "conversation.state":
            self._follow_state(frame)
        elif event_type == "stage.role":
            self._follow_role(frame)
        if event_type in PRESENCE_EVENTS:
            self._presence_event(event_type, frame)
        elif event_type == "conversation.updated" and b'"visibility":"invite_only"' in frame:
            # Admission is checked at the handshake only; when a conversation becomes
            # invite-only, sockets opened by people it no longer admits must not keep streaming.
            self._tasks.append(asyncio.get_running_loop().create_task(self._evict_safely()))

    def _emit_withheld(self, item: Item, frame: bytes) -> None:
        """An event only reviewers may read now: they get it, everyone else its stand-in."""
        event_id = item[0]
        stand_in: Item = (
            event_id,
            message(eventlog.withheld_frame(event_id, str(orjson.loads(frame)["ts"])).decode()),
        )
        reviewing = self._reviewing
        for conn in self._fanout:
            conn.push(item if conn in reviewing else stand_in)

    def _follow_state(self, frame: bytes) -> None:
        try:
            self.state = ConversationState(orjson.loads(frame)["data"]["state"])
        except (ValueError, KeyError, TypeError):
            # Not knowing the state, hold back what reviewers alone may read.
            log.warning("room %s: unexpected conversation.state event data", self.id)
            self.state = ConversationState.ENDED

    def _follow_role(self, frame: bytes) -> None:
        """A reader's role changed: a speaker sent back to the audience stops reviewing."""
        try:
            data = orjson.loads(frame)["data"]
            user_id, role = int(data["user"]["id"]), Role(data["role"])
        except (ValueError, KeyError, TypeError):
            return  # _presence_event logs it
        for conn, reader in list(self._readers.items()):
            if reader.user_id == user_id:
                self._readers[conn] = dataclasses.replace(reader, role=role)
        self._reviewing = frozenset(c for c, r in self._readers.items() if r.reviews)

    async def _evict_safely(self) -> None:
        try:
            await self._evict_outsiders()
        except Exception:
            log.exception("room %s: closing connections it no longer admits failed", self.id)

    async def _evict_outsiders(self) -> None:
        """Close the connections of anonymous viewers and of people without a participant row
        (admins excepted), as junto.conversations.can_view would now refuse them."""
        conns = list(self._conns.items())
        ids = {person.id for _conn, person in conns if person is not None}
        allowed: set[int] = set()
        async with self.hub.node.db() as db:
            # The stored visibility decides (the event may be stale by now).
            visibility = await db.scalar(
                select(Conversation.visibility).where(Conversation.id == self.id)
            )
            if visibility != Visibility.INVITE_ONLY:
                return
            if ids:
                allowed.update(
                    await db.scalars(
                        select(Participant.user_id).where(
                            Participant.conversation_id == self.id, Participant.user_id.in_(ids)
                        )
                    )
                )
                allowed.update(
                    await db.scalars(select(User.id).where(User.id.in_(ids), User.is_admin))
                )
        for conn, person in conns:
            if person is None or person.id not in allowed:
                conn.close(CLOSE_FORBIDDEN, "this conversation is now invite-only")

    def _gap_timeout(self) -> None:
        self._gap_timer = None
        if self._pending:
            log.info(
                "room %s: event %s missing after %.1fs, reading it from the database",
                self.id,
                self.next_id,
                GAP_WAIT_SECONDS,
            )
            self._start_fill()

    def _start_fill(self) -> None:
        if not self._filling and not self.closed:
            self._filling = True
            self._tasks.append(asyncio.get_running_loop().create_task(self._fill()))

    async def _fill(self) -> None:
        """Read missing events from the database, off the per-event path."""
        try:
            while not self.closed:
                async with self.hub.node.db() as db:
                    events = await eventlog.events_after(db, self.id, self.last_id, FILL_BATCH)
                for n, event in enumerate(events, 1):
                    self.accept(event.id, event.type, event.frame())
                    if n % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                if len(events) < FILL_BATCH:
                    break
        except Exception:
            log.exception("room %s: reading missing events failed; retrying", self.id)
        finally:
            self._filling = False
        if self._pending and self._gap_timer is None and not self.closed:
            self._gap_timer = asyncio.get_running_loop().call_later(
                GAP_WAIT_SECONDS, self._gap_timeout
            )

    async def _tail_check(self) -> None:
        # A publisher that crashed between commit and publish leaves no later event to reveal
        # the gap; a cheap look at last_seq every few seconds finds it.
        async with self.hub.node.db() as db:
            latest = await eventlog.last_id(db, self.id)
        if latest > self.last_id and not self._pending:
            self._start_fill()

    async def _heartbeat_tick(self) -> None:
        item: Item = (0, control("heartbeat", last_id=self.last_id))
        for conn in self._fanout:
            conn.push(item)

    # ---- presence -----------------------------------------------------------------------------

    def _presence_event(self, event_type: str, frame: bytes) -> None:
        try:
            data = orjson.loads(frame)["data"]
            if event_type == "stage.role":
                # A role change also lowers the hand (junto.room.stage._set_role).
                changed = self.view.patch(
                    int(data["user"]["id"]), role=str(data["role"]), hand_raised=False
                )
            elif event_type == "stage.hand":
                changed = self.view.patch(int(data["user"]["id"]), hand_raised=bool(data["raised"]))
            elif data.get("blocked"):
                # A blocked person leaves the stage (a stage.role event says so) and the queue.
                changed = self.view.patch(int(data["user_id"]), hand_raised=False)
            else:
                changed = False
        except (ValueError, KeyError, TypeError):
            log.warning("room %s: unexpected %s event data", self.id, event_type)
            return
        if changed:
            self._local_changed()

    def _local_changed(self) -> None:
        self._local_dirty = True
        self._presence_throttle.mark()

    async def _read_presence(self, sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            try:
                async for data in sub:
                    if self.view.apply_summary(data, loop.time()):
                        self._presence_throttle.mark()
                return
            except SubscriptionOverflow:
                # Summaries are state: the next heartbeat from each process restores the picture.
                pass
            sub = await self._resubscribe(sub, presence_channel(self.id))

    async def _presence_tick(self) -> None:
        self._publish_local()
        if self.view.expire(asyncio.get_running_loop().time()):
            self._presence_throttle.mark()

    def _publish_local(self) -> None:
        self._local_dirty = False
        self._presence_publisher.publish(self.local.summary(self.node_id))
        people = self.local.people.values()
        self.hub.lobby.report(
            self.id,
            self.node_id,
            [p.id for p in people],
            [p.id for p in people if p.role in ("host", "cohost", "speaker")],
            self.local.watchers,
        )

    def _flush_presence(self) -> None:
        if self.closed:
            return
        if self._local_dirty:
            self._publish_local()
        picture = self.view.picture()
        if picture == self._presence_data:
            return
        self._build_presence(picture)
        item: Item = (0, self._presence_msg)  # type: ignore[assignment]
        seq = self._presence_seq
        for conn in self._fanout:
            conn.presence_id = seq
            conn.push(item)

    def _build_presence(self, picture: dict[str, Any]) -> None:
        # One id sequence per room: every connection sees it increase, as the protocol asks.
        self._presence_seq += 1
        self._presence_data = picture
        self._presence_msg = message(
            orjson.dumps(
                {
                    "type": "presence.state",
                    "stream": "presence",
                    "id": self._presence_seq,
                    "data": picture,
                }
            ).decode()
        )

    # ---- helpers ------------------------------------------------------------------------------

    async def _resubscribe(self, old: Subscription, channel: str) -> Subscription:
        with contextlib.suppress(Exception):
            await old.close()
        if old in self._subs:
            self._subs.remove(old)
        sub = await resubscribe(self.pubsub, channel)
        self._subs.append(sub)
        return sub

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while not self.closed:
            await asyncio.sleep(seconds)
            try:
                await action()
            except Exception:
                log.exception("room %s: periodic task failed", self.id)
