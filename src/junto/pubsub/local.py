"""The in-process end of a subscription, shared by every backend.

A backend hands each message to `LocalSubscription.deliver`, which never awaits: the message goes
into a bounded buffer and the reader is woken. A reader that lets the buffer fill up is cut off
(overflowed) instead of slowing the publisher or the other subscribers; it reads what was buffered
and then gets `SubscriptionOverflow`, the signal to resynchronise from storage.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from junto.pubsub.base import SubscriptionOverflow


class LocalSubscription:
    """One subscriber's buffer of messages of one channel, read by `async for`."""

    def __init__(
        self, channel: str, max_pending: int, detach: Callable[[LocalSubscription], None]
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"expected max_pending >= 1, got {max_pending}")
        self.channel = channel
        self.max_pending = max_pending
        self._detach = detach
        self._buffer: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._failure: SubscriptionOverflow | None = None

    @property
    def active(self) -> bool:
        """Still receiving messages (not closed, not cut off)."""
        return not self._closed and self._failure is None

    @property
    def overflowed(self) -> bool:
        return self._failure is not None

    def deliver(self, data: bytes) -> None:
        """Buffer one message without waiting; cut the subscriber off if it is too far behind."""
        if not self.active:
            return
        if len(self._buffer) >= self.max_pending:
            self.fail(
                SubscriptionOverflow(
                    f"subscriber of {self.channel!r} fell more than {self.max_pending} "
                    "messages behind"
                )
            )
            return
        self._buffer.append(data)
        self._wakeup.set()

    def fail(self, error: SubscriptionOverflow) -> None:
        """Stop receiving: the reader gets what is buffered, then `error`."""
        if not self.active:
            return
        self._failure = error
        self._wakeup.set()
        self._detach(self)

    async def close(self) -> None:
        """Stop receiving now; the iterator ends (buffered messages are discarded)."""
        if self._closed:
            return
        was_active = self.active
        self._closed = True
        self._buffer.clear()
        self._wakeup.set()
        if was_active:
            self._detach(self)

    def __aiter__(self) -> LocalSubscription:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._buffer:
                return self._buffer.popleft()
            if self._failure is not None:
                raise self._failure
            self._wakeup.clear()
            await self._wakeup.wait()
