"""Presence: who is in a room, merged across node processes.

Each process counts its own connections per room (`LocalPresence`: named people by user id, so
two tabs count once, plus anonymous watchers), publishes that summary on pub/sub channel
`presence:{conversation_id}` when it changes (coalesced) and every few seconds as a heartbeat,
and merges the summaries of the other processes (`PresenceView`). A process that stops sending
heartbeats (crashed) drops out after `REMOTE_TTL_SECONDS`. Presence is ephemeral: nothing here
touches the database after a person's role was looked up when they connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from junto.pubsub import PubSub, Subscription

log = logging.getLogger("junto.realtime")

# Frames and summaries go out at most twice a second while presence keeps changing.
COALESCE_SECONDS = 0.5
# Each process re-announces its summary this often, and forgets a silent process after TTL.
REPUBLISH_SECONDS = 5.0
REMOTE_TTL_SECONDS = 15.0
# Roles shown on the stage (the lobby's `on_stage` count).
STAGE_ROLES = frozenset({"host", "cohost", "speaker"})
# `members` lists at most this many people (stage and raised hands first); the counts stay exact.
# Sending every name of a very large audience twice a second to every client would cost more
# than all the chat together.
MEMBERS_LISTED_MAX = 500


@dataclass(frozen=True)
class Present:
    """One identified person in a room, as listed in `presence.state`."""

    id: int
    name: str
    colour: str
    is_guest: bool
    role: str = "audience"
    hand_raised: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "colour": self.colour,
            "is_guest": self.is_guest,
            "role": self.role,
            "hand_raised": self.hand_raised,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Present:
        return cls(
            id=int(raw["id"]),
            name=str(raw["name"]),
            colour=str(raw["colour"]),
            is_guest=bool(raw["is_guest"]),
            role=str(raw.get("role", "audience")),
            hand_raised=bool(raw.get("hand_raised", False)),
        )


class Throttle:
    """Runs `action` soon after `mark()`, then at most once per `interval` while marks continue."""

    def __init__(self, interval: float, action: Callable[[], None]) -> None:
        self.interval = interval
        self.action = action
        self._handle: asyncio.TimerHandle | None = None
        self._last = -1e9

    def mark(self) -> None:
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last + self.interval - loop.time())
        self._handle = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._last = asyncio.get_running_loop().time()
        try:
            self.action()
        except Exception:
            log.exception("throttled action failed")

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class LatestPublisher:
    """Publishes the newest value for one channel, dropping superseded ones.

    Presence is state, not history: if three summaries pile up while one is in flight only the
    last matters, and publishing from one task keeps them in order.
    """

    def __init__(self, pubsub: PubSub, channel: str) -> None:
        self.pubsub = pubsub
        self.channel = channel
        self._next: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    def publish(self, data: bytes) -> None:
        self._next = data
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._next is not None:
            data, self._next = self._next, None
            try:
                await self.pubsub.publish(self.channel, data)
            except Exception:
                log.warning("publishing presence on %s failed", self.channel, exc_info=True)

    async def flush(self) -> None:
        if self._task is not None:
            await self._task


async def resubscribe(pubsub: PubSub, channel: str) -> Subscription:
    """Subscribe again after a subscription was cut off, retrying while pub/sub is down."""
    delay = 0.1
    while True:
        try:
            return await pubsub.subscribe(channel)
        except Exception:
            log.warning(
                "subscribing to %s failed; retrying in %.1fs", channel, delay, exc_info=True
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class LocalPresence:
    """This process's connections in one room."""

    def __init__(self) -> None:
        self.people: dict[int, Present] = {}
        self.tabs: dict[int, int] = {}  # user id -> open connections
        self.watchers = 0

    def join(self, person: Present | None) -> bool:
        """Count a new connection; True if the picture changed."""
        if person is None:
            self.watchers += 1
            return True
        self.tabs[person.id] = self.tabs.get(person.id, 0) + 1
        if person.id in self.people:
            return False
        self.people[person.id] = person
        return True

    def leave(self, person: Present | None) -> bool:
        if person is None:
            self.watchers = max(0, self.watchers - 1)
            return True
        left = self.tabs.get(person.id, 0) - 1
        if left > 0:
            self.tabs[person.id] = left
            return False
        self.tabs.pop(person.id, None)
        self.people.pop(person.id, None)
        return True

    def update(self, user_id: int, **changes: Any) -> bool:
        current = self.people.get(user_id)
        if current is None:
            return False
        updated = replace(current, **changes)
        if updated == current:
            return False
        self.people[user_id] = updated
        return True

    @property
    def empty(self) -> bool:
        return not self.people and self.watchers == 0

    def summary(self, node_id: str, gone: bool = False) -> bytes:
        return orjson.dumps(
            {
                "node": node_id,
                "members": [p.as_dict() for p in self.people.values()],
                "watchers": self.watchers,
                "gone": gone,
            }
        )


