"""The process's vector index over search_passages, loaded lazily and kept fresh cheaply.

Before each search one query, `SELECT max(id)`, says whether passages were added (ids only
grow: re-indexing a conversation deletes its rows and inserts new ones). New rows are loaded
and added; deleted ones are left in the index and dropped when candidates are joined back to
the table. Every REFRESH_COUNT_S a `count(*)` (tens of ms over millions of rows, so rarely)
notices many deletions and rebuilds.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from junto.search.vectors import DIM, VectorIndex
from junto.storage.tables import SearchPassage

log = logging.getLogger(__name__)

REFRESH_COUNT_S = 600.0
# Rows are turned into arrays on the event loop: 5,000 a batch keeps each slice to a few ms
# (50,000 held the loop for ~50 ms at a time while a node warmed 10,000 hours of passages).
LOAD_BATCH = 5_000


class VectorStore:
    def __init__(self) -> None:
        self.index = VectorIndex()
        self.loaded_max = 0
        self.loaded = 0
        self._checked_count = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, db: AsyncSession) -> None:
        newest = await db.scalar(select(func.max(SearchPassage.id))) or 0
        stale = False
        if time.monotonic() - self._checked_count > REFRESH_COUNT_S:
            self._checked_count = time.monotonic()
            count = await db.scalar(select(func.count()).select_from(SearchPassage)) or 0
            stale = count < 0.8 * self.loaded
        if newest <= self.loaded_max and not stale and newest > 0:
            return
        async with self._lock:
            if stale or newest < self.loaded_max:
                self.__init__()  # type: ignore[misc]
                self._checked_count = time.monotonic()
            if newest <= self.loaded_max:
                return
            ids, vectors = await load(db, self.loaded_max)
            self.loaded_max = max(newest, self.loaded_max)
            self.loaded += ids.size
            if ids.size == 0:
                return
            if len(self.index) == 0 or self.index.needs_rebuild():
                if len(self.index):
                    old_ids, old = self.index_contents()
                    ids = np.concatenate([old_ids, ids])
                    vectors = np.vstack([old, vectors])
                await asyncio.to_thread(self.index.build, ids, vectors)
            else:
                self.index.add(ids, vectors.astype(np.float32))

    def index_contents(self) -> tuple[np.ndarray, np.ndarray]:
        ix = self.index
        if ix.tail_ids.size == 0:
            return ix.full_ids, ix.full
        return (
            np.concatenate([ix.full_ids, ix.tail_ids]),
            np.vstack([ix.full, ix.tail.astype(np.float16)]),
        )

    async def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self.index.search(query, k)


async def load(db: AsyncSession, after: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float16 vectors) of the passages with id > after that have an embedding.

    The arrays are allocated once from a count (millions of rows: no list of parts to join)."""
    total = await db.scalar(
        select(func.count()).select_from(SearchPassage).where(SearchPassage.id > after)
    )
    ids = np.zeros(int(total or 0), dtype=np.int64)
    vectors = np.zeros((ids.size, DIM), dtype=np.float16)
    n = 0
    last = after
    while n < ids.size:
        rows = (
            await db.execute(
                select(SearchPassage.id, SearchPassage.embedding)
                .where(SearchPassage.id > last, SearchPassage.embedding.is_not(None))
                .order_by(SearchPassage.id)
                .limit(min(LOAD_BATCH, ids.size - n))
            )
        ).all()
        if not rows:
            break
        last = rows[-1][0]
        good = [(i, e) for i, e in rows if e is not None and len(e) == DIM * 2]
        if good:
            k = len(good)
            ids[n : n + k] = [i for i, _ in good]
            vectors[n : n + k] = np.frombuffer(b"".join(e for _, e in good), dtype="<f2").reshape(
                k, DIM
            )
            n += k
    return ids[:n], vectors[:n]


_stores: dict[str, VectorStore] = {}


def store_for(url: str) -> VectorStore:
    """One index per database per process."""
    if url not in _stores:
        _stores[url] = VectorStore()
    return _stores[url]


async def warm(sessions: async_sessionmaker[AsyncSession], url: str) -> None:
    """Load the embedding model and this database's vectors before the first search needs
    them (at 10,000 hours of speech that is a minute, not something a searcher should wait
    for). Best effort: a failure here only means the first search loads them itself."""
    from junto.knowledge.embeddings import get_embedder

    try:
        await asyncio.to_thread(get_embedder)
        async with sessions() as db:
            await store_for(url).refresh(db)
    except asyncio.CancelledError:
        raise
    except Exception:  # a warm-up must never take the node down
        log.warning("could not preload the search index", exc_info=True)
