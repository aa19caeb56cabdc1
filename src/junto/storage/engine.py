"""The async engine and session factory, tuned per backend, and the queue writers wait in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

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


class WriteQueue:
    """Where this process's writers wait their turn before they take a database connection.

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
    """

    def __init__(self, *, one_writer: bool) -> None:
        self.one_writer = one_writer
        # A lock per key while anyone holds or waits for it; dropped after, so keys of
        # conversations that have gone quiet do not accumulate.
        self._turns: dict[Hashable, _Turn] = {}

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
