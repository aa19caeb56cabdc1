"""Token buckets keyed by string (an address, a person, an address+username).

`TokenBucket` is in memory, per process on purpose: those limits protect this process's CPU and
sockets, are checked on every message, and with several node processes an attacker gets at most
one bucket per process, which is still bounded. `take_shared` keeps its buckets in the database
instead, for the rare, costly things a person makes (snippets, conversations, invites): their
work lands on the whole node (ffmpeg on the shared cores, rows for everyone), so one person's
allowance must not grow with the number of processes (issue 12).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import ColumnElement, case, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from junto.config import Limits
from junto.storage.tables import RateBucket


class TokenBucket:
    """`burst` actions at once, refilled at `per_second`; memory stays bounded.

    A key untouched for `burst / per_second` seconds has a full bucket, which is the same as
    having none, so it is forgotten. Keys are kept in least-recently-used order, which makes that
    sweep cheap (it stops at the first key still refilling). `max_keys` caps memory against a
    flood of distinct keys by forgetting the least recently used ones.
    """

    def __init__(self, burst: int, per_second: float, *, max_keys: int = 100_000) -> None:
        if burst < 1:
            raise ValueError(f"expected burst >= 1, got {burst}")
        if per_second <= 0:
            raise ValueError(f"expected per_second > 0, got {per_second}")
        self.burst = burst
        self.per_second = per_second
        self.max_keys = max_keys
        self._idle_after = burst / per_second
        # key -> (tokens left, time of last update)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one token for `key`: 0.0 if allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        self._forget_idle(now)
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._enforce_cap()
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.per_second

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_idle(self, now: float) -> None:
        while self._buckets:
            key, (_tokens, last) = next(iter(self._buckets.items()))
            if now - last < self._idle_after:
                return
            del self._buckets[key]

    def _enforce_cap(self) -> None:
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


class PostingLimiters:
    """What people post in rooms, per person: one bucket for members, a stricter one for guests."""

    def __init__(self, limits: Limits) -> None:
        self.members = TokenBucket(limits.member_burst, limits.member_per_second)
        self.guests = TokenBucket(limits.guest_burst, limits.guest_per_second)

    def take(self, key: str, *, guest: bool) -> float:
        return (self.guests if guest else self.members).take(key)


def address_key(host: str) -> str:
    """The key one client is limited by: its IPv4 address, or its IPv6 /64.

    An IPv6 client is usually given a whole /64 (RFC 6177) and can pick any address in it, so
    limiting single IPv6 addresses would limit nothing.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a test client's name, "unknown"): taken as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AddressConnections:
    """WebSockets per client address: at most `cap` open at once, opened at the bucket's rate.

    Without it one address could open thousands of sockets, each counted as a watcher and each
    holding a connection's memory. Per process, like every limit here.
    """

    def __init__(self, cap: int, burst: int, per_second: float) -> None:
        if cap < 1:
            raise ValueError(f"expected cap >= 1, got {cap}")
        self.cap = cap
        self.rate = TokenBucket(burst, per_second)
        self._open: dict[str, int] = {}

    @classmethod
    def from_limits(cls, limits: Limits) -> AddressConnections:
        return cls(limits.ws_per_address, limits.ws_connect_burst, limits.ws_connect_per_second)

    def admit(self, address: str) -> str | None:
        """Count a new socket from `address` and return None, or return why it is refused.

        Every admitted socket must be `release`d when it closes.
        """
        key = address_key(address)
        if self._open.get(key, 0) >= self.cap:
            return "too many connections from your address; try again later"
        wait = self.rate.take(key)
        if wait > 0:
            return f"too many connections from your address; try again in {math.ceil(wait)} s"
        self._open[key] = self._open.get(key, 0) + 1
        return None

    def release(self, address: str) -> None:
        key = address_key(address)
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)  # no entry per address that has gone: memory stays bounded

    def open_from(self, address: str) -> int:
        return self._open.get(address_key(address), 0)


