"""Token buckets keyed by string (an address, a person, an address+username), in memory.

Per process on purpose: limits protect this process's CPU and storage; with several node
processes an attacker gets at most one bucket per process, which is still bounded.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict

from junto.config import Limits


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
