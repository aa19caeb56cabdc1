"""Fan-out between node processes: one interface, interchangeable backends."""

from __future__ import annotations

from junto.pubsub.base import PubSub, Subscription


def make_pubsub(url: str) -> PubSub:
    """`memory://` (one process, the default) or `redis://host:port/db`."""
    if url.startswith("memory://"):
        from junto.pubsub.memory import MemoryPubSub

        return MemoryPubSub()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from junto.pubsub.redis import RedisPubSub

        return RedisPubSub(url)
    raise ValueError(f"unsupported pub/sub URL {url!r}: expected memory:// or redis://")


__all__ = ["PubSub", "Subscription", "make_pubsub"]