@dataclass
class _Remote:
    people: dict[int, Present]
    watchers: int
    seen: float


class PresenceView:
    """The merged picture: this process's `LocalPresence` plus every other process's summary."""

    def __init__(self, node_id: str, local: LocalPresence) -> None:
        self.node_id = node_id
        self.local = local
        self.remotes: dict[str, _Remote] = {}

    def apply_summary(self, raw: bytes, now: float) -> bool:
        """Take a summary from pub/sub; True if it may have changed the picture."""
        try:
            msg = orjson.loads(raw)
            node = str(msg["node"])
            if node == self.node_id:
                return False
            if msg.get("gone"):
                return self.remotes.pop(node, None) is not None
            people = {p.id: p for p in (Present.from_dict(m) for m in msg["members"])}
            watchers = int(msg["watchers"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed presence summary: %r", raw[:200])
            return False
        previous = self.remotes.get(node)
        self.remotes[node] = _Remote(people, watchers, now)
        return previous is None or previous.people != people or previous.watchers != watchers

    def expire(self, now: float) -> bool:
        stale = [n for n, r in self.remotes.items() if now - r.seen > REMOTE_TTL_SECONDS]
        for node in stale:
            del self.remotes[node]
        return bool(stale)

    def patch(self, user_id: int, **changes: Any) -> bool:
        """Apply a stage change seen in the room stream everywhere this person is listed."""
        changed = self.local.update(user_id, **changes)
        for remote in self.remotes.values():
            current = remote.people.get(user_id)
            if current is not None:
                remote.people[user_id] = replace(current, **changes)
                changed = True
        return changed

    def members(self) -> dict[int, Present]:
        merged: dict[int, Present] = {}
        for remote in self.remotes.values():
            merged.update(remote.people)
        # This process saw the latest stage events first hand: its entries win.
        merged.update(self.local.people)
        return merged

    def watchers(self) -> int:
        return self.local.watchers + sum(r.watchers for r in self.remotes.values())

    def picture(self) -> dict[str, Any]:
        """The `data` of a `presence.state` frame."""
        members = self.members()
        people = list(members.values())
        watchers = self.watchers()
        listed = sorted(people, key=_listing_order)[:MEMBERS_LISTED_MAX]
        return {
            "present": len(people) + watchers,
            "members": [p.as_dict() for p in listed],
            "guests": sum(1 for p in people if p.is_guest),
            "watchers": watchers,
            "on_stage": sum(1 for p in people if p.role in STAGE_ROLES),
            "hands": sum(1 for p in people if p.hand_raised),
        }


_ROLE_ORDER = {"host": 0, "cohost": 1, "speaker": 2}


def _listing_order(p: Present) -> tuple[int, int, str, int]:
    return (_ROLE_ORDER.get(p.role, 3), 0 if p.hand_raised else 1, p.name.casefold(), p.id)


def stage_ids(people: Iterable[Present]) -> list[int]:
    return [p.id for p in people if p.role in STAGE_ROLES]
