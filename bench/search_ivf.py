"""The search benchmark's baseline: the hand-written numpy IVF the node used before usearch
(src/junto/search/vectors.py until December 2026), kept here unchanged so that every run
compares the two on the same archive, and `IvfStore`, which loads it as the node's processes
did (every vector read from the table into each process).

The original docstring follows.

An in-memory vector index over the passages' embeddings, one per process.

Exact brute force below EXACT_BELOW vectors (10k x 384 float32 is ~0.5 ms a query). Above it,
an IVF index built with numpy alone:

- the vectors are kept as float16 (half the memory of float32; 2 M passages = 1.5 GB) and, for
  scanning, projected with PCA to REDUCED_DIM float32 dims (2 M x 128 x 4 = 1 GB);
- k-means on a sample picks sqrt(n)-ish centroids (in the reduced space); each vector goes to
  its nearest centroid's list, and the lists are stored contiguously (one slice per list);
- a query scans the NPROBE nearest lists in the reduced space, then re-ranks the best
  max(RERANK, k) by the exact dot product with the full float16 vectors.

New passages arrive with higher ids: `add` appends them to a small exact "tail" that is searched
by brute force beside the lists; when the tail passes a tenth of the index it is rebuilt.
Deleted passages are not removed here: the caller joins candidate ids back to the table, so a
deleted id simply finds no row (and the owner rebuilds when many have gone).
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.search.vectorstore import batches
from junto.storage.tables import SearchPassage

DIM = 384
EXACT_BELOW = 50_000
REDUCED_DIM = 128
NPROBE = 24
RERANK = 400
KMEANS_SAMPLE = 40_000
KMEANS_ITERATIONS = 8


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = x / norms
    return out


class VectorIndex:
    """Thread-safe: searches run in worker threads while the owner adds new rows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ids = np.zeros(0, dtype=np.int64)  # in list order (the rows of `reduced`)
        self.full = np.zeros((0, DIM), dtype=np.float16)  # in the order given to build()
        self.full_ids = np.zeros(0, dtype=np.int64)  # the ids of `full`'s rows
        self.perm = np.zeros(0, dtype=np.int64)  # list position -> row of `full`
        # IVF parts (None while exact):
        self.mean: np.ndarray | None = None
        self.basis: np.ndarray | None = None  # (DIM, REDUCED_DIM)
        self.centroids: np.ndarray | None = None  # (nlist, REDUCED_DIM)
        self.reduced: np.ndarray | None = None  # (n, REDUCED_DIM) float32, list order
        self.offsets = np.zeros(1, dtype=np.int64)  # list i = rows offsets[i]:offsets[i+1]
        # Exact part: everything while small, the newcomers once IVF is built.
        self.tail_ids = np.zeros(0, dtype=np.int64)
        self.tail = np.zeros((0, DIM), dtype=np.float32)

    def __len__(self) -> int:
        return int(self.ids.size + self.tail_ids.size)

    @property
    def is_ivf(self) -> bool:
        return self.centroids is not None

    def build(self, ids: np.ndarray, vectors: np.ndarray, seed: int = 0) -> None:
        """Index these (ids, float16/float32 vectors), replacing whatever was there."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size < EXACT_BELOW:
            with self._lock:
                self.__init__()  # type: ignore[misc]
                self.tail_ids = ids.copy()
                self.tail = np.asarray(vectors, dtype=np.float32).copy()
            return
        parts = _train_ivf(ids, vectors, seed)
        with self._lock:
            (self.ids, self.perm, self.mean, self.basis, self.centroids, self.reduced,
             self.offsets) = parts  # fmt: skip
            self.full = np.asarray(vectors, dtype=np.float16)
            self.full_ids = ids
            self.tail_ids = np.zeros(0, dtype=np.int64)
            self.tail = np.zeros((0, DIM), dtype=np.float32)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self.tail_ids = np.concatenate([self.tail_ids, np.asarray(ids, dtype=np.int64)])
            self.tail = np.vstack([self.tail, np.asarray(vectors, dtype=np.float32)])

    def needs_rebuild(self) -> bool:
        if self.is_ivf:
            return self.tail_ids.size > max(EXACT_BELOW, self.ids.size // 10)
        return self.tail_ids.size >= EXACT_BELOW

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest (id, cosine) to a unit query vector, best first."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        with self._lock:
            cand_ids: list[np.ndarray] = []
            cand_scores: list[np.ndarray] = []
            if self.tail_ids.size:
                cand_ids.append(self.tail_ids)
                cand_scores.append(self.tail @ q)
            if self.centroids is not None:
                i, s = self._ivf(q, k)
                cand_ids.append(i)
                cand_scores.append(s)
        if not cand_ids:
            return []
        all_ids = np.concatenate(cand_ids)
        scores = np.concatenate(cand_scores)
        if scores.size > k:
            top = np.argpartition(-scores, k)[:k]
        else:
            top = np.arange(scores.size)
        top = top[np.argsort(-scores[top])]
        return [(int(all_ids[t]), float(scores[t])) for t in top]

    def _ivf(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.mean is not None and self.basis is not None
        assert self.centroids is not None and self.reduced is not None
        rq = (q - self.mean) @ self.basis
        nearest = np.argpartition(-(self.centroids @ rq), NPROBE)[:NPROBE]
        rows = [np.arange(self.offsets[c], self.offsets[c + 1]) for c in nearest]
        idx = np.concatenate(rows)
        approx = np.concatenate(
            [self.reduced[self.offsets[c] : self.offsets[c + 1]] @ rq for c in nearest]
        )
        rerank = max(RERANK, k)
        if approx.size > rerank:
            keep = np.argpartition(-approx, rerank)[:rerank]
            idx = idx[keep]
        exact = self.full[self.perm[idx]].astype(np.float32) @ q
        return self.ids[idx], exact


def _train_ivf(
    ids: np.ndarray, vectors: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = ids.size
    full = np.asarray(vectors, dtype=np.float16)  # no copy when given float16
    sample = full[rng.choice(n, size=min(n, KMEANS_SAMPLE), replace=False)].astype(np.float32)
    mean = sample.mean(axis=0)
    # PCA: the directions that carry most of the variance keep most of the dot product.
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    basis = np.ascontiguousarray(vt[:REDUCED_DIM].T, dtype=np.float32)
    reduced = np.empty((n, REDUCED_DIM), dtype=np.float32)
    for lo in range(0, n, 65_536):
        reduced[lo : lo + 65_536] = (full[lo : lo + 65_536].astype(np.float32) - mean) @ basis
    nlist = int(min(2048, max(64, np.sqrt(n))))
    rs = (sample - mean) @ basis
    centroids = rs[rng.choice(rs.shape[0], size=nlist, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        assign = _nearest(rs, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, rs)
        counts = np.bincount(assign, minlength=nlist)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    assign = np.concatenate(
        [_nearest(reduced[lo : lo + 65_536], centroids) for lo in range(0, n, 65_536)]
    )
    order = np.argsort(assign, kind="stable")
    offsets = np.zeros(nlist + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(assign, minlength=nlist))
    # The full vectors stay in their given order (`order` maps to them): a sorted copy would
    # double the largest array while building.
    return (ids[order], order, mean, basis, centroids, reduced[order], offsets)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    # argmin ||x - c||^2 = argmax (x.c - |c|^2 / 2)
    scores = x @ centroids.T - 0.5 * (centroids * centroids).sum(axis=1)
    out: np.ndarray = scores.argmax(axis=1)
    return out


class IvfStore:
    """What each node process held before: every vector loaded from the table, IVF built in
    the process (junto.search.query.Vectors)."""

    def __init__(self) -> None:
        self.index = VectorIndex()
        self.loaded_max = 0

    async def refresh(self, db: AsyncSession) -> None:
        newest = await db.scalar(select(func.max(SearchPassage.id))) or 0
        if newest <= self.loaded_max:
            return
        parts = [(i, v) async for i, v in batches(db, self.loaded_max)]
        self.loaded_max = newest
        if not parts:
            return
        ids = np.concatenate([i for i, _ in parts])
        vectors = np.vstack([v for _, v in parts])
        del parts
        await asyncio.to_thread(self.index.build, ids, vectors)

    async def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        return await asyncio.to_thread(self.index.search, query, k)