# ---- shared between processes (the database) ----------------------------------------------------


def _refilled(burst: int, per_second: float, now: float) -> ColumnElement[Any]:
    """The stored bucket's tokens at `now`, in SQL: refilled since `updated`, capped at `burst`.
    A clock behind the stored time (another machine's) refills nothing rather than draining."""
    elapsed = case((RateBucket.updated < now, literal(now) - RateBucket.updated), else_=0.0)
    grown = RateBucket.tokens + elapsed * per_second
    return case((grown > burst, float(burst)), else_=grown)


async def take_shared(
    db: AsyncSession, key: str, burst: int, per_second: float, now: float | None = None
) -> float:
    """Spend one token of the shared bucket `key` (the caller commits): 0.0 if allowed, else the
    seconds until one is available.

    One statement, an upsert that changes the row only when a token is left, so concurrent
    takers in any number of processes are serialised by the row (PostgreSQL's row lock, SQLite's
    write lock) and never both spend the last token. Taken in the caller's transaction, a token
    is spent only if what it pays for is stored: a refused request costs nothing.
    """
    if burst < 1 or per_second <= 0:
        raise ValueError(f"expected burst >= 1 and per_second > 0, got {burst}, {per_second}")
    now = time.time() if now is None else now
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    refilled = _refilled(burst, per_second, now)
    fresh = insert(RateBucket).values(key=key, tokens=float(burst - 1), updated=now)
    spend = fresh.on_conflict_do_update(
        index_elements=[RateBucket.key],
        set_={"tokens": refilled - 1.0, "updated": now},
        where=refilled >= 1.0,
    ).returning(RateBucket.tokens)
    if (await db.execute(spend)).first() is not None:
        return 0.0
    left = await db.scalar(select(refilled).where(RateBucket.key == key))
    return max((1.0 - float(left or 0.0)) / per_second, 0.0)


async def forget_full_buckets(db: AsyncSession, idle_s: float, now: float | None = None) -> int:
    """Delete shared buckets untouched for `idle_s` (the caller commits): by then they have
    refilled, and a full bucket is the same as none. Returns how many."""
    now = time.time() if now is None else now
    result = await db.execute(delete(RateBucket).where(RateBucket.updated < now - idle_s))
    return int(result.rowcount)  # type: ignore[attr-defined]


class RateLimited(Exception):
    """Someone made too many of something just now: answered 429 with Retry-After."""

    def __init__(self, what: str, wait_s: float) -> None:
        self.retry_after = max(1, math.ceil(wait_s))
        self.message = f"too many {what} just now; try again in {self.retry_after} seconds"
        super().__init__(self.message)


# kind -> (what people are told they made too many of, the Limits fields' prefix)
SHARED_KINDS: dict[str, tuple[str, str]] = {
    "snippet": ("snippets", "snippet_create"),
    "conversation": ("conversations", "conversation_create"),
    "invite": ("invite links", "invite_create"),
}


def shared_rate(limits: Limits, kind: str) -> tuple[int, float]:
    """(burst, per_second) of a shared kind, from the settings."""
    prefix = SHARED_KINDS[kind][1]
    return int(getattr(limits, f"{prefix}_burst")), float(getattr(limits, f"{prefix}_per_second"))


async def admit(db: AsyncSession, limits: Limits, kind: str, user_id: int) -> None:
    """Spend one of `user_id`'s tokens for making a `kind` (the caller commits, with what it
    made), or raise RateLimited."""
    burst, per_second = shared_rate(limits, kind)
    wait = await take_shared(db, f"{kind}:{user_id}", burst, per_second)
    if wait > 0:
        raise RateLimited(SHARED_KINDS[kind][0], wait)


def longest_refill(limits: Limits) -> float:
    """Seconds after which every shared bucket left alone is full again."""
    rates = (shared_rate(limits, kind) for kind in SHARED_KINDS)
    return max(burst / per_second for burst, per_second in rates)
