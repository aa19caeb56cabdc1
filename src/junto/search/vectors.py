"""The vector side of search: an HNSW graph by usearch in a file, and an exact delta.

The archive's passage vectors live in one usearch file (`FileIndex`), quantised to int8 (a
quarter of float32: 3.7 M passages = 1.4 GB of vectors plus ~0.5 GB of graph) and opened by
every serving process with `view=True`: the file is memory-mapped, so the node's processes
share the kernel's page cache instead of holding a copy each (the numpy IVF it replaced kept
5 GB resident in every process at 10,000 hours). Passages added since the file was written are
searched exactly (`Exact`, float32 brute force) until the `search.index` job merges them in
(junto.search.vectorstore).

int8 distances are approximate (about +-0.01 in cosine): the hybrid search uses the index only
to find candidates and scores them with their stored float16 vectors (junto.search.query).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np

# onnxruntime (the embedder's) must be loaded before usearch: importing onnxruntime 1.32 after
# usearch 2.26's compiled module crashes the process (SIGSEGV, measured here), and every
# process that searches embeds queries too.
with contextlib.suppress(ImportError):
    import onnxruntime  # noqa: F401
from usearch.index import Index as Index  # re-exported: import usearch through here only

DIM = 384
DTYPE = "i8"
CONNECTIVITY = 16
EXPANSION_ADD = 64
# Candidates examined per query. The hybrid search asks for 100 (1,000 when filtered; usearch
# then widens to the count asked). On the benchmark's 1,000-hour archive (275,647 passages,
# 62 labelled queries) recall@10 was 0.945 at 200, 0.965 at 400 and 0.994 at 800, for 1.5,
# 2.3 and 3.5 ms of CPU a query (median): 800, since recall falls as the archive grows.
EXPANSION_SEARCH = 800


def one_blas_thread() -> None:
    """Let numpy's BLAS use one thread in this process (the node's web process calls it).

    OpenBLAS splits even a matrix-vector product over every core and its threads spin-wait
    afterwards: in a process serving concurrent requests that bought nothing and cost a lot (a
    scan of one query went from 1.7 ms to 13-30 ms at p95 on 2 cores, 10,000 hours). Parallelism
    comes from concurrent requests and worker processes instead."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def new_index(dtype: str = DTYPE) -> Index:
    return Index(
        ndim=DIM,
        metric="cos",
        dtype=dtype,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


def load_for_writing(path: Path) -> Index:
    """A saved index read whole into memory, to add to and save again."""
    index = Index.restore(
        str(path), view=False, connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD
    )
    if index is None:
        raise ValueError(f"{path} is not a usearch index")
    return index


class FileIndex:
    """A saved usearch index opened read-only and memory-mapped.

    usearch gives a single-query search one scratch context (thread 0), so two Python threads
    searching one index at once would share it: searches are serialised by a lock (each takes
    about a millisecond)."""

    def __init__(self, path: Path) -> None:
        # No key -> slot table: searching never looks a key up, and the table would be built
        # in each process's private memory (tens of MB at millions of passages).
        index = Index.restore(
            str(path),
            view=True,
            enable_key_lookups=False,
            expansion_search=EXPANSION_SEARCH,  # not stored in the file
        )
        if index is None:
            raise ValueError(f"{path} is not a usearch index")
        self.index = index
        self.path = path
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.index)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosines) of the k nearest, best first (cosines from int8: approximate)."""
        if len(self.index) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        with self._lock:
            found = self.index.search(q, k, threads=1)
        ids = np.asarray(found.keys, dtype=np.int64)
        return ids, 1.0 - np.asarray(found.distances, dtype=np.float32)


class Exact:
    """Brute force over float32 vectors: the passages the file does not hold yet (and, on a
    node whose file has not been written, every passage). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ids = np.zeros(0, dtype=np.int64)
        self.vectors = np.zeros((0, DIM), dtype=np.float32)

    def __len__(self) -> int:
        return int(self.ids.size)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
            self.vectors = np.vstack([self.vectors, np.asarray(vectors, dtype=np.float32)])

    def drop_through(self, last_id: int) -> None:
        """Forget the ids up to last_id (a new file holds them now)."""
        with self._lock:
            keep = self.ids > last_id
            self.ids = self.ids[keep]
            self.vectors = self.vectors[keep]

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        with self._lock:
            ids, scores = self.ids, self.vectors @ q
        if scores.size > k:
            top = np.argpartition(-scores, k)[:k]
            return ids[top], scores[top]
        return ids, scores


def best(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> list[tuple[int, float]]:
    """The k best (id, cosine) over several (ids, cosines) parts, best first."""
    if not parts:
        return []
    ids = np.concatenate([i for i, _ in parts])
    scores = np.concatenate([s for _, s in parts])
    top = np.argpartition(-scores, k)[:k] if scores.size > k else np.arange(scores.size)
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(ids[t]), float(scores[t])) for t in top]
