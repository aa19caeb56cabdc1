"""The async engine and session factory, tuned per backend, and the queue writers wait in
(with group commit for writes that may share a transaction)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def backend_name(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


__all__ = [
    "BUSY_RETRY_AFTER_S",
    "GroupWriter",
    "PoolTimeout",
    "WriteQueue",
    "backend_name",
    "make_engine",
    "make_sessionmaker",
]

# How long a request waits for a pooled connection unless the caller says otherwise (SQLAlchemy's
# default). The web node passes `Settings.db_wait_seconds` instead, so that an exhausted pool
# becomes a quick 503, not a half-minute stall (issue 12).
DEFAULT_POOL_TIMEOUT_S = 30.0
# What a refused client is told to wait (Retry-After, `retry_after`) when the pool had no
# connection for it: long enough for a burst to drain, short enough not to lose the moment.
BUSY_RETRY_AFTER_S = 2


def make_engine(url: str, *, pool_timeout: float = DEFAULT_POOL_TIMEOUT_S) -> AsyncEngine:
    if backend_name(url) == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_timeout=pool_timeout)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers proceed while one writer commits; NORMAL sync is durable across
            # process crashes (the only risk is an OS crash losing the last transactions).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, pool_timeout=pool_timeout
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting


J = TypeVar("J")
R = TypeVar("R")
# Carries out a group of jobs (one transaction for all of them, if it can) and returns each
# job's outcome in order: its result, or the exception its caller gets.
GroupWriter = Callable[[list[J]], Awaitable[list[R | BaseException]]]


@dataclass(eq=False)
class _Pending:
    job: Any
    write: GroupWriter[Any, Any]
    groups: bool  # may share a transaction with the jobs around it
    answer: asyncio.Future[Any]


# The most jobs one transaction takes: enough to absorb a crowd's burst in a few transactions,
# few enough that one group's commit (and its events' fan-out after) stays short.
MAX_GROUP = 100


class WriteQueue:
    """Where this process's writers wait their turn, and group commit for those that may share one.

    A writer that checks out a pooled connection and then waits for a lock (SQLite's single
    write lock in `BEGIN IMMEDIATE`, PostgreSQL's conversation row lock in `SELECT … FOR
    UPDATE`) holds that connection idle while it waits. A burst of posts then takes every
    connection in the pool, and readers, such as another conversation's page, wait for the pool
    behind them (issue 12). Waiting here instead costs no connection, so the pool stays free
    for readers, and the turn is taken in arrival order.

    SQLite admits one writer per database, so all writers share one turn (`one_writer`); on
    PostgreSQL writers queue per key (a conversation), since only the same conversation's
    writers exclude each other. Other processes' writers still queue on the database's own
    lock (SQLite's busy_timeout, PostgreSQL's row lock): this only orders one process's own.

    `submit` queues a job per key (a conversation) for that key's writer task, which carries
    the jobs out in arrival order: a run of consecutive jobs that may be grouped goes to their
    writer together, up to `MAX_GROUP`, as one transaction (group commit). A transaction costs
    about the same few statements whether it stores one post or fifty, and every statement is a
    round trip through the busy event loop, so under a crowd's load this is what keeps posts
    from queueing for seconds one at a time (bench/README.md, "Posting under load").
    """

    def __init__(self, *, one_writer: bool, max_group: int = MAX_GROUP) -> None:
        self.one_writer = one_writer
        self.max_group = max_group
        # A lock per key while anyone holds or waits for it; dropped after, so keys of
        # conversations that have gone quiet do not accumulate.
        self._turns: dict[Hashable, _Turn] = {}
        # Jobs waiting per key, and the task carrying them out while there are any.
        self._queued: dict[Hashable, deque[_Pending]] = {}
        self._writers: dict[Hashable, asyncio.Task[None]] = {}

    @classmethod
    def for_url(cls, url: str) -> WriteQueue:
        return cls(one_writer=backend_name(url) == "sqlite")

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        """Hold the turn of `key` (the whole database on SQLite) for the block."""
        key = None if self.one_writer else key
        turn = self._turns.setdefault(key, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[key]

    async def submit(self, key: Hashable, job: J, write: GroupWriter[J, R], *, groups: bool) -> R:
        """Queue `job` for `key`'s writer and return its outcome once `write` carried it out.

        Jobs with `groups` set and the same `write` that wait together are handed to `write` in
        one call; any other job alone. A caller that is cancelled before its job's group starts
        is left out of it (nothing is done for it); once the group started, the job completes
        whether or not anyone still waits for the answer.
        """
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(key, deque()).append(_Pending(job, write, groups, answer))
        if key not in self._writers:
            self._writers[key] = asyncio.create_task(self._drain(key), name=f"writes {key}")
        return await answer

    def queued(self, key: Hashable) -> int:
        """How many of `key`'s jobs wait for its writer (not counting the group it carries out)."""
        return len(self._queued.get(key, ()))

    async def idle(self) -> None:
        """Wait until every queued job has been carried out (before the engine is disposed)."""
        while self._writers:
            await asyncio.gather(*self._writers.values(), return_exceptions=True)

    async def _drain(self, key: Hashable) -> None:
        queue = self._queued[key]
        try:
            while queue:
                group = self._next_group(queue)
                if group:
                    await self._carry_out(group)
        finally:
            del self._queued[key]
            del self._writers[key]
            _refuse(queue)

    def _next_group(self, queue: deque[_Pending]) -> list[_Pending]:
        """The head of the queue and, if it may be grouped, the jobs like it right behind it."""
        group: list[_Pending] = []
        while queue and len(group) < self.max_group:
            head = queue[0]
            if head.answer.done():  # its caller gave up waiting: nothing was done, drop it
                queue.popleft()
                continue
            if group and not (head.groups and group[0].groups and head.write is group[0].write):
                break
            group.append(queue.popleft())
            if not head.groups:
                break
        return group

    @staticmethod
    async def _carry_out(group: list[_Pending]) -> None:
        try:
            outcomes = await group[0].write([pending.job for pending in group])
        except Exception as exc:  # a writer's own failure: every caller hears of it
            outcomes = [exc] * len(group)
        except BaseException:  # cancelled: whoever still waits must not wait forever
            _refuse(group)
            raise
        for pending, outcome in zip(group, outcomes, strict=True):
            if pending.answer.done():
                continue  # the caller was cancelled meanwhile; the job was done all the same
            if isinstance(outcome, BaseException):
                pending.answer.set_exception(outcome)
            else:
                pending.answer.set_result(outcome)


def _refuse(pendings: Iterable[_Pending]) -> None:
    for pending in pendings:
        if not pending.answer.done():
            pending.answer.set_exception(RuntimeError("the write queue stopped before this ran"))
