"""In-process pub/sub: the default, for a node that runs as a single process."""

from __future__ import annotations

from junto.pubsub.local import LocalSubscription


def as_bytes(data: bytes) -> bytes:
    """Messages are bytes; anything else is a programming error, reported as such."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"expected bytes to publish, got {type(data).__name__}")


class MemoryPubSub:
    """Channels are dicts of local subscriptions; publishing appends to each one's buffer."""

    name = "memory"

    def __init__(self) -> None:
        # dict keys as an ordered set: subscribers get messages in subscription order.
        self._channels: dict[str, dict[LocalSubscription, None]] = {}
        self._closed = False

    async def start(self) -> None:
        pass

    async def publish(self, channel: str, data: bytes) -> None:
        if self._closed:
            raise RuntimeError("expected an open pub/sub, got a closed one")
        data = as_bytes(data)
        subs = self._channels.get(channel)
        if not subs:
            return
        # A delivery may detach an overflowing subscriber, so iterate over a copy.
        for sub in tuple(subs):
            sub.deliver(data)

    async def subscribe(self, channel: str, max_pending: int = 10_000) -> LocalSubscription:
        if self._closed:
            raise RuntimeError("expected an open pub/sub, got a closed one")
        sub = LocalSubscription(channel, max_pending, self._detach)
        self._channels.setdefault(channel, {})[sub] = None
        return sub

    def _detach(self, sub: LocalSubscription) -> None:
        subs = self._channels.get(sub.channel)
        if subs is None:
            return
        subs.pop(sub, None)
        if not subs:
            del self._channels[sub.channel]

    async def close(self) -> None:
        self._closed = True
        for subs in list(self._channels.values()):
            for sub in list(subs):
                await sub.close()
        self._channels.clear()

    def subscriber_count(self, channel: str) -> int:
        """How many live subscriptions `channel` has (for tests and diagnostics)."""
        return len(self._channels.get(channel, ()))
