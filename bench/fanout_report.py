"""Results of `realtime_fanout.py`: percentiles, the human summary and the JSON line."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any

from fanout_posters import PosterStats

TARGET_P99_MS = 250.0
TARGET_RSS_MB = 1024.0
TARGET_RATIO = 2.0


@dataclass
class Result:
    target: str
    clients_asked: int
    load_avg: float = 0.0  # 1-minute load average before the target started
    connected: int = 0
    connect_seconds: float = 0.0
    deflated: int = 0  # connections that negotiated permessage-deflate
    posts_sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # per post: until the last client
    first_ms: list[float] = field(default_factory=list)  # per post: until the first client
    incomplete_posts: int = 0
    closed_clients: int = 0
    rate_limited: int = 0
    rss_mb: float = 0.0
    server_cpu_s: float = 0.0
    clients_cpu_s: float = 0.0
    post_phase_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    posters: PosterStats = field(default_factory=PosterStats)

    def pct(self, q: float, values: list[float] | None = None) -> float | None:
        return percentile(self.latencies_ms if values is None else values, q)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), None without data."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary(results: dict[str, Result], args: argparse.Namespace) -> dict[str, Any]:
    node, base = results.get("node"), results.get("baseline")
    ratio = None
    if node and base and node.pct(99) is not None and base.pct(99):
        ratio = round(node.pct(99) / base.pct(99), 2)  # type: ignore[operator]
    print()
    print(
        f"Realtime fan-out: {args.clients} clients in {args.client_procs} load process(es), "
        f"{args.posts} posts every {args.interval} s, "
        f"deflate {'offered' if args.deflate else 'off'}"
        + (f", GC thresholds {args.gc_threshold}" if args.gc_threshold else "")
        + (f", nice {args.priority} while timing" if args.priority else "")
    )
    rows: list[tuple[str, str, str]] = []

    def row(label: str, get: Any, digits: int = 1) -> None:
        rows.append(
            (
                label,
                _fmt(get(base), digits) if base else "-",
                _fmt(get(node), digits) if node else "-",
            )
        )

    row("load average before", lambda r: r.load_avg, 2)
    row("clients connected", lambda r: r.connected, 0)
    row("connect time s", lambda r: r.connect_seconds)
    row("with permessage-deflate", lambda r: r.deflated, 0)
    row("posts timed", lambda r: len(r.latencies_ms), 0)
    row("posts not reaching all", lambda r: r.incomplete_posts, 0)
    row("last client p50 ms", lambda r: r.pct(50))
    row("last client p99 ms", lambda r: r.pct(99))
    row("last client max ms", lambda r: r.pct(100))
    row("first client p50 ms", lambda r: r.pct(50, r.first_ms))
    row("server peak RSS MB", lambda r: r.rss_mb)
    row("server CPU s (posts)", lambda r: r.server_cpu_s, 2)
    row("load gen CPU s (posts)", lambda r: r.clients_cpu_s, 2)
    print(f"  {'':26}{'baseline':>12}{'node':>12}")
    for label, b, n in rows:
        print(f"  {label:26}{b:>12}{n:>12}")
    if ratio is not None:
        print(f"  {'node / baseline p99':26}{'':>12}{ratio:>12.2f}")
    for res in results.values():
        if args.per_post:
            last = " ".join(f"{v:.0f}" for v in res.latencies_ms)
            first = " ".join(f"{v:.0f}" for v in res.first_ms)
            print(f"  [{res.target}] per post, last client ms: {last}")
            print(f"  [{res.target}] per post, first client ms: {first}")
        if res.errors or res.closed_clients or res.rate_limited:
            print(
                f"  [{res.target}] errors {res.errors}, closed {res.closed_clients}, "
                f"rate-limited retries {res.rate_limited}"
            )
    if node and node.posters.posters:
        ps = node.posters
        print(
            f"  [node] {ps.posters} posters: {ps.accepted}/{ps.sent} posts accepted, refused "
            f"{ps.refused or 'none'}, 5xx {ps.errors_5xx}, answer p50/p99 "
            f"{_fmt(percentile(ps.answer_ms, 50))}/{_fmt(percentile(ps.answer_ms, 99))} ms"
        )
    targets: dict[str, bool | None] = {}
    if node:
        p99 = node.pct(99)
        targets = {
            "clients_5000": node.connected >= 5000,
            "p99_under_250ms": None if p99 is None else p99 < TARGET_P99_MS,
            "rss_under_1gb": node.rss_mb < TARGET_RSS_MB,
            "p99_within_2x_baseline": None if ratio is None else ratio <= TARGET_RATIO,
        }
        if node.posters.posters:
            targets["posters_p99_under_500ms"] = None if p99 is None else p99 < 500
            targets["posters_no_5xx"] = node.posters.errors_5xx == 0
        verdict = ", ".join(
            f"{k}: {'yes' if v else 'no' if v is not None else '-'}" for k, v in targets.items()
        )
        print(f"  targets: {verdict}")
    return {
        "clients": args.clients,
        "posts": args.posts,
        "p50_ms": _round(node.pct(50)) if node else None,
        "p99_ms": _round(node.pct(99)) if node else None,
        "max_ms": _round(node.pct(100)) if node else None,
        "node_rss_mb": node.rss_mb if node else None,
        "node_connected": node.connected if node else None,
        "node_incomplete_posts": node.incomplete_posts if node else None,
        "baseline_p50_ms": _round(base.pct(50)) if base else None,
        "baseline_p99_ms": _round(base.pct(99)) if base else None,
        "baseline_rss_mb": base.rss_mb if base else None,
        "baseline_connected": base.connected if base else None,
        "p99_ratio": ratio,
        "load_avg": round(max((r.load_avg for r in results.values()), default=0.0), 2),
        "gc_threshold": args.gc_threshold,
        "priority": args.priority,
        "interval_s": args.interval,
        "client_procs": args.client_procs,
        "deflate": args.deflate,
        "baseline_fanout": args.baseline_fanout,
        "posters": node.posters.posters if node else 0,
        "errors_5xx": node.posters.errors_5xx if node else None,
        "poster_posts_accepted": node.posters.accepted if node else None,
        "poster_posts_refused": node.posters.refused if node else None,
        "poster_answer_p99_ms": _round(percentile(node.posters.answer_ms, 99)) if node else None,
        "targets": targets,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
