"""Results of `sfu.py`: per-configuration figures, the slopes, the human summary, the JSON line."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# The targets on one 2-core machine.
TARGET_LEG_PCT = 2.0  # a subscriber leg costs at most 2 % of a core
TARGET_LEG_RATIO = 5.0  # ... and at least 5x less than the baseline's
TARGET_HEADLINE_PCT = 100.0  # 4 speakers + 20 WebRTC viewers fit in one core
TARGET_JOIN_MS = 1500.0  # join-to-first-frame on loopback


@dataclass
class Config:
    """One steady window on one server: P publishers, S subscribers each receiving all of them."""

    target: str
    publishers: int
    subscribers: int
    seconds: float = 0.0
    cpu_pct: float = 0.0  # of one core, the server process tree
    rss_mb: float = 0.0
    clients_cpu_pct: float = 0.0  # the load generators together
    load_avg: float = 0.0  # 1-minute load average when the window closed
    video_fps_per_leg: float | None = None
    audio_pps_per_leg: float | None = None
    video_kbps_per_leg: float | None = None
    keyframes: int = 0  # video keyframes that arrived at subscribers in the window
    packets_received: int = 0
    packets_lost: int = 0
    keyframe_requests: int = 0  # PLI/FIR that reached the publishers in the window
    # UDP datagrams dropped for a full receive buffer in the window, on the server's sockets
    # and on the clients' (on loopback the only way to lose a packet: someone read too late)
    server_udp_drops: int = 0
    clients_udp_drops: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def legs(self) -> int:
        return self.publishers * self.subscribers


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), None without data."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x (None with fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Outcome:
    node_idle: Config | None = None
    node: list[Config] = field(default_factory=list)
    baseline: list[Config] = field(default_factory=list)
    aiortc_join_ms: list[float] = field(default_factory=list)  # subscribe -> first video frame
    browser_join_ms: list[float] = field(default_factory=list)  # click -> first decoded frame
    browser_join_method: str = ""
    browser_error: str | None = None
    errors: list[str] = field(default_factory=list)
    load_avg_start: float = 0.0


def figures(out: Outcome, args: Any) -> dict[str, Any]:
    """The JSON line's numbers."""
    head = max(out.node, key=lambda c: (c.publishers, c.subscribers), default=None)
    per_pub = None
    if out.node:
        zero = [c for c in out.node if c.subscribers == 0]
        if zero and zero[0].publishers:
            idle = out.node_idle.cpu_pct if out.node_idle else 0.0
            per_pub = (zero[0].cpu_pct - idle) / zero[0].publishers
    leg = slope([(c.legs, c.cpu_pct) for c in out.node if head and c.publishers == head.publishers])
    base_leg = slope([(c.legs, c.cpu_pct) for c in out.baseline])
    per_sub = leg * head.publishers if leg is not None and head else None
    ratio = base_leg / leg if base_leg is not None and leg and leg > 0 else None
    join = out.browser_join_ms
    configs = [
        {**{k: v for k, v in asdict(c).items() if k != "failures"}, "failures": c.failures}
        for c in ([out.node_idle] if out.node_idle else []) + out.node + out.baseline
    ]
    result: dict[str, Any] = {
        "publishers": head.publishers if head else 0,
        "subscribers": head.subscribers if head else 0,
        "cpu_pct_per_publisher": _r(per_pub),
        "cpu_pct_per_subscriber_leg": _r(leg, 3),
        "cpu_pct_per_subscriber": _r(per_sub),
        "baseline_cpu_pct_per_subscriber_leg": _r(base_leg),
        "leg_cost_ratio": _r(ratio, 1),
        "node_cpu_pct": _r(head.cpu_pct) if head else None,
        "node_rss_mb": _r(head.rss_mb, 1) if head else None,
        "node_idle_cpu_pct": _r(out.node_idle.cpu_pct) if out.node_idle else None,
        "join_to_first_frame_ms_p50": _r(percentile(join, 50), 1),
        "join_to_first_frame_ms_p95": _r(percentile(join, 95), 1),
        "join_trials": len(join),
        "join_method": out.browser_join_method or None,
        "join_error": out.browser_error,
        "aiortc_join_ms_p50": _r(percentile(out.aiortc_join_ms, 50), 1),
        "aiortc_join_ms_p95": _r(percentile(out.aiortc_join_ms, 95), 1),
        "video_fps_per_leg": head.video_fps_per_leg if head else None,
        "packets_lost": sum(c.packets_lost for c in out.node),
        "packets_received": sum(c.packets_received for c in out.node),
        "failed_configs": sum(1 for c in out.node + out.baseline if c.failures),
        "errors": out.errors,
        "load_avg": out.load_avg_start,
        "configs": configs,
    }
    result["targets"] = {
        "leg_under_2pct": leg is not None and leg <= TARGET_LEG_PCT,
        "leg_5x_cheaper_than_baseline": ratio is not None and ratio >= TARGET_LEG_RATIO,
        "headline_fits_one_core": bool(
            head
            and head.publishers >= 4
            and head.subscribers >= 20
            and head.cpu_pct <= TARGET_HEADLINE_PCT
        ),
        "join_under_1500ms": bool(join) and (percentile(join, 50) or 0) < TARGET_JOIN_MS,
    }
    return result


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_summary(out: Outcome, result: dict[str, Any], args: Any) -> None:
    print()
    print(
        f"SFU benchmark: 640x480 VP8 + Opus, pre-encoded, {args.window:.0f} s windows after "
        f"{args.warmup:.0f} s warm-up; load average {out.load_avg_start:.2f} at the start"
        + (f"; servers and clients at nice {args.priority}" if args.priority else "")
    )
    if out.load_avg_start > 1.0:
        print(
            "warning: other work was running (load average above 1 on 2 cores): it takes CPU "
            "from the servers and the clients alike; compare runs on a quiet machine"
        )
    print(
        f"{'server':9} {'pubs':>4} {'subs':>4} {'legs':>4} {'cpu %':>7} {'rss MB':>7} "
        f"{'fps/leg':>7} {'kbps/leg':>8} {'lost':>5} {'drops s/c':>11} {'clients %':>9} "
        f"{'load':>5}  failures"
    )
    rows = ([out.node_idle] if out.node_idle else []) + out.node + out.baseline
    for c in rows:
        print(
            f"{c.target:9} {c.publishers:4} {c.subscribers:4} {c.legs:4} {c.cpu_pct:7.1f} "
            f"{c.rss_mb:7.0f} {_f(c.video_fps_per_leg):>7} {_f(c.video_kbps_per_leg, 0):>8} "
            f"{c.packets_lost:5} {f'{c.server_udp_drops}/{c.clients_udp_drops}':>11} "
            f"{c.clients_cpu_pct:9.1f} "
            f"{c.load_avg:5.2f}  " + ("; ".join(c.failures) or "-")
        )
    print()
    print(
        f"node CPU per publisher:             {_f(result['cpu_pct_per_publisher'], 2)} % of a core"
    )
    print(
        f"node CPU per subscriber leg:        {_f(result['cpu_pct_per_subscriber_leg'], 3)} % "
        f"(one subscriber of {result['publishers']} publishers: "
        f"{_f(result['cpu_pct_per_subscriber'], 2)} %)"
    )
    print(
        "baseline (MediaRelay) per leg:      "
        f"{_f(result['baseline_cpu_pct_per_subscriber_leg'], 2)} %"
        f"  -> node is {_f(result['leg_cost_ratio'])}x cheaper per leg"
    )
    print(
        f"node at {result['publishers']} publishers x {result['subscribers']} subscribers: "
        f"{_f(result['node_cpu_pct'])} % of a core, RSS {_f(result['node_rss_mb'], 0)} MB"
    )
    print(
        "join to first frame (Chromium):     "
        f"p50 {_f(result['join_to_first_frame_ms_p50'], 0)} ms, "
        f"p95 {_f(result['join_to_first_frame_ms_p95'], 0)} ms over {result['join_trials']} "
        f"trials ({result['join_method'] or 'not measured'})"
        + (f"; {result['join_error']}" if result["join_error"] else "")
    )
    print(
        f"join to first frame (aiortc):       p50 {_f(result['aiortc_join_ms_p50'], 0)} ms, "
        f"p95 {_f(result['aiortc_join_ms_p95'], 0)} ms "
        "(media.subscribe -> video from every publisher, several joining at once)"
    )
    targets = result["targets"]
    print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in targets.items()))
    for error in out.errors:
        print(f"error: {error}")
