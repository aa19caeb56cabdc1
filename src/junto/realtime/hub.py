"""Placeholder hub (filled in by its owner)."""

from __future__ import annotations

from typing import Any


class Hub:
    def __init__(self, node: Any) -> None:
        self.node = node

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
