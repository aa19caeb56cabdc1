"""Five minutes with consumers that are slow or gone: the SFU's memory stays flat.

A relay whose consumer stops reading buffers without bound (docs: engineering notes, "Media");
the SFU must keep reading for every consumer or detach it. One aiortc publisher (synthetic video
and audio) feeds, through the node:
- a healthy viewer that decodes everything, and must keep receiving the whole time;
- a stalled viewer that stops reading its network socket (no receiver reports, no ICE consent
  replies) while its room socket stays open;
- a vanished viewer whose UDP sockets disappear without a word (no DTLS close, no RTCP BYE),
  as a crashed browser's would, its room socket also left open;
- a half-open viewer that subscribes and never answers the offer.
Every 10 s we sample the resident memory of the node (and any media process it started). The
publisher sends about 560 kbit/s of video and 110 kbit/s of audio, so one leg leaking what it
is given would add about 5 MB a minute: the slope limit catches that, the growth limit two.

(An aiortc viewer that merely stops calling recv() on its tracks would look healthy to the
node, since aiortc keeps reading its socket and queues the decoded frames in the viewer's own
process; stalling the socket is what a slow or frozen consumer looks like from the SFU.)

JUNTO_SOAK_SECONDS sets the length (300 by default, the issue's five minutes).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import psutil
import pytest
from media_support import soak_seconds, start_media_node
from rtc_support import (
    Subscriber,
    accounts,
    live_conversation,
    loopback_ice,
    publish,
    room_socket,
    wait_connected,
)

from conftest import LiveNode

SOAK = soak_seconds()
SAMPLE_EVERY = 10.0
WARM_UP = 60.0
MAX_GROWTH_MB = 25.0
MAX_SLOPE_MB_PER_MIN = 3.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="function"),
    pytest.mark.timeout(SOAK + 180),
]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LiveNode]:
    live = start_media_node(tmp_path / "soak")
    yield live
    live.stop()


def rss_mb(pid: int) -> float:
    """Resident memory of the node and its children (the SFU may run in a process of its own)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mm = sum(m for _, m in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (m - mm) for t, m in samples)
    return 60 * cov / var if var else 0.0


async def test_slow_and_vanished_viewers_keep_the_sfu_memory_flat(node: LiveNode) -> None:
    assert SOAK >= 2 * WARM_UP, f"JUNTO_SOAK_SECONDS must be at least {2 * WARM_UP:.0f}"
    assert node.proc is not None
    loopback_ice()
    async with AsyncExitStack() as stack, accounts(node) as new_account:
        host = await new_account("Hana Host")
        slug = await live_conversation(host)
        host_sock = await stack.enter_async_context(room_socket(node, slug, host, "host"))
        assert (await host_sock.request("media.consent"))["type"] == "ack"
        publisher = await publish(host_sock)
        stack.push_async_callback(publisher.close)
        await wait_connected(publisher.pc, "the publisher")

        viewers: dict[str, Subscriber] = {}
        for role in ("healthy", "stalled", "vanished", "half-open"):
            sock = await stack.enter_async_context(
                room_socket(node, slug, await new_account(f"{role} viewer"), role)
            )
            viewer = Subscriber(sock, answer=role != "half-open")
            stack.push_async_callback(viewer.close)
            await viewer.start()
            if role != "half-open":
                await viewer.wait_frames(host.id, minimum=20)
            viewers[role] = viewer
        healthy, stalled, vanished = viewers["healthy"], viewers["stalled"], viewers["vanished"]
        stalled.stall()
        vanished.vanish()

        start = time.monotonic()
        memory: list[tuple[float, float]] = []
        frames: list[tuple[float, int, int]] = []
        while (elapsed := time.monotonic() - start) < SOAK:
            memory.append((elapsed, rss_mb(node.proc.pid)))
            frames.append(
                (elapsed, healthy.counts[(host.id, "video")], healthy.counts[(host.id, "audio")])
            )
            await asyncio.sleep(SAMPLE_EVERY - (time.monotonic() - start) % SAMPLE_EVERY)
        memory.append((time.monotonic() - start, rss_mb(node.proc.pid)))

        report = ", ".join(f"{t:.0f}s {m:.1f}MB" for t, m in memory)
        print(f"node memory: {report}")  # shown with -s or -rP
        after = [(t, m) for t, m in memory if t >= WARM_UP]
        baseline = after[0][1]
        growth = max(m for _, m in after[-3:]) - baseline
        slope = slope_per_minute(after)
        assert growth < MAX_GROWTH_MB, (
            f"the node grew {growth:.1f} MB after warm-up (limit {MAX_GROWTH_MB}): {report}"
        )
        assert slope < MAX_SLOPE_MB_PER_MIN, (
            f"the node's memory climbs {slope:.2f} MB/min after warm-up "
            f"(limit {MAX_SLOPE_MB_PER_MIN}): {report}"
        )

        # The healthy viewer received all along: video and audio grew in every 10 s window.
        for (t0, v0, a0), (t1, v1, a1) in itertools.pairwise(frames):
            assert v1 - v0 >= 5 * (t1 - t0) and a1 - a0 >= 10 * (t1 - t0), (
                f"the healthy viewer stalled between {t0:.0f} s and {t1:.0f} s: "
                f"video {v0}→{v1}, audio {a0}→{a1}"
            )
        await healthy.wait_frames(host.id, minimum=20)

        # The node noticed the viewers that stopped answering (ICE consent, RFC 7675, expires
        # after about 30 s) and told their sockets.
        for role in ("stalled", "vanished"):
            viewer = viewers[role]
            await viewer.sock.wait_for(
                lambda f: f.get("type") == "error" and f.get("code") == "ice_failed",
                f"ice_failed for the {role} viewer",
                timeout=5,
            )
