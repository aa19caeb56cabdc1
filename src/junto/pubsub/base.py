"""The pub/sub contract every backend honours (tested by tests/pubsub/test_contract.py).

- `publish(channel, data)` delivers `data` to every live subscription of `channel` in every
  process, in publish order per publisher; it never waits for subscribers to read.
- A subscription yields messages published after `subscribe()` returned; it never blocks the
  publisher: a subscription that falls more than `max_pending` messages behind is closed and
  raises `SubscriptionOverflow` from its iterator, so the owner can resynchronise from storage.
- `close()` on a subscription ends its iterator; `close()` on the pub/sub closes them all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class SubscriptionOverflow(Exception):
    """The subscriber fell too far behind and messages were dropped."""


class Subscription(Protocol):
    channel: str

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class PubSub(Protocol):
    name: str

    async def start(self) -> None: ...

    async def publish(self, channel: str, data: bytes) -> None: ...

    async def subscribe(self, channel: str, max_pending: int = 10_000) -> Subscription: ...

    async def close(self) -> None: ...
