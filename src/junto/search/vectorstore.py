"""The vector index over search_passages: one file per node, shared by its processes.

On disk, in the node's data dir (`search/`):
- `vectors-<max id>-<random>.usearch`: every passage with id <= max id, as a usearch HNSW
  index (junto.search.vectors);
- `vectors.json`, the manifest: which file is current and the last id it holds. It is replaced
  by rename, so a reader sees the old file or the new one, never half of either.

Whoever indexes writes (`update_file`: the `search.index` job after each run, and a node
starting on an archive that has no file yet); every serving process reads (`VectorStore`).
Before each search a reader stats the manifest (re-opening the file when it changed) and asks
`SELECT max(id)` whether passages were added (ids only grow: re-indexing a conversation deletes
its rows and inserts new ones); those are loaded into an exact in-memory delta, so a passage is
found the moment its row is committed. Deleted passages stay in the file and are dropped when
candidates are joined back to the table (which also keeps out unpublished conversations); the
writer rebuilds the file when a fifth of it is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from junto.config import Settings
from junto.search.vectors import (
    DIM,
    DTYPE,
    Exact,
    FileIndex,
    Index,
    best,
    load_for_writing,
    new_index,
)
from junto.storage.tables import SearchPassage

log = logging.getLogger(__name__)

MANIFEST = "vectors.json"
# Rows are turned into arrays on the event loop: 5,000 a batch keeps each slice to a few ms.
LOAD_BATCH = 5_000
# The file is rewritten once the delta reaches this share of it: at 3.7 M passages every
# ~37,000 new ones (~100 hours of speech); each reader's exact delta stays under ~60 MB and
# ~3 ms a query.
MERGE_SHARE = 0.01
DEAD_SHARE = 0.2  # rebuild from the table when this share of the file was deleted
BUILD_BATCH = 100_000
# At most this many passages are loaded into a process's exact delta at once (150 MB of float32).
# The writer keeps the delta far smaller (MERGE_SHARE); this bounds an archive that has no file
# yet (indexed before the file existed, or its writer failing): each process would otherwise
# load all of it, ~4 GB at 10,000 hours. The older passages wait for the file meanwhile.
DELTA_LIMIT = 100_000


def folder_of(settings: Settings) -> Path:
    return settings.data_dir / "search"


@dataclass(frozen=True)
class Manifest:
    file: str
    max_id: int
    count: int
    dtype: str = DTYPE


def read_manifest(folder: Path) -> Manifest | None:
    try:
        raw = json.loads((folder / MANIFEST).read_text())
        return Manifest(str(raw["file"]), int(raw["max_id"]), int(raw["count"]),
                        str(raw.get("dtype", DTYPE)))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


class VectorStore:
    """One process's view of a node's vectors: the shared file plus the exact delta."""

    def __init__(self, folder: Path | None, delta_limit: int = DELTA_LIMIT) -> None:
        self.folder = folder
        self.delta_limit = delta_limit
        self.file: FileIndex | None = None
        self.file_max = 0  # ids up to this are in the file
        self.delta = Exact()
        self.loaded_max = 0  # ids up to this are in the file or the delta
        self._stamp: tuple[int, int] | None = None  # the manifest's (inode, mtime) last read
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return (len(self.file) if self.file else 0) + len(self.delta)

    async def refresh(self, db: AsyncSession) -> None:
        # The manifest first, then max(id): the writer commits rows before it names a file
        # holding them, so a file naming more than max(id) is truly another database's.
        seen = self._look()
        newest = await db.scalar(select(func.max(SearchPassage.id))) or 0
        if newest == self.loaded_max and seen is None:
            return
        async with self._lock:
            if seen is not None:
                await asyncio.to_thread(self._open, seen[0], seen[1], newest)
            if newest < self.loaded_max:  # another database (tests reuse URLs): start again
                self._forget()
            if newest > self.loaded_max:
                async for ids, vectors in batches(db, await self._delta_start(db)):
                    self.delta.add(ids, vectors.astype(np.float32))
                self.loaded_max = newest

    async def _delta_start(self, db: AsyncSession) -> int:
        """The id after which rows are loaded: what is loaded so far, unless more than
        delta_limit rows follow it (then only the newest delta_limit)."""
        cutoff = await db.scalar(
            select(SearchPassage.id)
            .where(SearchPassage.id > self.loaded_max)
            .order_by(SearchPassage.id.desc())
            .offset(self.delta_limit)
            .limit(1)
        )
        if cutoff is None:
            return self.loaded_max
        log.warning(
            "search vectors: more than %d passages are not in the vector file; only the newest "
            "are searched by meaning until it is written",
            self.delta_limit,
        )
        return int(cutoff)

    async def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest (id, cosine) to a unit query vector, best first."""
        return await asyncio.to_thread(self.search_now, query, k)

    def search_now(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        parts = [self.delta.search(query, k)]
        if self.file is not None:
            parts.append(self.file.search(query, k))
        return best(parts, k)

    def _look(self) -> tuple[tuple[int, int] | None, Manifest | None] | None:
        """(stamp, manifest) if the manifest changed since it was last read, else None."""
        if self.folder is None:
            return None
        stamp = _stamp(self.folder)
        if stamp == self._stamp:
            return None
        return stamp, read_manifest(self.folder)

    def _open(self, stamp: tuple[int, int] | None, manifest: Manifest | None, newest: int) -> None:
        """Open the manifest's file, unless it is not this database's."""
        assert self.folder is not None
        if manifest is None or manifest.max_id > newest:
            # Gone, or written for rows this database does not have: exact until rewritten.
            self._stamp = stamp
            if self.file is not None:
                self._forget()
            return
        try:
            opened = FileIndex(self.folder / manifest.file)
        except (OSError, RuntimeError, ValueError):
            # Replaced again between reading the manifest and opening: the next search retries.
            log.info("could not open %s; keeping the previous vectors", manifest.file)
            return
        self._stamp = stamp
        self.file, self.file_max = opened, manifest.max_id
        self.delta.drop_through(manifest.max_id)
        self.loaded_max = max(self.loaded_max, manifest.max_id)

    def _forget(self) -> None:
        self.file, self.file_max, self.loaded_max = None, 0, 0
        self.delta = Exact()


def _stamp(folder: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder / MANIFEST)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


async def batches(
    db: AsyncSession, after: int, size: int = BUILD_BATCH
) -> AsyncIterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, float16 vectors) of the passages with id > after that have an embedding, in id
    order, at most `size` rows at a time (an archive's vectors never sit in memory twice)."""
    last = after
    while True:
        ids: list[int] = []
        blobs: list[bytes] = []
        while len(ids) < size:
            rows = (
                await db.execute(
                    select(SearchPassage.id, SearchPassage.embedding)
                    .where(SearchPassage.id > last, SearchPassage.embedding.is_not(None))
                    .order_by(SearchPassage.id)
                    .limit(min(LOAD_BATCH, size - len(ids)))
                )
            ).all()
            if not rows:
                break
            last = rows[-1][0]
            for i, e in rows:
                if e is not None and len(e) == DIM * 2:
                    ids.append(i)
                    blobs.append(e)
        if not ids:
            return
        vectors = np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(ids), DIM)
        yield np.asarray(ids, dtype=np.int64), vectors
        if len(ids) < size and not rows:
            return


