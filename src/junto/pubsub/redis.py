"""Redis pub/sub: fan-out between the node processes that share one database.

Each process holds exactly two Redis connections, however many channels it follows:

- one for PUBLISH (serialised by a lock; a PUBLISH is one short round trip);
- one subscriber connection multiplexing every channel. A reader task dispatches each message to
  the local subscriptions of its channel; SUBSCRIBE / UNSUBSCRIBE are sent when the first local
  subscriber of a channel comes or the last one goes.

Redis pub/sub is fire-and-forget: a message published while the subscriber connection is down is
lost. So when that connection drops, every local subscription is cut off with
`SubscriptionOverflow` (its owner resynchronises from storage), and a supervisor reconnects with
backoff; new subscriptions made meanwhile wait until Redis is back and has confirmed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from junto.pubsub.base import SubscriptionOverflow
from junto.pubsub.local import LocalSubscription
from junto.pubsub.memory import as_bytes

log = logging.getLogger("junto.pubsub.redis")

# Connection-level failures: a socket error, a timeout or Redis closing the connection.
_NETWORK_ERRORS = (RedisError, OSError, asyncio.TimeoutError, EOFError)


class _ConnectionLost(Exception):
    """The subscriber connection went away while a command was in flight."""


def _redacted(url: str) -> str:
    """The URL without its password, for log and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=f"{user}{host}{port}").geturl()


