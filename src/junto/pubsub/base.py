"""The pub/sub contract every backend honours (tested by tests/pubsub/test_contract.py).

- `publish(channel, data)` delivers `data` (bytes, byte for byte) to every live subscription of
  `channel` in every process, in publish order per publisher; it never waits for subscribers to
  read. A backend that cannot reach its broker raises `ConnectionError` (the message is then lost
  for other processes; see below).
- `subscribe()` returns once the subscription is live: every message published after it returned
  is yielded (or the subscription fails as below). Messages published before may or may not be.
- A subscription never blocks the publisher: one that falls more than `max_pending` messages
  behind stops receiving, yields what it had buffered and then raises `SubscriptionOverflow`.
  A backend also raises it when messages may have been lost for another reason (the Redis
  backend: its connection dropped). Either way the owner resynchronises from storage, in this
  order: subscribe again FIRST, then read what it missed from storage, then drop duplicates by
  id; reading storage first would leave a window in which messages are lost.
- `close()` on a subscription ends its iterator at once (buffered messages are discarded); it is
  idempotent. `close()` on the pub/sub closes every subscription; publishing or subscribing
  after that raises RuntimeError.
- Backends: `memory://` (one process) and `redis://` (many processes; each holds one publishing
  and one subscribed connection, whatever the number of channels).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class SubscriptionOverflow(Exception):
    """Messages were dropped (the subscriber fell behind, or the broker connection was lost)."""


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
