"""Search benchmark (issue 5): hybrid search latency over a synthetic archive of N hours.

For each size (`--hours 1000 10000` by default) it builds a SQLite database with the real
migrations (FTS5 table and triggers included) and fills it with published, public, one-hour
conversations of two to four speakers talking about two of twenty topics at 150 words a minute
(bench/search_corpus.py). Sentences get word-exact times; passages are cut from them by the
real `junto.search.passages.cut` and bulk-inserted into `search_passages`, so the FTS5 index is
built by the real triggers.

Embeddings, honestly: computing MiniLM vectors for millions of passages would take days on two
cores, so a pool of `--pool` distinct generated sentences is embedded for real, and each passage's
vector is the normalised mean of its sentences' real vectors (close to, not the same as, what
the model gives for the joined text). Queries are embedded for real, at query time.

Then:
- index build: the FTS5 inserts (+ `optimize`) and the process's vector index
  (`junto.search.vectorstore.VectorStore.refresh`: load the float16 blobs, PCA, k-means, lists);
- query latency: the full hybrid `junto.search.query.search` (query embedding, FTS5 bm25
  candidates, IVF candidates, fusion, the join that keeps published public passages, highlight)
  over a fixed set of keyword and paraphrase queries, p50/p95 after a warm-up pass;
- baseline in the same run: a bare `SELECT rowid FROM search_fts WHERE search_fts MATCH ?
  ORDER BY rank LIMIT 20` for the same queries (same sanitised expression);
- recall@10 of the IVF index against exact brute force for the paraphrase queries; peak RSS.

    python bench/search.py                 # 1,000 and 10,000 hours (the larger takes a while)
    python bench/search.py --hours 2 --pool 300 --rounds 1   # the smoke test

The last line is one JSON object with at least {"hours", "segments", "index_build_s",
"p50_ms", "p95_ms", "baseline_fts_p95_ms"} for the largest size, and "runs" for every size.
Target: p95 under 50 ms at 10,000 hours on 2 cores. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_corpus as corpus
import search_postgres
from junto.knowledge.embeddings import get_embedder
from junto.knowledge.sentences import Sentence
from junto.search import keyword, vectorstore
from junto.search.passages import cut
from junto.search.query import Filters, search
from junto.search.vectors import one_blas_thread
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade

MS_PER_WORD = 400  # 150 words a minute
HOUR_MS = 3_600_000
STAMP = "2026-01-01 00:00:00.000000"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def embed_pool(size: int) -> tuple[list[str], list[str], np.ndarray, float]:
    texts, topics = corpus.pool(size)
    t0 = time.perf_counter()
    vectors = get_embedder().embed(texts)
    return texts, topics, vectors, time.perf_counter() - t0


def conversation(
    rng: random.Random, cid: int, speakers: list[int], by_topic: dict[str, list[int]],
    texts: list[str], topics: list[str],
) -> tuple[list[Any], list[list[int]], int]:  # fmt: skip
    """One hour of talk: (passages, pool indices of each passage's sentences, segments)."""
    choices = by_topic[topics[0]] + by_topic[topics[1]]
    sentences: list[Sentence] = []
    used: list[int] = []
    t = 0
    seq = 0
    while t < HOUR_MS:
        speaker = rng.choice(speakers)
        for _ in range(rng.randint(1, 8)):
            i = rng.choice(choices)
            n = texts[i].count(" ") + 1
            sentences.append(Sentence(texts[i], t, t + n * MS_PER_WORD - 50, speaker, seq))
            used.append(i)
            t += n * MS_PER_WORD
        t += 1000  # a pause between turns
        seq += 1
    passages = cut(sentences)
    groups: list[list[int]] = []
    ptr = 0
    for p in passages:  # cut() keeps order: walk the sentences each passage joined
        group = [used[ptr]]
        length = len(texts[used[ptr]])
        ptr += 1
        while length < len(p.text):
            length += 1 + len(texts[used[ptr]])
            group.append(used[ptr])
            ptr += 1
        groups.append(group)
    return passages, groups, seq


def passage_vectors(groups: list[list[int]], pool_vectors: np.ndarray) -> np.ndarray:
    idx = np.full((len(groups), 3), -1, dtype=np.int64)
    for row, g in enumerate(groups):
        idx[row, : len(g)] = g[:3]
    padded = np.vstack([pool_vectors, np.zeros((1, pool_vectors.shape[1]), np.float32)])
    summed = padded[idx].sum(axis=1)
    summed /= np.linalg.norm(summed, axis=1, keepdims=True)
    return summed.astype("<f2")


def build(path: Path, hours: int, pool: tuple[list[str], list[str], np.ndarray]) -> dict[str, Any]:
    texts, pool_topics, pool_vectors = pool
    by_topic: dict[str, list[int]] = {}
    for i, topic in enumerate(pool_topics):
        by_topic.setdefault(topic, []).append(i)
    names = list(corpus.TOPICS)
    rng = random.Random(hours)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    users = [(i + 1, name.lower(), name, "#336699", "", 0, 0, STAMP)
             for i, name in enumerate(corpus.NAMES)]  # fmt: skip
    db.executemany(
        "INSERT INTO users (id, username, display_name, colour, bio, is_admin, is_guest, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        users,
    )
    insert_s = 0.0
    passages_n = segments = 0
    for cid in range(1, hours + 1):
        speakers = rng.sample(range(1, len(users) + 1), rng.randint(2, 4))
        topics = rng.sample(names, 2)
        day = f"2025-{(cid % 12) + 1:02d}-{(cid % 28) + 1:02d} 10:00:00.000000"
        passages, groups, segs = conversation(rng, cid, speakers, by_topic, texts, topics)
        vectors = passage_vectors(groups, pool_vectors)
        rows = [(cid, None, p.speaker_id, p.start_ms, p.end_ms, p.text, "en", v.tobytes(), STAMP)
                for p, v in zip(passages, vectors, strict=True)]  # fmt: skip
        t0 = time.perf_counter()
        db.execute(
            "INSERT INTO conversations (id, slug, title, description, language, visibility, "
            "state, started_at, ended_at, published_at, created_by, created_at, updated_at, "
            "last_seq, slow_mode_seconds, stage_locked) VALUES (?, ?, ?, '', 'en', 'public', "
            "'published', ?, ?, ?, ?, ?, ?, 0, 0, 0)",
            (cid, f"b{cid:09d}", f"{topics[0].title()} and {topics[1]}", day, day, day,
             speakers[0], day, day),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO participants (conversation_id, user_id, role, blocked, updated_at) "
            "VALUES (?, ?, 'speaker', 0, ?)",
            [(cid, s, day) for s in speakers],
        )
        db.executemany(
            "INSERT INTO search_passages (conversation_id, snippet_id, user_id, start_ms, end_ms, "
            "text, language, embedding, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if cid % 50 == 0 or cid == hours:
            db.commit()
        insert_s += time.perf_counter() - t0
        passages_n += len(passages)
        segments += segs
        if cid % 500 == 0:
            print(f"  {cid}/{hours} hours, {passages_n:,} passages", flush=True)
    t0 = time.perf_counter()
    db.execute("INSERT INTO search_fts(search_fts) VALUES ('optimize')")
    db.commit()
    optimize_s = time.perf_counter() - t0
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return {"passages": passages_n, "segments": segments, "fts_insert_s": insert_s,
            "fts_optimize_s": optimize_s}  # fmt: skip


class SqliteBaseline:
    """The bare FTS5 query: every match ranked by bm25, with the same sanitised words."""

    def __init__(self, path: Path) -> None:
        self.raw = sqlite3.connect(path)

    async def __call__(self, query: str) -> None:
        self.raw.execute(
            "SELECT rowid FROM search_fts WHERE search_fts MATCH ? ORDER BY rank LIMIT 20",
            (keyword.fts5_expression(query),),
        ).fetchall()

    async def close(self) -> None:
        self.raw.close()


class Bare(Protocol):
    async def __call__(self, query: str) -> None: ...
    async def close(self) -> None: ...


async def measure(url: str, bare: Bare, rounds: int, limit_recall: int) -> dict[str, Any]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    one_blas_thread()  # as the node's web process does at start
    vectorstore._stores.clear()
    store = vectorstore.store_for(url)
    t0 = time.perf_counter()
    async with sessions() as db:
        await store.refresh(db)
    vector_s = time.perf_counter() - t0
    rss_after_index = psutil.Process().memory_info().rss / 2**20
    queries = corpus.KEYWORD_QUERIES + corpus.PARAPHRASE_QUERIES
    embedder = get_embedder()
    embedder.embed(["warm up"])
    hybrid: list[float] = []
    kw_ms: list[float] = []
    vec_ms: list[float] = []
    hits = 0
    for round_ in range(rounds + 1):  # round 0 warms caches, not counted
        for q in queries:
            async with sessions() as db:
                t = time.perf_counter()
                results = await search(db, url, q, Filters(), "relevance", 20, 0)
                took = (time.perf_counter() - t) * 1000
                if round_:
                    hybrid.append(took)
                    hits += bool(results.hits)
                    t = time.perf_counter()
                    await keyword.candidates(db, q, 100)
                    kw_ms.append((time.perf_counter() - t) * 1000)
            if round_:
                vector = embedder.embed([q])[0]
                t = time.perf_counter()
                store.index.search(vector, 100)
                vec_ms.append((time.perf_counter() - t) * 1000)
    # Filtered: one speaker (a tenth of the passages): the wider candidate pool's cost.
    filtered: list[float] = []
    narrow = Filters(speaker=corpus.NAMES[0])
    for round_ in range(rounds + 1):
        for q in queries:
            async with sessions() as db:
                t = time.perf_counter()
                await search(db, url, q, narrow, "relevance", 20, 0)
                if round_:
                    filtered.append((time.perf_counter() - t) * 1000)
    baseline: list[float] = []
    for round_ in range(rounds + 1):
        for q in queries:
            t = time.perf_counter()
            await bare(q)
            if round_:
                baseline.append((time.perf_counter() - t) * 1000)
    await bare.close()
    recall = _recall(store, corpus.PARAPHRASE_QUERIES[:limit_recall])
    await engine.dispose()
    return {
        "vector_build_s": vector_s, "ivf": store.index.is_ivf, "queries": len(hybrid),
        "answered": hits, "p50_ms": pct(hybrid, 50), "p95_ms": pct(hybrid, 95),
        "max_ms": max(hybrid), "keyword_p95_ms": pct(kw_ms, 95),
        "vector_p95_ms": pct(vec_ms, 95), "filtered_p50_ms": pct(filtered, 50),
        "filtered_p95_ms": pct(filtered, 95), "baseline_fts_p50_ms": pct(baseline, 50),
        "baseline_fts_p95_ms": pct(baseline, 95), "ivf_recall_at_10": recall,
        "rss_after_index_mb": round(rss_after_index),
    }  # fmt: skip


async def on_postgres(path: Path, args: argparse.Namespace, hours: int) -> dict[str, Any]:
    """The same archive and queries on PostgreSQL (search_postgres.py)."""
    print("  PostgreSQL: copying the archive...", flush=True)
    url, copy_s = await search_postgres.copy(path, args.postgres, hours)
    print(f"    copied in {copy_s:.1f} s (tsvector and GIN index by PostgreSQL); querying...",
          flush=True)  # fmt: skip
    vectorstore._stores.clear()  # the SQLite index is not needed any more: free its memory
    measured = await measure(url, search_postgres.Baseline(url), args.rounds, 0)
    if not args.keep:
        await search_postgres.drop(args.postgres, hours)
    pg = {"copy_s": round(copy_s, 1)} | {
        k: round(v, 3) if isinstance(v, float) else v
        for k, v in measured.items()
        if k not in ("ivf_recall_at_10", "rss_after_index_mb")
    }
    print(
        f"    hybrid search p50 {pg['p50_ms']:.1f} ms, p95 {pg['p95_ms']:.1f} ms "
        f"(max {pg['max_ms']:.1f}); parts p95: keyword {pg['keyword_p95_ms']:.1f} ms, vector "
        f"{pg['vector_p95_ms']:.1f} ms\n"
        f"    filtered by one speaker: p50 {pg['filtered_p50_ms']:.1f} ms, "
        f"p95 {pg['filtered_p95_ms']:.1f} ms\n"
        f"    baseline bare full-text query ranked by ts_rank_cd: "
        f"p50 {pg['baseline_fts_p50_ms']:.1f} ms, p95 {pg['baseline_fts_p95_ms']:.1f} ms",
        flush=True,
    )
    return pg


def _recall(store: vectorstore.VectorStore, queries: list[str]) -> float:
    ids, full = store.index_contents()
    vectors = get_embedder().embed(queries)
    found = 0
    for q in vectors:
        scores = np.concatenate(
            [full[lo : lo + 200_000].astype(np.float32) @ q for lo in range(0, len(ids), 200_000)]
        )
        exact = set(ids[np.argpartition(-scores, 10)[:10]].tolist())
        found += len(exact & {i for i, _ in store.index.search(q, 10)})
    return found / (10 * len(queries)) if queries else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--pool", type=int, default=4000, help="sentences embedded for real")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the queries")
    parser.add_argument("--recall-queries", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    parser.add_argument("--keep", action="store_true", help="keep the databases (needs --dir)")
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="also copy each archive into PostgreSQL (a database per size, made here) and "
        "measure it there, e.g. postgresql+asyncpg://junto@127.0.0.1:5432/postgres",
    )
    args = parser.parse_args()
    print(f"Embedding a pool of {args.pool} generated sentences for real...", flush=True)
    texts, topics, pool_vectors, embed_s = embed_pool(args.pool)
    print(f"  {args.pool / embed_s:.0f} sentences/s ({embed_s:.1f} s)")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:  # --keep moves them into --dir
        for hours in args.hours:
            path = Path(tmp) / f"search-{hours}h.db"
            url = f"sqlite+aiosqlite:///{path}"
            upgrade(url)
            print(f"\n{hours:,} hours: generating and inserting (FTS5 by the triggers)...",
                  flush=True)  # fmt: skip
            t0 = time.perf_counter()
            built = build(path, hours, (texts, topics, pool_vectors))
            generate_s = time.perf_counter() - t0 - built["fts_insert_s"] - built["fts_optimize_s"]
            print("  building the vector index and querying...", flush=True)
            measured = asyncio.run(
                measure(url, SqliteBaseline(path), args.rounds, args.recall_queries)
            )
            fts_s = built["fts_insert_s"] + built["fts_optimize_s"]
            run = {"hours": hours, "segments": built["segments"], "passages": built["passages"],
                   "index_build_s": round(fts_s + measured["vector_build_s"], 1),
                   "fts_build_s": round(fts_s, 1), "generate_s": round(generate_s, 1),
                   "db_mb": round(path.stat().st_size / 2**20), **measured}  # fmt: skip
            run["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            for k, v in list(run.items()):
                if isinstance(v, float):
                    run[k] = round(v, 3)
            runs.append(run)
            print(
                f"  {run['passages']:,} passages from {run['segments']:,} segments, "
                f"database {run['db_mb']:,} MB\n"
                f"  index build {run['index_build_s']} s (FTS5 {run['fts_build_s']} s, vectors "
                f"{measured['vector_build_s']:.1f} s, {'IVF' if run['ivf'] else 'exact'})\n"
                f"  hybrid search p50 {run['p50_ms']:.1f} ms, p95 {run['p95_ms']:.1f} ms "
                f"(max {run['max_ms']:.1f}) over {run['queries']} queries "
                f"({run['answered']} with results)\n"
                f"    parts p95: keyword {run['keyword_p95_ms']:.1f} ms, vector "
                f"{run['vector_p95_ms']:.1f} ms\n"
                f"  filtered by one speaker: p50 {run['filtered_p50_ms']:.1f} ms, "
                f"p95 {run['filtered_p95_ms']:.1f} ms\n"
                f"  baseline bare FTS5 MATCH: p50 {run['baseline_fts_p50_ms']:.1f} ms, "
                f"p95 {run['baseline_fts_p95_ms']:.1f} ms\n"
                f"  IVF recall@10 vs exact: {run['ivf_recall_at_10']:.2f}; RSS after index "
                f"{run['rss_after_index_mb']:,} MB, peak {run['peak_rss_mb']:,} MB",
                flush=True,
            )
            if args.postgres:
                run["postgres"] = asyncio.run(on_postgres(path, args, hours))
            if not args.keep:
                path.unlink(missing_ok=True)
            else:
                kept = (args.dir or Path(tmp)) / path.name
                path.rename(kept) if kept != path else None
    last = runs[-1]
    summary = {k: last[k] for k in ("hours", "segments", "passages", "index_build_s", "p50_ms",
                                    "p95_ms", "baseline_fts_p95_ms", "peak_rss_mb")}  # fmt: skip
    summary.update(
        embeddings=f"pool of {args.pool} real MiniLM sentence vectors; passage = mean of its "
        "sentences'; queries embedded for real",
        target_p95_ms=50,
        met=bool(last["p95_ms"] < 50 and last["peak_rss_mb"] < 8192),
        runs=runs,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
