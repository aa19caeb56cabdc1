"""Who is on air: speakers publishing while their conversation is live.

The recorder and the live captioner both need to know when a speaker's source starts and stops
being worth capturing. Publishing alone is not enough (a scheduled conversation's green room is
not recorded), and the conversation going live or ending changes the answer for every speaker
at once. `OnAir` keeps that one rule in one place and tells its consumers about the changes.

It is fed by the media signaling layer (`StageMedia` calls `publications_changed`) and by the
room stream (`conversation.state` events through `Hub.event_listeners`); all calls happen on the
event loop and consumers must return at once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from junto.enums import ConversationState
from junto.storage.tables import Conversation

if TYPE_CHECKING:
    from junto.media.base import Publication
    from junto.node import Node

log = logging.getLogger("junto.recording")

Key = tuple[int, str]  # (user_id, source)


class OnAirConsumer(Protocol):
    def on_air(self, room: int, user_id: int, source: str, started_at: datetime) -> None:
        """`user_id`'s `source` is publishing in a live conversation that went live at
        `started_at` (the origin of the conversation's timeline)."""

    def off_air(self, room: int, user_id: int, source: str) -> None:
        """It stopped publishing, or the conversation is no longer live."""

    def gathering(self, room: int) -> None:
        """Someone publishes on `room`'s stage, live or not yet, or `room` went live with
        nobody on stage yet: what a consumer needs ready for the first on-air word (a model to
        load) should start now."""


class OnAir:
    """Node-wide: turns publication and conversation-state changes into on/off-air calls."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.consumers: list[OnAirConsumer] = []
        # room -> started_at while live (None: known not live); missing: not looked up yet.
        self._live: dict[int, datetime | None] = {}
        self._publishing: dict[int, set[Key]] = {}
        self._on: dict[int, set[Key]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def add(self, consumer: OnAirConsumer) -> None:
        self.consumers.append(consumer)

    def on_air_now(self, room: int) -> set[Key]:
        return set(self._on.get(room, ()))

    # ---- inputs ----------------------------------------------------------------------------------

    def publications_changed(self, room: int, publications: list[Publication]) -> None:
        had = bool(self._publishing.get(room))
        self._publishing[room] = {(p.user_id, p.source) for p in publications}
        if publications and not had:
            # Speakers gather on the stage before the host goes live (issue 13: captions from
            # the first word): consumers warm up now rather than on the first on-air packet.
            self._tell("gathering", room)
        if room in self._live:
            self._reconcile(room)
        else:
            self._spawn(self._look_up(room))

    def on_room_event(self, conversation_id: int, event_type: str, frame: bytes) -> None:
        if event_type != "conversation.state":
            return
        data = orjson.loads(frame).get("data") or {}
        if data.get("state") == ConversationState.LIVE.value and data.get("started_at"):
            started = datetime.fromisoformat(str(data["started_at"]).replace("Z", "+00:00"))
            self._live[conversation_id] = started
            if not self._publishing.get(conversation_id):
                # Live before anyone is on stage: speakers are about to join and talk at once,
                # so consumers warm up now rather than on their first publication.
                self._tell("gathering", conversation_id)
        else:
            self._live[conversation_id] = None
        self._reconcile(conversation_id)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for room in list(self._on):
            self._publishing.pop(room, None)
            self._reconcile(room)

    # ---- the rule --------------------------------------------------------------------------------

    async def _look_up(self, room: int) -> None:
        async with self.node.db() as db:
            conv = await db.get(Conversation, room)
        live = conv is not None and conv.state == ConversationState.LIVE
        self._live.setdefault(room, conv.started_at if live and conv is not None else None)
        self._reconcile(room)

    def _reconcile(self, room: int) -> None:
        started_at = self._live.get(room)
        wanted = set(self._publishing.get(room, ())) if started_at is not None else set()
        current = self._on.setdefault(room, set())
        for user_id, source in sorted(current - wanted):
            current.discard((user_id, source))
            self._tell("off_air", room, user_id, source)
        for user_id, source in sorted(wanted - current):
            current.add((user_id, source))
            self._tell("on_air", room, user_id, source, started_at)
        if not current:
            del self._on[room]
            if not self._publishing.get(room):
                self._publishing.pop(room, None)
                self._live.pop(room, None)

    def _tell(self, what: str, *args: Any) -> None:
        for consumer in self.consumers:
            try:
                getattr(consumer, what)(*args)
            except Exception:
                log.exception("an on-air consumer failed in %s", what)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
