"""Search benchmark (issues 5 and 12): hybrid search over a synthetic archive of N hours, with
the node's usearch vector file and, in the same run, the numpy IVF it replaced.

For each size (`--hours 1000 10000` by default) it builds a SQLite database with the real
migrations (FTS5 table and triggers included) and fills it with published, public, one-hour
conversations of two to four speakers talking about two of twenty topics at 150 words a minute
(bench/search_corpus.py: a Zipf-distributed vocabulary of ~32,000 English word forms, sentences
of many shapes). Sentences get word-exact times; passages are cut from them by the real
`junto.search.passages.cut` and bulk-inserted into `search_passages`, so the FTS5 index is
built by the real triggers.

Embeddings, honestly: computing MiniLM vectors for millions of passages would take days on two
cores, so a pool of `--pool` distinct generated sentences is embedded for real, and each
passage's vector is the normalised mean of its sentences' real vectors (close to, not the same
as, what the model gives for the joined text). Queries are embedded for real, at query time.

Then:
- the vector file, as the `search.index` job writes it (`vectorstore.update_file`: int8 HNSW);
- labels: each query's ten nearest passages by exact cosine over every vector (exhaustive);
- two fresh processes, one per engine, each serving as a node process would: the usearch one
  maps the file (`VectorStore`), the IVF one loads every vector and builds the old index
  (bench/search_ivf.py). Each runs the full hybrid `junto.search.query.search` (query
  embedding, keyword candidates, vector candidates, scoring, the join that keeps published
  public passages, highlighting) over the keyword, word and paraphrase queries, p50/p95 after a
  warm-up pass, also filtered by one speaker; recall@10 against the labels (the index's 100
  candidates re-scored by their stored vectors, as the search does); and its resident memory
  (RSS, and USS: what is private to the process, the rest being the shared file's pages);
- the bare FTS5 `MATCH ... ORDER BY rank` for the same queries, in the usearch process.

    python bench/search.py                 # 1,000 and 10,000 hours (the larger takes a while)
    python bench/search.py --hours 2 --pool 300 --rounds 1   # the smoke test

The last line is one JSON object for the largest size, with at least {"hours", "p95_ms",
"recall_at_10", "rss_mb_per_process", "baseline_p95_ms"} (the baseline is the IVF, same
archive, same queries), and "runs" for every size. Targets: p95 < 50 ms at 10,000 hours,
recall@10 >= 0.95, RSS <= 1 GB per node process, on 2 cores. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_corpus as corpus
import search_ivf
import search_postgres
from junto.knowledge.embeddings import get_embedder
from junto.knowledge.sentences import Sentence
from junto.search import keyword, vectorstore
from junto.search.passages import cut
from junto.search.query import Filters, Vectors, search
from junto.search.vectors import one_blas_thread
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade
from junto.storage.tables import SearchPassage

MS_PER_WORD = 400  # 150 words a minute
HOUR_MS = 3_600_000
STAMP = "2026-01-01 00:00:00.000000"
K = 10
CANDIDATES = 100  # what the hybrid search asks the vector side for (junto.search.query)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def embed_pool(size: int) -> tuple[list[str], list[str], np.ndarray, float]:
    """The pool's sentences (with slots), their topics, and the real vectors of one filling."""
    texts, topics = corpus.pool(size)
    filler = corpus.Filler(seed=size)
    t0 = time.perf_counter()
    vectors = get_embedder().embed([filler.fill(t) for t in texts])
    return texts, topics, vectors, time.perf_counter() - t0