class RedisPubSub:
    """The `PubSub` contract over Redis (see junto.pubsub.base)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        command_timeout: float = 5.0,
        ping_interval: float = 5.0,
        reconnect_max_delay: float = 2.0,
        subscribe_timeout: float = 30.0,
        start_timeout: float = 10.0,
    ) -> None:
        kwargs: dict[str, Any] = dict(parse_url(url))  # ValueError on an unknown scheme
        self._connection_class: type[AbstractConnection] = kwargs.pop(
            "connection_class", Connection
        )
        # RESP2 keeps pub/sub messages plain arrays on a dedicated connection; our own loops do
        # the retrying, so the driver must not retry behind our back.
        kwargs.update(protocol=2, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0)
        self._kwargs = kwargs
        self.where = _redacted(url)
        self.command_timeout = command_timeout
        self.ping_interval = ping_interval
        self.reconnect_max_delay = reconnect_max_delay
        self.subscribe_timeout = subscribe_timeout
        self.start_timeout = start_timeout

        self._closed = False
        self._pub: AbstractConnection | None = None
        self._pub_lock = asyncio.Lock()

        self._sub: AbstractConnection | None = None  # set while the subscriber connection is up
        self._connected = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        # One SUBSCRIBE / UNSUBSCRIBE / PING in flight at a time, so each reply is unambiguous.
        self._control = asyncio.Lock()
        self._inflight: tuple[bytes, str | None, asyncio.Future[None]] | None = None
        # Channels Redis has confirmed on the current connection.
        self._subscribed: set[str] = set()
        # Local subscriptions receiving messages, and those whose subscribe() awaits confirmation.
        self._armed: dict[str, dict[LocalSubscription, None]] = {}
        self._waiting: dict[str, dict[LocalSubscription, None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.reconnects = 0  # connections re-established after a loss (for tests and logs)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; fail loudly if Redis cannot be reached at start (a misconfiguration)."""
        if self._supervisor is not None:
            return
        self._supervisor = asyncio.create_task(self._supervise(), name="junto-redis-pubsub")
        try:
            async with asyncio.timeout(self.start_timeout):
                await self._connected.wait()
        except TimeoutError:
            await self.close()
            raise ConnectionError(
                f"expected Redis at {self.where} to accept a connection within "
                f"{self.start_timeout} s, got no connection"
            ) from None

    async def close(self) -> None:
        self._closed = True
        self._connected.set()  # wake subscribe() calls waiting for a connection; they raise
        for task in (self._supervisor, *self._background):
            if task is not None:
                task.cancel()
        for task in (self._supervisor, *self._background):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._supervisor = None
        for table in (self._armed, self._waiting):
            for subs in list(table.values()):
                for sub in list(subs):
                    await sub.close()
            table.clear()
        for conn in (self._pub, self._sub):
            if conn is not None:
                with contextlib.suppress(*_NETWORK_ERRORS):
                    await conn.disconnect()
        self._pub = self._sub = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("expected an open pub/sub, got a closed one")

    def _new_connection(self, **overrides: Any) -> AbstractConnection:
        return self._connection_class(**{**self._kwargs, **overrides})

    # ---- publishing --------------------------------------------------------------------------

    async def publish(self, channel: str, data: bytes) -> None:
        """PUBLISH on the shared publishing connection.

        A dropped connection is re-opened once (a Redis restart since the last publish); if Redis
        is unreachable or does not answer, raises ConnectionError: the message is then lost for
        other processes, whose owners find it in storage (see junto.pubsub.base).
        """
        self._check_open()
        data = as_bytes(data)
        async with self._pub_lock:
            last: BaseException | None = None
            for _attempt in range(2):
                if self._pub is None:
                    self._pub = self._new_connection(socket_timeout=self.command_timeout)
                conn = self._pub
                try:
                    await conn.send_command("PUBLISH", channel, data)
                    await conn.read_response(timeout=self.command_timeout)
                    return
                except _NETWORK_ERRORS as exc:
                    last = exc
                    self._pub = None
                    with contextlib.suppress(*_NETWORK_ERRORS):
                        await conn.disconnect(nowait=True)
                    if isinstance(exc, TimeoutError | RedisTimeoutError):
                        break  # it may have been published: retrying could send it twice
            raise ConnectionError(
                f"expected Redis at {self.where} to accept PUBLISH, got {last!r}"
            ) from last

    # ---- subscribing -------------------------------------------------------------------------

    async def subscribe(self, channel: str, max_pending: int = 10_000) -> LocalSubscription:
        """Return once Redis has confirmed the channel, so no later message can be missed."""
        self._check_open()
        if self._supervisor is None:
            raise RuntimeError("expected a started pub/sub (await start() first), got none")
        sub = LocalSubscription(channel, max_pending, self._detach)
        self._waiting.setdefault(channel, {})[sub] = None
        try:
            async with asyncio.timeout(self.subscribe_timeout):
                while sub in self._waiting.get(channel, ()):
                    await self._connected.wait()
                    self._check_open()
                    with contextlib.suppress(_ConnectionLost):
                        await self._sync(channel)
        except TimeoutError:
            await sub.close()
            raise ConnectionError(
                f"expected Redis at {self.where} to confirm the subscription to {channel!r} "
                f"within {self.subscribe_timeout} s, got no confirmation"
            ) from None
        except BaseException:
            await sub.close()
            raise
        return sub

    def _detach(self, sub: LocalSubscription) -> None:
        """A local subscription ended: forget it, and unsubscribe if it was the channel's last."""
        for table in (self._armed, self._waiting):
            subs = table.get(sub.channel)
            if subs is not None:
                subs.pop(sub, None)
                if not subs:
                    del table[sub.channel]
        if (
            not self._closed
            and self._sub is not None
            and sub.channel in self._subscribed
            and not self._wanted(sub.channel)
        ):
            self._spawn(self._sync_quietly(sub.channel))

    def _wanted(self, channel: str) -> bool:
        return bool(self._armed.get(channel)) or bool(self._waiting.get(channel))

    def _arm(self, channel: str) -> None:
        """Redis delivers `channel` to us now: waiting subscriptions start receiving."""
        waiting = self._waiting.pop(channel, None)
        if waiting:
            self._armed.setdefault(channel, {}).update(waiting)

    async def _sync(self, channel: str) -> None:
        """Make the Redis subscription of `channel` match whether anyone here wants it."""
        async with self._control:
            wanted, subscribed = self._wanted(channel), channel in self._subscribed
            if wanted and subscribed:
                self._arm(channel)
            elif wanted:
                await self._command(b"subscribe", channel, "SUBSCRIBE", channel)
            elif subscribed:
                await self._command(b"unsubscribe", channel, "UNSUBSCRIBE", channel)

    async def _sync_quietly(self, channel: str) -> None:
        with contextlib.suppress(_ConnectionLost):
            await self._sync(channel)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _command(self, kind: bytes, channel: str | None, *args: str) -> None:
        """Send one control command on the subscriber connection and await its reply.

        Called with `_control` held. No reply within the timeout means the connection is dead.
        """
        conn = self._sub
        # Checked together with the send (no await in between): the driver would otherwise
        # silently reconnect a dropped connection that no reader task is reading.
        if conn is None or not conn.is_connected:
            raise _ConnectionLost
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight = (kind, channel, reply)
        try:
            try:
                await conn.send_command(*args, check_health=False)
                async with asyncio.timeout(self.command_timeout):
                    await reply
            except _ConnectionLost:
                raise
            except _NETWORK_ERRORS as exc:
                self._drop(conn, f"{args[0]} failed: {exc!r}")
                raise _ConnectionLost from exc
        finally:
            self._inflight = None

    # ---- the subscriber connection -----------------------------------------------------------

    async def _supervise(self) -> None:
        """Keep the subscriber connection up: connect, read until it drops, back off, repeat."""
        delay = 0.05
        ever_connected = False
        while not self._closed:
            conn = self._new_connection(socket_timeout=None)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
            except Exception as exc:  # network errors, but also refused AUTH or a bad db number
                log.warning(
                    "cannot reach Redis at %s (%r); retry in %.2f s", self.where, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_delay)
                continue
            delay = 0.05
            if ever_connected:
                self.reconnects += 1
                log.warning("reconnected to Redis at %s", self.where)
            ever_connected = True
            await self._serve_connection(conn)

    async def _serve_connection(self, conn: AbstractConnection) -> None:
        self._sub = conn
        self._reader = asyncio.create_task(self._read(conn), name="junto-redis-reader")
        pinger = asyncio.create_task(self._keepalive(conn), name="junto-redis-ping")
        self._connected.set()  # subscribe() calls waiting for a connection now (re)subscribe
        reason = "connection closed"
        try:
            await self._reader
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closed or (current is not None and current.cancelling()):
                raise
            reason = "no answer from Redis"
        except _NETWORK_ERRORS as exc:
            reason = repr(exc)
        except Exception as exc:
            # A bug here must not end reconnection for good: log it, start afresh.
            log.exception("unexpected error reading from Redis at %s", self.where)
            reason = f"unexpected {exc!r}"
        finally:
            pinger.cancel()
            self._reader.cancel()
            self._connection_lost(conn, reason)
            with contextlib.suppress(*_NETWORK_ERRORS, asyncio.CancelledError):
                await conn.disconnect(nowait=True)

    def _connection_lost(self, conn: AbstractConnection, reason: str) -> None:
        """Messages may have been missed: cut every receiving subscription off."""
        if self._sub is not conn:
            return
        self._sub = None
        self._connected.clear()
        self._subscribed.clear()
        if self._inflight is not None and not self._inflight[2].done():
            self._inflight[2].set_exception(_ConnectionLost())
        if self._closed:
            return
        log.warning("lost the connection to Redis at %s: %s", self.where, reason)
        error = SubscriptionOverflow(
            f"lost the connection to Redis at {self.where} ({reason}); messages may be missing"
        )
        for subs in list(self._armed.values()):
            for sub in list(subs):
                sub.fail(error)
        self._armed.clear()

    def _drop(self, conn: AbstractConnection, reason: str) -> None:
        """Give up on a connection that stopped answering; the supervisor reconnects."""
        if self._sub is conn and self._reader is not None and not self._reader.done():
            log.warning("dropping the Redis connection to %s: %s", self.where, reason)
            self._reader.cancel()

    async def _read(self, conn: AbstractConnection) -> None:
        while True:
            try:
                reply = await conn.read_response(timeout=math.inf)
            except ResponseError as exc:  # an error reply to a control command
                self._resolve(None, None, exc)
                continue
            self._handle(reply)

    def _handle(self, reply: Any) -> None:
        if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
            subs = self._armed.get(reply[1].decode())
            if subs:
                data: bytes = reply[2]
                for sub in tuple(subs):
                    sub.deliver(data)
            return
        if isinstance(reply, list) and reply:
            kind = reply[0]
            channel = reply[1].decode() if len(reply) > 1 and kind != b"pong" else None
            if kind == b"subscribe" and channel is not None:
                self._subscribed.add(channel)
                self._arm(channel)
            elif kind == b"unsubscribe" and channel is not None:
                self._subscribed.discard(channel)
            self._resolve(kind, channel, None)
        elif reply in (b"PONG", "PONG"):  # PING outside subscribed mode
            self._resolve(b"pong", None, None)

    def _resolve(self, kind: bytes | None, channel: str | None, error: Exception | None) -> None:
        if self._inflight is None:
            return
        want_kind, want_channel, reply = self._inflight
        if reply.done():
            return
        if error is not None:
            reply.set_exception(error)
        elif kind == want_kind and channel == want_channel:
            reply.set_result(None)

    async def _keepalive(self, conn: AbstractConnection) -> None:
        """PING now and then, so a silently dead connection is noticed and replaced."""
        with contextlib.suppress(_ConnectionLost):
            while True:
                await asyncio.sleep(self.ping_interval)
                async with self._control:
                    await self._command(b"pong", None, "PING")

    # ---- introspection (tests, diagnostics) --------------------------------------------------

    def subscriber_count(self, channel: str) -> int:
        return len(self._armed.get(channel, ()))

    @property
    def redis_channels(self) -> frozenset[str]:
        """Channels this process is subscribed to on Redis right now."""
        return frozenset(self._subscribed)
