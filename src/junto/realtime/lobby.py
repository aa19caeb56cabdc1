"""The lobby: live and upcoming public conversations with live counts, for `/ws/lobby`.

Counts come from presence. Every process's rooms report their local people (user ids, who is on
stage, anonymous watchers) on pub/sub channel `lobby`; every process merges those reports, so a
person with tabs on two processes counts once, and forgets a process that stops reporting.
Conversation changes (`Hub.conversation_changed`) travel on the same channel so every process
refreshes that one entry from the database. Lobby frames are state, not history: a client that
reconnects simply gets a new snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from junto import conversations
from junto.enums import ConversationState, Visibility
from junto.pubsub import Subscription
from junto.pubsub.base import SubscriptionOverflow
from junto.realtime.connection import Connection, message
from junto.realtime.presence import (
    COALESCE_SECONDS,
    REMOTE_TTL_SECONDS,
    REPUBLISH_SECONDS,
    LatestPublisher,
    Throttle,
    resubscribe,
)
from junto.storage.tables import Conversation

if TYPE_CHECKING:
    from junto.realtime.hub import Hub

log = logging.getLogger("junto.realtime")

LOBBY_CHANNEL = "lobby"
# How many conversations of each kind (live, upcoming) the lobby lists.
LOBBY_LIST_MAX = 100
# A loaded list older than this is reloaded for the next snapshot, in case a change notice was
# lost (pub/sub is at-most-once).
RELOAD_AFTER_SECONDS = 30.0
LISTED_STATES = (ConversationState.LIVE, ConversationState.SCHEDULED)


@dataclass(frozen=True)
class _Report:
    people: frozenset[int]
    stage: frozenset[int]
    watchers: int
    seen: float


class Lobby:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pubsub = hub.node.pubsub
        self.node_id = hub.node.settings.node_id
        self._reports: dict[int, dict[str, _Report]] = {}
        self._counts: dict[int, tuple[int, int]] = {}
        self._publishers: dict[int, LatestPublisher] = {}
        # conversation id -> lobby entry (summary); None until a lobby client needs it
        self._entries: dict[int, dict[str, Any]] | None = None
        self._loaded_at = 0.0
        self._load_lock = asyncio.Lock()
        self._clients: set[Connection] = set()
        self._dirty: set[int] = set()
        self._removed: dict[int, str] = {}
        self._throttle = Throttle(COALESCE_SECONDS, self._flush)
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self.pubsub.subscribe(LOBBY_CHANNEL)
        self._spawn(self._read(self._sub))
        self._spawn(self._sweep())

    async def stop(self) -> None:
        self._throttle.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.close()
        for publisher in self._publishers.values():
            with contextlib.suppress(Exception):
                await publisher.flush()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- counts -------------------------------------------------------------------------------

    def counts(self, conversation_id: int) -> tuple[int, int]:
        """(present, on_stage), merged across processes."""
        return self._counts.get(conversation_id, (0, 0))

    def report(
        self,
        conversation_id: int,
        node_id: str,
        people: Iterable[int],
        stage: Iterable[int],
        watchers: int,
    ) -> None:
        """A local room's people changed (or its periodic heartbeat): apply and tell the others."""
        people, stage = list(people), list(stage)
        self._apply(conversation_id, node_id, frozenset(people), frozenset(stage), watchers)
        publisher = self._publishers.get(conversation_id)
        if publisher is None:
            publisher = self._publishers[conversation_id] = LatestPublisher(
                self.pubsub, LOBBY_CHANNEL
            )
        gone = not people and not watchers
        publisher.publish(
            orjson.dumps(
                {"kind": "counts", "node": node_id, "conversation_id": conversation_id,
                 "people": people, "stage": stage, "watchers": watchers}
            )
        )  # fmt: skip
        if gone:
            self._publishers.pop(conversation_id, None)

    def _apply(
        self,
        conversation_id: int,
        node_id: str,
        people: frozenset[int],
        stage: frozenset[int],
        watchers: int,
    ) -> None:
        reports = self._reports.setdefault(conversation_id, {})
        if people or watchers:
            reports[node_id] = _Report(people, stage, watchers, _now())
        else:
            reports.pop(node_id, None)
        self._recount(conversation_id)

    def _recount(self, conversation_id: int) -> None:
        reports = self._reports.get(conversation_id, {})
        people: set[int] = set()
        stage: set[int] = set()
        watchers = 0
        for r in reports.values():
            people |= r.people
            stage |= r.stage
            watchers += r.watchers
        counts = (len(people) + watchers, len(stage))
        if not reports:
            self._reports.pop(conversation_id, None)
        if counts != self._counts.get(conversation_id, (0, 0)):
            if counts == (0, 0):
                self._counts.pop(conversation_id, None)
            else:
                self._counts[conversation_id] = counts
            self._mark(conversation_id)

    async def _sweep(self) -> None:
        """Forget processes that stopped reporting (crashed) and re-announce nothing: rooms do."""
        while True:
            await asyncio.sleep(REPUBLISH_SECONDS)
            now = _now()
            for conversation_id, reports in list(self._reports.items()):
                stale = [n for n, r in reports.items() if now - r.seen > REMOTE_TTL_SECONDS]
                if stale:
                    for node in stale:
                        del reports[node]
                    self._recount(conversation_id)

    # ---- pub/sub ------------------------------------------------------------------------------

    async def _read(self, sub: Subscription) -> None:
        while True:
            try:
                async for data in sub:
                    self._on_message(data)
                return
            except SubscriptionOverflow:
                log.warning("the lobby lost pub/sub messages; resubscribing")
            with contextlib.suppress(Exception):
                await sub.close()
            sub = self._sub = await resubscribe(self.pubsub, LOBBY_CHANNEL)
            # A change notice may have been lost: reload the list for the next snapshot.
            self._loaded_at = 0.0

    def _on_message(self, data: bytes) -> None:
        try:
            msg = orjson.loads(data)
            node = str(msg["node"])
            conversation_id = int(msg["conversation_id"])
            if node == self.node_id:
                return  # applied directly when it was sent
            if msg["kind"] == "counts":
                self._apply(
                    conversation_id,
                    node,
                    frozenset(int(i) for i in msg["people"]),
                    frozenset(int(i) for i in msg["stage"]),
                    int(msg["watchers"]),
                )
            elif msg["kind"] == "changed":
                self._spawn(self._refresh(conversation_id))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed lobby message: %r", data[:200])

    async def conversation_changed(self, conversation_id: int) -> None:
        msg = {"kind": "changed", "node": self.node_id, "conversation_id": conversation_id}
        try:
            await self.pubsub.publish(LOBBY_CHANNEL, orjson.dumps(msg))
        finally:
            await self._refresh(conversation_id)

    # ---- entries ------------------------------------------------------------------------------

    async def _refresh(self, conversation_id: int) -> None:
        """Re-read one conversation's entry (only if a lobby list is loaded or loading)."""
        if self._entries is None and not self._load_lock.locked():
            return
        # A load in progress may have read the database before this change: wait for it (it
        # holds the lock) and apply the change on top, or the first lobby client would miss it.
        async with self._load_lock, self.hub.node.db() as db:
            conv = await db.get(Conversation, conversation_id, populate_existing=True)
            entries = self._entries
            if entries is None:
                return
            if conv is not None and _listed(conv):
                entries[conversation_id] = conversations.summary(
                    conv, await conversations.tags_of(db, conv)
                )
                self._removed.pop(conversation_id, None)
            elif conversation_id in entries:
                slug = entries.pop(conversation_id)["slug"]
                # Only clients that are watching need to hear of the removal; with none, keeping
                # the slug would grow without bound as conversations end.
                if self._clients:
                    self._removed[conversation_id] = slug
            else:
                return
        self._mark(conversation_id)

    async def _load(self) -> dict[int, dict[str, Any]]:
        async with self._load_lock:
            if self._entries is not None and _now() - self._loaded_at < RELOAD_AFTER_SECONDS:
                return self._entries
            async with self.hub.node.db() as db:
                found: list[Conversation] = []
                for state in LISTED_STATES:
                    found += await conversations.list_public(db, state=state, limit=LOBBY_LIST_MAX)
                tags = await conversations.tags_for(db, [c.id for c in found])
            self._entries = {c.id: conversations.summary(c, tags[c.id]) for c in found}
            self._loaded_at = _now()
            return self._entries

    def _entry(self, conversation_id: int, summary: dict[str, Any]) -> dict[str, Any]:
        present, on_stage = self.counts(conversation_id)
        return {**summary, "present": present, "on_stage": on_stage}

    # ---- clients ------------------------------------------------------------------------------

    async def snapshot_message(self) -> dict[str, Any]:
        entries = await self._load()
        return {
            "type": "lobby.snapshot",
            "conversations": [self._entry(cid, s) for cid, s in entries.items()],
        }

    def add_client(self, conn: Connection) -> None:
        """Register before building the snapshot, so no update falls in between."""
        self._clients.add(conn)
        conn.on_close(self._clients.discard)

    def close_clients(self, code: int, reason: str) -> None:
        for conn in list(self._clients):
            conn.close(code, reason)

    def _mark(self, conversation_id: int) -> None:
        if self._clients and self._entries is not None:
            self._dirty.add(conversation_id)
            self._throttle.mark()

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if not self._clients or self._entries is None:
            self._removed.clear()  # nobody to tell; new clients get a fresh snapshot
            return
        for conversation_id in dirty:
            summary = self._entries.get(conversation_id)
            if summary is not None:
                entry = self._entry(conversation_id, summary)
            elif conversation_id in self._removed:
                entry = {"slug": self._removed.pop(conversation_id), "removed": True}
            else:
                continue
            item = (
                0,
                message(orjson.dumps({"type": "lobby.update", "conversation": entry}).decode()),
            )
            for conn in tuple(self._clients):
                conn.push(item)


def _listed(conv: Conversation) -> bool:
    return conv.visibility == Visibility.PUBLIC and conv.state in LISTED_STATES


def _now() -> float:
    return asyncio.get_running_loop().time()