# ---- the writer ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _writer_lock(folder: Path) -> Iterator[bool]:
    """Whether this process may write the file now (one writer per node: worker processes run
    `search.index` jobs concurrently). Never waits: a busy writer will merge our rows too, or
    the next job will, and readers find them in their delta meanwhile."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "vectors.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def update_file(
    sessions: async_sessionmaker[AsyncSession],
    folder: Path,
    threads: int = 1,
    force: bool = False,
    dtype: str = DTYPE,
) -> str:
    """Bring the node's vector file up to date with search_passages; what it did, in words.

    Merges the passages newer than the file once they reach MERGE_SHARE of it (or any, with
    `force`), rebuilds from the table when the file is missing, foreign or a fifth dead. The
    build uses `threads` cores (the job leaves the other one to requests)."""
    with _writer_lock(folder) as mine:
        if not mine:
            return "another process is writing the vector file"
        manifest = read_manifest(folder)
        async with sessions() as db:
            newest = await db.scalar(select(func.max(SearchPassage.id))) or 0
            alive = 0
            if manifest is not None and manifest.max_id <= newest:
                alive = await db.scalar(
                    select(func.count())
                    .select_from(SearchPassage)
                    .where(SearchPassage.id <= manifest.max_id)
                ) or 0  # fmt: skip
            newer = await db.scalar(
                select(func.count())
                .select_from(SearchPassage)
                .where(SearchPassage.id > (manifest.max_id if manifest else 0))
            ) or 0  # fmt: skip
        if newest == 0 and manifest is None:
            return "no passages"
        rebuild = (
            manifest is None
            or manifest.max_id > newest
            or manifest.dtype != dtype
            or alive < (1 - DEAD_SHARE) * manifest.count
        )
        if not rebuild and manifest is not None:
            if newer == 0 or (not force and newer < MERGE_SHARE * manifest.count):
                return f"{newer} new passages wait in the readers' exact delta"
        index = new_index(dtype)
        after = 0
        if not rebuild and manifest is not None:
            index = await asyncio.to_thread(load_for_writing, folder / manifest.file)
            after = manifest.max_id
        last = after
        async with sessions() as db:
            async for ids, vectors in batches(db, after):
                await asyncio.to_thread(index.add, ids.astype(np.uint64), vectors, threads=threads)
                last = int(ids[-1])
        name = f"vectors-{last}-{secrets.token_hex(4)}.usearch"
        await asyncio.to_thread(_publish, folder, name, index, Manifest(name, last, len(index)))
        if manifest is not None and manifest.file != name:
            # Readers that mapped the old file keep it until they re-open (Linux keeps a
            # deleted file's pages while they are mapped).
            (folder / manifest.file).unlink(missing_ok=True)
        return f"{'rebuilt' if rebuild else 'merged'}: {len(index)} vectors up to id {last}"


def _publish(folder: Path, name: str, index: Index, manifest: Manifest) -> None:
    """Write the index and then the manifest that names it, each by rename: a reader never
    opens a half-written file."""
    part = folder / f".{name}.part"
    index.save(str(part))
    os.replace(part, folder / name)
    text = json.dumps(manifest.__dict__)
    tmp = folder / f".{MANIFEST}.{secrets.token_hex(4)}"
    tmp.write_text(text)
    os.replace(tmp, folder / MANIFEST)


_stores: dict[tuple[str, Path | None], VectorStore] = {}


def store_for(url: str, folder: Path | None) -> VectorStore:
    """One view per database and folder per process."""
    key = (url, folder)
    if key not in _stores:
        _stores[key] = VectorStore(folder)
    return _stores[key]


def node_store(settings: Settings) -> VectorStore:
    return store_for(settings.effective_database_url, folder_of(settings))


async def warm(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Load the embedding model and open the vectors before the first search needs them.
    An archive without a vector file (a node upgraded from the in-memory index) gets one
    here: the first process to start writes it, the others wait for nothing and read the
    table meanwhile. Best effort: a failure only means the first search loads them itself."""
    from junto.knowledge.embeddings import get_embedder

    try:
        await asyncio.to_thread(get_embedder)
        folder = folder_of(settings)
        if read_manifest(folder) is None:
            log.info("search vectors: %s", await update_file(sessions, folder, force=True))
        async with sessions() as db:
            await node_store(settings).refresh(db)
    except asyncio.CancelledError:
        raise
    except Exception:  # a warm-up must never take the node down
        log.warning("could not preload the search index", exc_info=True)
