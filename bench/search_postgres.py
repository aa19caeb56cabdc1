"""The search benchmark's PostgreSQL leg: the same archive copied from the SQLite database
(`bench/search.py --postgres URL`), so both engines answer the same queries over the same rows.

The copy goes through COPY (asyncpg) into a fresh database made by the real migrations: the
generated `tsvector` column and its GIN index are filled by PostgreSQL itself, as in a node.
The baseline is a bare full-text query ranked by ts_rank_cd over every match (what a naive
implementation does), with the same sanitised words.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from junto.search import keyword
from junto.storage.migrate import upgrade

CONVERSATION_COLUMNS = (
    "id slug title description language visibility state started_at ended_at published_at "
    "created_by created_at updated_at last_seq slow_mode_seconds stage_locked"
).split()
PASSAGE_COLUMNS = (
    "id conversation_id user_id start_ms end_ms text language embedding created_at".split()
)
BATCH = 50_000


def database_url(admin_url: str, hours: int) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/junto_bench_search_{hours}h"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


async def copy(sqlite_path: Path, admin_url: str, hours: int) -> tuple[str, float]:
    """A fresh PostgreSQL database with the archive's rows; (its URL, seconds the copy took)."""
    url = database_url(admin_url, hours)
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(_plain(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await asyncio.to_thread(upgrade, url)
    src = sqlite3.connect(sqlite_path)
    pg = await asyncpg.connect(_plain(url))
    began = time.perf_counter()
    try:
        users = src.execute(
            "SELECT id, username, display_name, colour, bio, is_admin, is_guest, created_at "
            "FROM users"
        ).fetchall()
        await pg.copy_records_to_table(
            "users",
            records=[(*u[:5], bool(u[5]), bool(u[6]), _ts(u[7])) for u in users],
            columns=["id", "username", "display_name", "colour", "bio", "is_admin", "is_guest",
                     "created_at"],
        )  # fmt: skip
        convs = src.execute(f"SELECT {', '.join(CONVERSATION_COLUMNS)} FROM conversations")  # noqa: S608
        await pg.copy_records_to_table(
            "conversations",
            records=[(*c[:7], _ts(c[7]), _ts(c[8]), _ts(c[9]), c[10], _ts(c[11]), _ts(c[12]),
                      c[13], c[14], bool(c[15])) for c in convs],
            columns=CONVERSATION_COLUMNS,
        )  # fmt: skip
        people = src.execute(
            "SELECT conversation_id, user_id, role, blocked, updated_at FROM participants"
        )
        await pg.copy_records_to_table(
            "participants",
            records=[(*p[:3], bool(p[3]), _ts(p[4])) for p in people],
            columns=["conversation_id", "user_id", "role", "blocked", "updated_at"],
        )
        rows = src.execute(f"SELECT {', '.join(PASSAGE_COLUMNS)} FROM search_passages ORDER BY id")  # noqa: S608
        while batch := rows.fetchmany(BATCH):
            await pg.copy_records_to_table(
                "search_passages",
                records=[(*r[:8], _ts(r[8])) for r in batch],
                columns=PASSAGE_COLUMNS,
            )
        for table in ("users", "conversations", "search_passages"):
            await pg.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        await pg.execute("VACUUM ANALYZE")
    finally:
        await pg.close()
        src.close()
    return url, time.perf_counter() - began


class Baseline:
    """A bare full-text query ranked over every match, on its own connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: asyncpg.Connection | None = None

    async def __call__(self, query: str) -> None:
        if self.conn is None:
            self.conn = await asyncpg.connect(_plain(self.url))
        words = keyword.tsquery_text(query) or ""
        await self.conn.fetch(
            "SELECT id FROM search_passages WHERE tsv @@ websearch_to_tsquery('english', $1) "
            "ORDER BY ts_rank_cd(tsv, websearch_to_tsquery('english', $1)) DESC LIMIT 20",
            words,
        )

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


async def drop(admin_url: str, hours: int) -> None:
    name = database_url(admin_url, hours).rpartition("/")[2]
    admin = await asyncpg.connect(_plain(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await admin.close()
