"""What a job handler gets (JobContext) and the two exceptions that steer its outcome.

A handler is `async def handler(ctx: JobContext) -> None`. Returning means success. Raising
`NotReady` means "try again later" and does not count as an attempt; `JobFailed` fails the job
for good with a message people read; any other exception is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from junto.config import Settings
from junto.jobs import queue

log = logging.getLogger("junto.jobs")

# Progress is for people watching a bar: two writes a second are plenty, and a handler that
# reports every frame must not turn into a database load.
PROGRESS_INTERVAL_S = 0.5


class NotReady(Exception):
    """The job cannot run yet (e.g. recordings are still being finalized): run it again in
    `seconds`. Not an attempt; `reason` is shown as the job's note."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason


class JobFailed(Exception):
    """A permanent failure: no retry. The message is shown to operators and hosts."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class JobContext:
    """One attempt at one job, as its handler sees it."""

    job_id: int
    kind: str
    payload: dict[str, Any]
    conversation_id: int | None
    attempt: int
    settings: Settings
    db: queue.Sessions
    worker: str
    lease_s: float = queue.DEFAULT_LEASE_S
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    _last_write: float = field(default=float("-inf"), init=False)
    _pending: tuple[float, str] | None = field(default=None, init=False)
    _flush: asyncio.TimerHandle | None = field(default=None, init=False)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False)
    # Writes happen one at a time, in order; after the final one (>= 1) no report may follow: a
    # thread's last "99 %" queued just before the handler finished must not land after "done".
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _finished: bool = field(default=False, init=False)

    async def progress(self, fraction: float, note: str = "") -> None:
        """Report how far the job is (0..1) with a short note for people.

        Written at most twice a second; a report that comes too soon is held and written when
        the interval has passed (the latest one wins), and a final report (>= 1) at once.
        """
        fraction = min(max(fraction, 0.0), 1.0)
        if self._finished:
            return
        wait = self._last_write + PROGRESS_INTERVAL_S - time.monotonic()
        if fraction >= 1.0 or wait <= 0:
            self._cancel_flush()
            await self._write(fraction, note)
            return
        self._pending = (fraction, note)
        if self._flush is None:
            self._flush = self.loop.call_later(wait, self._flush_pending)

    def progress_from_thread(self, fraction: float, note: str = "") -> None:
        """`progress` for code running in a thread (asyncio.to_thread): hands the report to the
        worker's event loop and returns at once."""
        try:
            self.loop.call_soon_threadsafe(self._spawn, lambda: self.progress(fraction, note))
        except RuntimeError:
            pass  # the worker's loop has closed (it is shutting down): nobody is watching

    async def drain(self) -> None:
        """Write any held report (the worker calls this before it records the outcome)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        held = self._pending
        self._cancel_flush()
        if held is not None:
            await self._write(*held)

    def _cancel_flush(self) -> None:
        self._pending = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def _flush_pending(self) -> None:
        self._flush = None
        if self._pending is not None:
            fraction, note = self._pending
            self._pending = None
            self._spawn(lambda: self._write(fraction, note))

    def _spawn(self, make: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            try:
                await make()
            except Exception:
                # Progress is advisory: a failed write must not fail the job.
                log.warning("job %s: could not record progress", self.job_id, exc_info=True)

        task = self.loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, fraction: float, note: str) -> None:
        async with self._write_lock:
            if self._finished:
                return
            self._finished = fraction >= 1.0
            self._last_write = time.monotonic()
            await queue.progress(
                self.db, self.job_id, self.worker, fraction, note, lease_s=self.lease_s
            )