def conversation(
    rng: random.Random, filler: corpus.Filler, speakers: list[int],
    by_topic: dict[str, list[int]], texts: list[str], topics: list[str],
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
            text = filler.fill(texts[i])  # the long tail's words drawn afresh
            n = text.count(" ") + 1
            sentences.append(Sentence(text, t, t + n * MS_PER_WORD - 50, speaker, seq))
            used.append(i)
            t += n * MS_PER_WORD
        t += 1000  # a pause between turns
        seq += 1
    passages = cut(sentences)
    groups: list[list[int]] = []
    ptr = 0
    for p in passages:  # cut() keeps order: walk the sentences each passage joined
        group = [used[ptr]]
        length = len(sentences[ptr].text)
        ptr += 1
        while length < len(p.text):
            length += 1 + len(sentences[ptr].text)
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
    out: np.ndarray = summed.astype("<f2")
    return out


def build(path: Path, hours: int, pool: tuple[list[str], list[str], np.ndarray]) -> dict[str, Any]:
    texts, pool_topics, pool_vectors = pool
    by_topic: dict[str, list[int]] = {}
    for i, topic in enumerate(pool_topics):
        by_topic.setdefault(topic, []).append(i)
    names = list(corpus.TOPICS)
    rng = random.Random(hours)
    filler = corpus.Filler(seed=hours)
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
    said: list[str] = []  # the first hours' passages, for the word queries
    words: set[str] = set()
    for cid in range(1, hours + 1):
        speakers = rng.sample(range(1, len(users) + 1), rng.randint(2, 4))
        topics = rng.sample(names, 2)
        day = f"2025-{(cid % 12) + 1:02d}-{(cid % 28) + 1:02d} 10:00:00.000000"
        passages, groups, segs = conversation(rng, filler, speakers, by_topic, texts, topics)
        vectors = passage_vectors(groups, pool_vectors)
        rows = [(cid, None, p.speaker_id, p.start_ms, p.end_ms, p.text, "en", v.tobytes(), STAMP)
                for p, v in zip(passages, vectors, strict=True)]  # fmt: skip
        if len(said) < 3000:
            said += [p.text for p in passages]
        if cid % 10 == 1:  # the vocabulary in use, from a tenth of the hours
            for p in passages:
                words.update(keyword.words(p.text))
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
            "fts_optimize_s": optimize_s, "said": said,
            "distinct_words_in_a_tenth": len(words)}  # fmt: skip


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


# ---- labels: exhaustive ranking -----------------------------------------------------------------


