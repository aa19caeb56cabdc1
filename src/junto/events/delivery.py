"""Delivery after commit: how stored room events reach whoever fans them out.

An event is appended in the writer's transaction (junto.events.log) and handed over only after
that transaction commits, so no client ever sees an event that was not stored. The receiver is a
`Delivery`: the realtime hub in a node, nothing in a tool that only writes. Domain code depends
on this protocol, not on the hub, which sits in a layer above it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from junto.events.log import StoredEvent

log = logging.getLogger("junto.events")


class Delivery(Protocol):
    async def deliver(self, event: StoredEvent) -> None:
        """Hand one committed event to every process's connections."""

    async def conversation_changed(self, conversation_id: int) -> None:
        """A conversation's state or metadata changed (lobbies show it)."""


async def deliver(delivery: Delivery | None, events: Sequence[StoredEvent]) -> None:
    """Hand committed events over, in order. They are stored, so a failure here loses nothing:
    clients catch up when they resume (docs/protocol.md, Resuming); it is logged, not raised."""
    if delivery is None:
        return
    for event in events:
        try:
            await delivery.deliver(event)
        except Exception:
            log.exception(
                "could not deliver event %s of conversation %s", event.id, event.conversation_id
            )
