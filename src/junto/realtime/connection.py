"""One WebSocket client: a bounded send queue drained by its own writer task.

Fan-out never awaits a client: it calls `push()` with a frame that was serialised once for
everyone and moves on. Each connection's writer task drains its queue at whatever pace the client
reads. A client that falls `send_queue_max` frames behind is closed with 4008 ("too slow") and
resumes like any reconnecting client, so one slow client never delays the others.

The fast path: when a connection's writer is idle (nothing queued), `push` starts the send right
away by stepping the server's `send` coroutine once. When the socket has room (nearly always)
that step completes the send, and no task has to be woken: waking one writer task per client per
event was the largest cost of fan-out after the socket writes themselves (profiled at 3,000
clients). When the socket is full the step suspends, and the writer task finishes that send and
takes over, exactly as if the frame had been queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from starlette.websockets import WebSocket

log = logging.getLogger("junto.realtime")

# An ASGI `websocket.send` message. Built once per frame and shared by every connection's
# queue: the server only reads it.
Message = dict[str, Any]
# (room-stream id or 0, message). The id lets a connection drop live events it already got in
# its replay or snapshot (see `skip_upto`).
Item = tuple[int, Message]

CLOSE_TOO_SLOW = 4008
CLOSE_GOING_AWAY = 1001
# How long a close frame may wait behind a full socket buffer before we give up on it.
CLOSE_TIMEOUT_SECONDS = 10.0


def message(text: str) -> Message:
    return {"type": "websocket.send", "text": text}


def control(type_: str, **fields: Any) -> Message:
    """A control frame (no id), e.g. `control("pong")`."""
    return message(orjson.dumps({"type": type_, **fields}).decode())


def error(code: str, text: str, ref: str | None = None) -> Message:
    fields: dict[str, Any] = {"code": code, "message": text}
    if ref is not None:
        fields["ref"] = ref
    return control("error", **fields)


class Connection:
    """A client's outgoing side. `push` is for the fan-out; the writer task does the awaiting."""

    __slots__ = (
        "_closing",
        "_inflight",
        "_on_close",
        "_queue",
        "_waiter",
        "_writer",
        "close_code",
        "closed",
        "info",
        "max_queue",
        "presence_id",
        "skip_upto",
        "ws",
    )

    def __init__(self, ws: WebSocket, max_queue: int, info: Any = None) -> None:
        self.ws = ws
        self.max_queue = max_queue
        self.info = info  # whatever the owner wants to remember (presence identity)
        self._queue: deque[Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._on_close: list[Callable[[Connection], None]] = []
        self._closing: asyncio.Task[None] | None = None
        # A send started by `push` that suspended (socket full), for the writer to finish.
        self._inflight: tuple[Coroutine[Any, Any, None], Any] | None = None
        # Room events with id <= skip_upto were already sent in the replay or snapshot.
        self.skip_upto = 0
        # The id of the last presence.state frame queued (they must increase per connection).
        self.presence_id = 0
        self.closed = False
        self.close_code: int | None = None

    # ---- fan-out side (never awaits) --------------------------------------------------------

    def push(self, item: Item) -> None:
        if self.closed:
            return
        if len(self._queue) >= self.max_queue:
            log.info("closing a client %d frames behind: too slow", len(self._queue))
            self.close(CLOSE_TOO_SLOW, "too slow")
            return
        waiter = self._waiter
        if waiter is not None and not self._queue:
            # The writer is idle: nothing is ahead of this frame, so try to send it now.
            event_id = item[0]
            if event_id and event_id <= self.skip_upto:
                return
            if self._send_now(item[1]):
                return
        else:
            self._queue.append(item)
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _send_now(self, msg: Message) -> bool:
        """Step the send once; True if it completed (or the client is gone), else it is left
        in flight for the writer."""
        coro = self.ws.send(msg)
        try:
            suspended = coro.send(None)
        except StopIteration:
            return True
        except Exception:
            self.detach()  # the client went away
            return True
        self._inflight = (coro, suspended)
        return False

    def send(self, msg: Message) -> None:
        """Queue a control frame (ack, error, pong, presence) behind what is already queued."""
        self.push((0, msg))

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ---- lifecycle --------------------------------------------------------------------------

    def on_close(self, callback: Callable[[Connection], None]) -> None:
        self._on_close.append(callback)

    def start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def close(self, code: int, reason: str = "") -> None:
        """Stop sending and close the socket with `code` (in the background; never awaits)."""
        if self._stop(code):
            self._closing = asyncio.get_running_loop().create_task(self._send_close(code, reason))

    async def wait_closed(self) -> None:
        """Wait until a close started by `close()` went out (or gave up).

        The endpoint must not return before that: the server drops the socket when the
        handler returns, and the client would see an abnormal closure instead of our code.
        """
        if self._closing is not None:
            await asyncio.shield(self._closing)

    def detach(self) -> None:
        """The socket is gone (client disconnected): stop everything without sending a close."""
        self._stop(None)

    def _stop(self, close_code: int | None) -> bool:
        """Stop sending and tell the close callbacks, once; False if it had already stopped."""
        if self.closed:
            return False
        self.closed = True
        self.close_code = close_code
        self._queue.clear()
        if self._writer is not None and not self._writer.done():
            # The writer may be parked waiting for the socket to drain; a cancelled send has
            # written nothing (uvicorn waits for writability before framing anything).
            self._writer.cancel()
        if self._waiter is not None and not self._waiter.done():
            # Normally cancelled along with the writer, which parks on it; doing it here too
            # means no way of stopping can leave it pending.
            self._waiter.cancel()
        self._drop_inflight()
        for callback in self._on_close:
            try:
                callback(self)
            except Exception:
                log.exception("connection close callback failed")
        self._on_close.clear()
        return True

    def _drop_inflight(self) -> None:
        if self._inflight is not None:
            self._inflight[0].close()
            self._inflight = None

    async def _send_close(self, code: int, reason: str) -> None:
        # The close frame queues behind whatever the socket still holds: a client that never
        # reads may never see it, so give up after a while (uvicorn then drops the socket).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.ws.close(code, reason)

    async def _write_loop(self) -> None:
        queue = self._queue
        send = self.ws.send
        loop = asyncio.get_running_loop()
        try:
            while not self.closed:
                if self._inflight is not None:
                    coro, suspended = self._inflight
                    self._inflight = None
                    await _finish(coro, suspended)
                while queue:
                    event_id, msg = queue.popleft()
                    if event_id and event_id <= self.skip_upto:
                        continue
                    await send(msg)
                if self.closed:
                    return
                self._waiter = loop.create_future()
                await self._waiter
        except asyncio.CancelledError:
            pass
        except Exception:
            # The client went away mid-send (uvicorn raises ClientDisconnected/OSError and
            # Starlette turns it into WebSocketDisconnect); the reader will notice too.
            self.detach()


async def _finish(coro: Coroutine[Any, Any, None], suspended: Any) -> None:
    """Drive a coroutine that `push` started and that suspended, to its end.

    It suspended on an asyncio future (or yielded None to let others run); we await that on
    its behalf and resume it, passing any exception (cancellation included) into it.
    """
    try:
        while True:
            try:
                if suspended is None:
                    await asyncio.sleep(0)
                else:
                    # What asyncio.Task does with a future its coroutine yields: take over
                    # the wait (awaiting a future that is still flagged as blocking fails).
                    suspended._asyncio_future_blocking = False
                    await suspended
            except BaseException as exc:
                suspended = coro.throw(exc)
            else:
                suspended = coro.send(None)
    except StopIteration:
        return
