"""Placeholder (filled in by its owner)."""

from __future__ import annotations


class MemoryPubSub:
    name = "memory"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
