"""The hub: this process's rooms and lobby, and the door other modules deliver events through.

`deliver(event)` publishes a committed event on `room:{conversation_id}`; every process with
connections to that conversation (this one included) receives it in its `Room` and fans it out
in id order. Nothing is handed to clients straight from `deliver`, so one path orders events no
matter which process committed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from junto.events.log import StoredEvent
from junto.realtime.connection import CLOSE_GOING_AWAY, Connection
from junto.realtime.lobby import Lobby
from junto.realtime.presence import Present
from junto.realtime.room import Room, room_channel, wire

if TYPE_CHECKING:
    from junto.node import Node

log = logging.getLogger("junto.realtime")

# A room with no connections stays subscribed this long, so reconnecting clients find it warm.
ROOM_LINGER_SECONDS = 10.0


class Hub:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.rooms: dict[int, Room] = {}
        self.lobby = Lobby(self)
        self._linger: dict[int, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.stopping = False
        # Called with (conversation id, event type, frame) for every room event this process
        # emits, in stream order; listeners must be quick and must not raise.
        self.event_listeners: list[Callable[[int, str, bytes], None]] = []

    async def start(self) -> None:
        await self.lobby.start()

    async def stop(self) -> None:
        """Close every connection with 1001 and leave every room (announcing it to the others)."""
        self.stopping = True
        for handle in self._linger.values():
            handle.cancel()
        self._linger.clear()
        for room in list(self.rooms.values()):
            room.close_connections(CLOSE_GOING_AWAY, "node shutting down")
        self.lobby.close_clients(CLOSE_GOING_AWAY, "node shutting down")
        rooms, self.rooms = list(self.rooms.values()), {}
        for room in rooms:
            with contextlib.suppress(Exception):
                await room.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.lobby.stop()

    # ---- delivery -------------------------------------------------------------------------------

    async def deliver(self, event: StoredEvent) -> None:
        """Hand a committed event to every process's connections (call after commit)."""
        try:
            await self.node.pubsub.publish(room_channel(event.conversation_id), wire(event))
        except Exception:
            # The event is stored, so nothing is lost: local clients get it now, other
            # processes find it on their next gap fill or heartbeat tail check.
            log.warning("publishing event %s failed; delivering locally", event.id, exc_info=True)
            room = self.rooms.get(event.conversation_id)
            if room is not None and room.ready.done():
                room.accept(event.id, event.type, event.frame())

    def counts(self, conversation_id: int) -> tuple[int, int]:
        """(present, on_stage) for a conversation, merged across processes."""
        return self.lobby.counts(conversation_id)

    async def conversation_changed(self, conversation_id: int) -> None:
        """A conversation's state or metadata changed: refresh every process's lobby entry."""
        await self.lobby.conversation_changed(conversation_id)

    # ---- rooms ----------------------------------------------------------------------------------

    async def join(self, conversation_id: int, conn: Connection, person: Present | None) -> Room:
        """Register `conn` with the conversation's room (creating it), once the room is ready."""
        if self.stopping:
            raise RuntimeError("expected a running hub, got one shutting down")
        handle = self._linger.pop(conversation_id, None)
        if handle is not None:
            handle.cancel()
        room = self.rooms.get(conversation_id)
        if room is None:
            room = Room(self, conversation_id)
            self.rooms[conversation_id] = room
            try:
                await room.open()
            except BaseException:
                if self.rooms.get(conversation_id) is room:
                    del self.rooms[conversation_id]
                raise
        else:
            await asyncio.shield(room.ready)
        room.add(conn, person)
        conn.on_close(lambda c: self._leave(room, c))
        return room

    def _leave(self, room: Room, conn: Connection) -> None:
        room.remove(conn)
        if room.connection_count == 0 and not room.closed and not self.stopping:
            loop = asyncio.get_running_loop()
            old = self._linger.pop(room.id, None)
            if old is not None:
                old.cancel()
            self._linger[room.id] = loop.call_later(ROOM_LINGER_SECONDS, self._retire, room)

    def _retire(self, room: Room) -> None:
        self._linger.pop(room.id, None)
        if room.connection_count or self.rooms.get(room.id) is not room:
            return
        del self.rooms[room.id]
        task = asyncio.get_running_loop().create_task(room.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