async def label(url: str, queries: list[str]) -> list[dict[str, Any]]:
    """Each query's K nearest passages by exact cosine over every stored vector (float16, as
    the search scores them), and the K-th best cosine (ties at it count as found)."""
    q = get_embedder().embed(queries).astype(np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best_scores = np.zeros((len(queries), 0), dtype=np.float32)
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as db:
        async for ids, vectors in vectorstore.batches(db, 0):
            scores = q @ vectors.astype(np.float32).T
            all_ids = np.hstack([best_ids, np.broadcast_to(ids, scores.shape)])
            all_scores = np.hstack([best_scores, scores])
            top = np.argsort(-all_scores, axis=1)[:, :K]
            best_ids = np.take_along_axis(all_ids, top, axis=1)
            best_scores = np.take_along_axis(all_scores, top, axis=1)
    await engine.dispose()
    return [{"query": text, "ids": ids.tolist(), "kth": float(scores[-1])}
            for text, ids, scores in zip(queries, best_ids, best_scores, strict=True)]  # fmt: skip


async def recall(
    sessions: Any, store: Vectors, labels: list[dict[str, Any]]
) -> float:  # fmt: skip
    """Recall@K against the labels: the index's CANDIDATES re-scored by their stored vectors
    (as junto.search.query does), the best K kept; one that ties the K-th label counts."""
    embedder = get_embedder()
    found = 0
    for item in labels:
        q = embedder.embed([item["query"]])[0].astype(np.float32)
        candidates = [i for i, _ in await store.search(q, CANDIDATES)]
        async with sessions() as db:
            rows = (
                await db.execute(
                    select(SearchPassage.id, SearchPassage.embedding).where(
                        SearchPassage.id.in_(candidates)
                    )
                )
            ).all()
        exact = sorted(
            ((float(np.frombuffer(e, dtype="<f2").astype(np.float32) @ q), i) for i, e in rows),
            reverse=True,
        )[:K]
        labelled = set(item["ids"])
        found += sum(1 for score, i in exact if i in labelled or score >= item["kth"] - 1e-3)
    return found / (K * len(labels)) if labels else 1.0


# ---- one serving process ----------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    """Run in a fresh process (`--serve ENGINE`): what one node process costs and answers."""
    work = json.loads(Path(args.work).read_text())
    url, queries, labels = work["url"], work["queries"], work["labels"]
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    one_blas_thread()  # as the node's web process does at start
    embedder = get_embedder()
    embedder.embed(["warm up"])
    store: Vectors
    if args.serve == "usearch":
        store = vectorstore.store_for(url, Path(work["folder"]))
    else:
        store = search_ivf.IvfStore()
    t0 = time.perf_counter()
    async with sessions() as db:
        await store.refresh(db)
    open_s = time.perf_counter() - t0
    rss_open = psutil.Process().memory_info().rss / 2**20
    hybrid: list[float] = []
    kw_ms: list[float] = []
    vec_ms: list[float] = []
    hits = 0
    for round_ in range(args.rounds + 1):  # round 0 warms caches, not counted
        for q in queries:
            async with sessions() as db:
                t = time.perf_counter()
                results = await search(db, store, q, Filters(), "relevance", 20, 0)
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
                await store.search(vector, CANDIDATES)
                vec_ms.append((time.perf_counter() - t) * 1000)
    # Filtered: one speaker (a tenth of the passages): the wider candidate pool's cost.
    filtered: list[float] = []
    narrow = Filters(speaker=corpus.NAMES[0])
    for round_ in range(args.rounds + 1):
        for q in queries:
            async with sessions() as db:
                t = time.perf_counter()
                await search(db, store, q, narrow, "relevance", 20, 0)
                if round_:
                    filtered.append((time.perf_counter() - t) * 1000)
    out: dict[str, Any] = {}
    if args.serve == "usearch":  # the bare full-text baseline, once per run
        bare: Bare = (
            search_postgres.Baseline(url) if url.startswith("postgresql")
            else SqliteBaseline(Path(url.split("///", 1)[1]))
        )  # fmt: skip
        baseline: list[float] = []
        for round_ in range(args.rounds + 1):
            for q in queries:
                t = time.perf_counter()
                await bare(q)
                if round_:
                    baseline.append((time.perf_counter() - t) * 1000)
        await bare.close()
        out |= {"baseline_fts_p50_ms": pct(baseline, 50), "baseline_fts_p95_ms": pct(baseline, 95)}
    got = await recall(sessions, store, labels)
    await engine.dispose()
    memory = psutil.Process().memory_full_info()
    return out | {
        "open_s": open_s, "queries": len(hybrid), "answered": hits, "p50_ms": pct(hybrid, 50),
        "p95_ms": pct(hybrid, 95), "max_ms": max(hybrid), "keyword_p95_ms": pct(kw_ms, 95),
        "vector_p95_ms": pct(vec_ms, 95), "filtered_p50_ms": pct(filtered, 50),
        "filtered_p95_ms": pct(filtered, 95), "recall_at_10": got,
        "rss_after_open_mb": round(rss_open), "rss_mb": round(memory.rss / 2**20),
        "uss_mb": round(memory.uss / 2**20),
        # RSS = anonymous memory (this process's alone: heap, the IVF's arrays, the delta) +
        # file pages (libraries, the mapped vector file: the kernel's page cache, one copy for
        # every process; USS counts them too while no other process has touched them).
        "rss_anon_mb": round(_status_kb("RssAnon") / 1024),
        "rss_file_mb": round(_status_kb("RssFile") / 1024),
        "peak_rss_mb": round(_high_water_kb() / 1024),
    }  # fmt: skip


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _high_water_kb() -> int:
    """This process's peak RSS. Not getrusage's ru_maxrss: Linux carries it over an exec, so a
    child started from a 1 GB parent reported the parent's peak."""
    return _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def in_process(engine: str, work: Path, rounds: int) -> dict[str, Any]:
    """`serve` in a fresh Python process, as a node process would start."""
    run = subprocess.run(
        [sys.executable, __file__, "--serve", engine, "--work", str(work), "--rounds",
         str(rounds)],
        capture_output=True, text=True,
    )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"the {engine} process failed:\n{run.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in answer.items()}


def describe(name: str, m: dict[str, Any]) -> str:
    return (
        f"  {name}: hybrid p50 {m['p50_ms']:.1f} ms, p95 {m['p95_ms']:.1f} ms (max "
        f"{m['max_ms']:.1f}) over {m['queries']} queries ({m['answered']} with results); "
        f"parts p95: keyword {m['keyword_p95_ms']:.1f} ms, vector {m['vector_p95_ms']:.1f} ms\n"
        f"    filtered by one speaker: p50 {m['filtered_p50_ms']:.1f} ms, p95 "
        f"{m['filtered_p95_ms']:.1f} ms; recall@10 {m['recall_at_10']:.3f}; opened in "
        f"{m['open_s']:.1f} s; RSS {m['rss_mb']:,} MB ({m['rss_anon_mb']:,} MB its own, "
        f"{m['rss_file_mb']:,} MB file pages; peak {m['peak_rss_mb']:,} MB)"
    )


async def vector_file(url: str, folder: Path) -> float:
    engine = make_engine(url)
    t0 = time.perf_counter()
    said = await vectorstore.update_file(make_sessionmaker(engine), folder, threads=0, force=True)
    took = time.perf_counter() - t0
    await engine.dispose()
    print(f"  vector file: {said} in {took:.1f} s", flush=True)
    return took


def one_size(args: argparse.Namespace, tmp: Path, hours: int, pool: Any) -> dict[str, Any]:
    path = tmp / f"search-{hours}h.db"
    url = f"sqlite+aiosqlite:///{path}"
    folder = tmp / f"vectors-{hours}h"
    upgrade(url)
    print(f"\n{hours:,} hours: generating and inserting (FTS5 by the triggers)...", flush=True)
    t0 = time.perf_counter()
    built = build(path, hours, pool)
    generate_s = time.perf_counter() - t0 - built["fts_insert_s"] - built["fts_optimize_s"]
    file_s = asyncio.run(vector_file(url, folder))
    file_mb = sum(f.stat().st_size for f in folder.glob("*.usearch")) / 2**20
    queries = (corpus.KEYWORD_QUERIES + corpus.word_queries(built.pop("said"))
               + corpus.PARAPHRASE_QUERIES)  # fmt: skip
    print(f"  labelling {len(queries)} queries by exhaustive ranking...", flush=True)
    labels = asyncio.run(label(url, queries))
    work = tmp / f"work-{hours}h.json"
    work.write_text(json.dumps({"url": url, "folder": str(folder), "queries": queries,
                                "labels": labels}))  # fmt: skip
    print("  a fresh process mapping the usearch file...", flush=True)
    new = in_process("usearch", work, args.rounds)
    print(describe("usearch (int8 HNSW file, memory-mapped)", new), flush=True)
    print("  a fresh process loading every vector into the numpy IVF (the baseline)...",
          flush=True)  # fmt: skip
    old = in_process("ivf", work, args.rounds)
    print(describe("numpy IVF (before)", old), flush=True)
    print(f"  bare FTS5 MATCH: p50 {new['baseline_fts_p50_ms']:.1f} ms, "
          f"p95 {new['baseline_fts_p95_ms']:.1f} ms", flush=True)  # fmt: skip
    fts_s = built["fts_insert_s"] + built["fts_optimize_s"]
    run: dict[str, Any] = {
        "hours": hours, "segments": built["segments"], "passages": built["passages"],
        "distinct_words_in_a_tenth": built["distinct_words_in_a_tenth"],
        "queries": len(queries), "fts_build_s": round(fts_s, 1),
        "vector_file_build_s": round(file_s, 1), "vector_file_mb": round(file_mb),
        "generate_s": round(generate_s, 1), "db_mb": round(path.stat().st_size / 2**20),
        "usearch": new, "ivf": old,
    }  # fmt: skip
    if args.postgres:
        run["postgres"] = asyncio.run(on_postgres(path, folder, args, hours, queries, labels))
    if args.keep:
        return run
    path.unlink(missing_ok=True)
    for f in folder.glob("*"):
        f.unlink()
    return run


async def on_postgres(
    path: Path, folder: Path, args: argparse.Namespace, hours: int, queries: list[str],
    labels: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    """The same archive and queries on PostgreSQL (search_postgres.py); the same vector file
    serves it (the copy keeps the passages' ids)."""
    print("  PostgreSQL: copying the archive...", flush=True)
    url, copy_s = await search_postgres.copy(path, args.postgres, hours)
    print(f"    copied in {copy_s:.1f} s (tsvector and GIN index by PostgreSQL); querying...",
          flush=True)  # fmt: skip
    work = path.with_suffix(".pg.json")
    work.write_text(json.dumps({"url": url, "folder": str(folder), "queries": queries,
                                "labels": labels}))  # fmt: skip
    pg = await asyncio.to_thread(in_process, "usearch", work, args.rounds)
    print(describe("PostgreSQL, usearch", pg), flush=True)
    print(f"    baseline bare full-text query ranked by ts_rank_cd: p50 "
          f"{pg['baseline_fts_p50_ms']:.1f} ms, p95 {pg['baseline_fts_p95_ms']:.1f} ms",
          flush=True)  # fmt: skip
    if not args.keep:
        await search_postgres.drop(args.postgres, hours)
    return {"copy_s": round(copy_s, 1)} | pg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--pool", type=int, default=8000, help="sentences embedded for real")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the queries")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    parser.add_argument("--keep", action="store_true", help="keep the databases (needs --dir)")
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="also copy each archive into PostgreSQL (a database per size, made here) and "
        "measure it there, e.g. postgresql+asyncpg://junto@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--serve", choices=["usearch", "ivf"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        print(json.dumps(asyncio.run(serve(args))))
        return
    print(f"Embedding a pool of {args.pool} generated sentences for real...", flush=True)
    texts, topics, pool_vectors, embed_s = embed_pool(args.pool)
    print(f"  {args.pool / embed_s:.0f} sentences/s ({embed_s:.1f} s)")
    runs: list[dict[str, Any]] = []
    if args.keep and args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp_name:
        tmp = args.dir if args.keep and args.dir else Path(tmp_name)
        for hours in args.hours:
            runs.append(one_size(args, tmp, hours, (texts, topics, pool_vectors)))
    last = runs[-1]
    new, old = last["usearch"], last["ivf"]
    summary = {
        "hours": last["hours"], "passages": last["passages"], "segments": last["segments"],
        "p50_ms": new["p50_ms"], "p95_ms": new["p95_ms"], "recall_at_10": new["recall_at_10"],
        "rss_mb_per_process": new["rss_mb"], "anon_mb_per_process": new["rss_anon_mb"],
        "file_mb_per_process": new["rss_file_mb"],
        "baseline_p95_ms": old["p95_ms"], "baseline_recall_at_10": old["recall_at_10"],
        "baseline_rss_mb_per_process": old["rss_mb"],
        "baseline_anon_mb_per_process": old["rss_anon_mb"],
        "baseline_fts_p95_ms": new["baseline_fts_p95_ms"],
        "index_build_s": round(last["fts_build_s"] + last["vector_file_build_s"], 1),
        "vector_file_mb": last["vector_file_mb"],
        "baseline": "the numpy IVF the node used before (bench/search_ivf.py), same archive, "
        "same queries, same run",
        "embeddings": f"pool of {args.pool} real MiniLM sentence vectors; passage = mean of its "
        "sentences'; queries embedded for real",
        "targets": {"hours": 10000, "p95_ms": 50, "recall_at_10": 0.95, "rss_mb_per_process": 1024},
        "met": bool(last["hours"] >= 10000 and new["p95_ms"] < 50 and new["recall_at_10"] >= 0.95
                    and new["rss_mb"] <= 1024),
        "runs": runs,
    }  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
