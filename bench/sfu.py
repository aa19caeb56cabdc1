"""SFU benchmark (issue 3): what the embedded SFU costs per publisher and per subscriber leg.

A real node (`junto serve`, SQLite in a temp dir, ICE on 127.0.0.1) hosts a live conversation.
Speakers, brought on stage by the host, give consent and publish 640x480 VP8 + Opus with
`media.publish`; anonymous watchers subscribe with `media.subscribe` and answer the node's
`media.offer`: the "Media signaling" protocol of docs/protocol.md. All clients are aiortc peers
in separate load-generator processes (`sfu_clients.py`), sending pre-encoded packets and
counting received ones without decoding, so their CPU does not land on the node.

Only the server's CPU is measured (user + system time of its process tree over a steady window):
    idle node -> P publishers -> P publishers x S subscribers, for each S in --steps
cpu per publisher = (cpu(P x 0) - idle) / P; cpu per subscriber leg = the least-squares slope of
CPU over legs (P x S). The baseline (`sfu_baseline.py`, aiortc's MediaRelay: decode once,
re-encode per subscriber) is measured in the same run with the same clients, with fewer
subscribers since each of its legs costs a fifth of a core. Join-to-first-frame: a headless
Chromium opens the room page, clicks "Watch and listen live" and times, in the page, the click
to the first remote video frame presented (sfu_browser.py).

    python bench/sfu.py                # 4 publishers x 0, 10, 20 subscribers; baseline 1 x 0, 3
    python bench/sfu.py --quick        # the smoke test's short run

It prints a human summary and, as its last line, one JSON object:
    {"publishers", "subscribers", "cpu_pct_per_publisher", "cpu_pct_per_subscriber_leg",
     "baseline_cpu_pct_per_subscriber_leg", "join_to_first_frame_ms_p50", ...}
Targets (2 cores): a leg <= 2 % of a core and >= 5x cheaper than the baseline; 4 publishers x
20 subscribers within one core; join-to-first-frame under 1.5 s. This is a measurement, never a
pass/fail test: the exit status only says whether it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from fanout_servers import BENCH_DIR, Server, raise_fd_limit
from realtime_fanout import set_priority
from sfu_media import FPS, encode_clip
from sfu_report import Config, Outcome, figures, print_summary
from sfu_servers import (
    CpuMeter,
    Stage,
    baseline_server,
    node_server,
    prepare_stage,
    udp_receive_drops,
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class ClientProc:
    """One `sfu_clients.py` process, driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ps = psutil.Process(proc.pid)
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def spawn(cls, clip: Path, workdir: Path, uvloop: bool) -> ClientProc:
        argv = [str(BENCH_DIR / "sfu_clients.py"), "--clip", str(clip)]
        argv.append("--uvloop" if uvloop else "--no-uvloop")
        with open(workdir / "clients.log", "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                limit=1 << 24,
            )
        client = cls(proc)
        await asyncio.wait_for(client.ready, 60)
        return client

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = orjson.loads(line)
            event = msg.get("event")
            if event == "ready" and not self.ready.done():
                self.ready.set_result(None)
            elif event == "report":
                await self.reports.put(msg)
            elif (future := self.waiting.pop(str(msg.get("key")), None)) is not None:
                future.set_result(msg)
        if not self.ready.done():
            self.ready.set_exception(RuntimeError("the load generator exited at start"))

    async def command(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
        await self.proc.stdin.drain()

    async def start(self, cmd: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """Publish or subscribe; returns the `published`/`subscribed`/`failed` answer."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[str(cmd["key"])] = future
        await self.command(cmd)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return {"event": "failed", "key": cmd["key"], "error": f"no answer in {timeout} s"}

    async def report(self) -> dict[str, Any]:
        await self.command({"cmd": "report"})
        return await asyncio.wait_for(self.reports.get(), 60)

    def cpu_seconds(self) -> float:
        with contextlib.suppress(psutil.Error):
            times = self.ps.cpu_times()
            return float(times.user + times.system)
        return 0.0

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.command({"cmd": "quit"})
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()


class Bench:
    """Clients of one target (node or baseline) and the windows measured on it."""

    def __init__(self, target: str, server: Server, args: argparse.Namespace, workdir: Path):
        self.target = target
        self.server = server
        self.args = args
        self.workdir = workdir
        assert server.proc is not None
        self.meter = CpuMeter(server.proc.pid)
        self.pub_procs: list[ClientProc] = []
        self.sub_procs: list[ClientProc] = []
        self.publishers = 0
        self.subscribers = 0
        self.join_ms: list[float] = []

    @property
    def procs(self) -> list[ClientProc]:
        return self.pub_procs + self.sub_procs

    async def spawn(self, clip: Path, pub_procs: int, sub_procs: int) -> None:
        spawn = [ClientProc.spawn(clip, self.workdir, self.args.uvloop) for _ in range(pub_procs)]
        self.pub_procs = list(await asyncio.gather(*spawn))
        spawn = [ClientProc.spawn(clip, self.workdir, self.args.uvloop) for _ in range(sub_procs)]
        self.sub_procs = list(await asyncio.gather(*spawn))

    def prioritise(self) -> None:
        """With --priority: the server and the clients take precedence over other work (threads
        they start later inherit it)."""
        if self.args.priority and self.server.proc is not None:
            pids = [self.server.proc.pid, *(p.proc.pid for p in self.procs)]
            set_priority(pids, self.args.priority)

    async def publish(self, count: int, stage: Stage | None) -> None:
        cmds = []
        for i in range(self.publishers, count):
            cmd: dict[str, Any] = {"cmd": "publish", "key": f"p{i + 1}", "target": self.target}
            if stage is not None:
                speaker = stage.speakers[i]
                cmd.update(ws_url=stage.ws_url, origin=stage.url, cookie=speaker.cookie)
            else:
                cmd["url"] = self.server.url
            cmds.append((self.pub_procs[i % len(self.pub_procs)], cmd))
        answers = await asyncio.gather(*(proc.start(cmd) for proc, cmd in cmds))
        failed = [a for a in answers if a["event"] != "published"]
        if failed:
            raise RuntimeError(
                f"expected every publisher to publish, got {failed}\n{self.server.log_tail()}"
            )
        self.publishers = count

    async def subscribe(self, count: int, stage: Stage | None) -> list[str]:
        """Add subscribers up to `count`, a few at a time per process (as a crowd joins)."""
        failures: list[str] = []
        pending = list(range(self.subscribers, count))
        batch = self.args.join_batch * len(self.sub_procs)
        while pending:
            now, pending = pending[:batch], pending[batch:]
            starts = []
            for i in now:
                cmd: dict[str, Any] = {
                    "cmd": "subscribe",
                    "key": f"s{i + 1}",
                    "target": self.target,
                }
                if stage is not None:
                    cmd.update(ws_url=stage.ws_url, origin=stage.url, expect=self.publishers)
                else:
                    cmd.update(url=self.server.url, publishers=self.publishers)
                starts.append(self.sub_procs[i % len(self.sub_procs)].start(cmd))
            for answer in await asyncio.gather(*starts):
                if answer["event"] == "subscribed":
                    self.join_ms.append(float(answer["all_first_frames_ms"]))
                else:
                    failures.append(f"{answer['key']}: {answer.get('error')}")
        self.subscribers = count
        return failures

    async def window(self, seconds: float, warmup: float) -> Config:
        """Measure the server over a steady window; count what the clients got meanwhile."""
        config = Config(self.target, self.publishers, self.subscribers)
        await asyncio.sleep(warmup)
        before = await asyncio.gather(*(p.report() for p in self.procs))
        clients0 = sum(p.cpu_seconds() for p in self.procs)
        client_pids = [p.proc.pid for p in self.procs]
        server_pids = list(self.meter.pids())
        drops0 = udp_receive_drops(server_pids + client_pids)
        cpu0 = self.meter.snapshot()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(min(0.5, seconds))
            self.meter.snapshot()  # RSS samples
        cpu1 = self.meter.snapshot()
        clients1 = sum(p.cpu_seconds() for p in self.procs)
        drops1 = udp_receive_drops(server_pids + client_pids)
        delta = {pid: n - drops0.get(pid, 0) for pid, n in drops1.items()}
        config.server_udp_drops = sum(delta[pid] for pid in server_pids)
        config.clients_udp_drops = sum(delta[pid] for pid in client_pids)
        after = await asyncio.gather(*(p.report() for p in self.procs))
        config.seconds = round(cpu1[0] - cpu0[0], 2)
        config.cpu_pct = round(CpuMeter.percent(cpu0, cpu1), 2)
        config.rss_mb = round(self.meter.peak_rss / 2**20, 1)
        self.meter.peak_rss = 0
        config.clients_cpu_pct = round(100 * (clients1 - clients0) / config.seconds, 1)
        config.load_avg = round(os.getloadavg()[0], 2)
        self._count(config, before, after)
        return config

    def _count(
        self, config: Config, before: list[dict[str, Any]], after: list[dict[str, Any]]
    ) -> None:
        old_subs = {k: v for r in before for k, v in r["subscribers"].items()}
        old_pubs = {k: v for r in before for k, v in r["publishers"].items()}
        video = audio = video_bytes = 0
        for r in after:
            for key, pub in r["publishers"].items():
                config.keyframe_requests += pub["keyframe_requests"] - old_pubs.get(key, {}).get(
                    "keyframe_requests", 0
                )
                if pub["state"] != "connected":
                    config.failures.append(f"publisher {key} is {pub['state']}")
            for key, sub in r["subscribers"].items():
                old = old_subs.get(key, {"tracks": {}, "packets_lost": 0, "packets_received": 0})
                config.packets_lost += sub["packets_lost"] - old["packets_lost"]
                config.packets_received += sub["packets_received"] - old["packets_received"]
                got_video = 0
                for mid, track in sub["tracks"].items():
                    prev = old["tracks"].get(mid, {"frames": 0, "bytes": 0, "keyframes": 0})
                    frames = track["frames"] - prev["frames"]
                    if track["kind"] == "video":
                        video += frames
                        video_bytes += track["bytes"] - prev["bytes"]
                        config.keyframes += track["keyframes"] - prev["keyframes"]
                        got_video += frames > 0
                    else:
                        audio += frames
                    if track["decoded"]:
                        config.failures.append(f"subscriber {key} decoded frames (no pass-through)")
                if sub["state"] != "connected":
                    config.failures.append(f"subscriber {key} is {sub['state']}")
                if got_video < self.publishers:
                    config.failures.append(
                        f"subscriber {key} got video from {got_video}/{self.publishers} publishers"
                    )
                for error in sub["errors"]:
                    config.failures.append(f"subscriber {key}: {error}")
        if config.legs:
            per = config.legs * config.seconds
            config.video_fps_per_leg = round(video / per, 1)
            config.audio_pps_per_leg = round(audio / per, 1)
            config.video_kbps_per_leg = round(video_bytes * 8 / 1000 / per, 1)
            if config.video_fps_per_leg < 0.75 * FPS:
                config.failures.append(
                    f"video at {config.video_fps_per_leg} fps per leg, expected about {FPS} "
                    f"(UDP receive drops at the server {config.server_udp_drops}, "
                    f"at the clients {config.clients_udp_drops})"
                )

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.procs), return_exceptions=True)

    async def close_subscribers(self) -> None:
        await asyncio.gather(*(p.close() for p in self.sub_procs), return_exceptions=True)
        self.sub_procs = []
        self.subscribers = 0


async def run_node(out: Outcome, clip: Path, args: argparse.Namespace, workdir: Path) -> None:
    server = node_server(workdir, args)
    log("[node] starting junto serve")
    server.start()
    bench: Bench | None = None
    try:
        stage = await prepare_stage(server.url, args.publishers)
        bench = Bench("node", server, args, workdir)
        await bench.spawn(clip, 1, args.client_procs)
        bench.prioritise()
        log(f"[node] idle window ({args.idle_window:.0f} s)")
        out.node_idle = await bench.window(args.idle_window, args.warmup)
        log(f"[node] idle: {out.node_idle.cpu_pct:.1f} % of a core")
        await bench.publish(args.publishers, stage)
        for step in args.steps:
            failures = await bench.subscribe(step, stage)
            log(f"[node] {args.publishers} x {step}: measuring {args.window:.0f} s")
            config = await bench.window(args.window, args.warmup)
            config.failures[:0] = failures
            out.node.append(config)
            log(
                f"[node] {args.publishers} x {step}: {config.cpu_pct:.1f} % of a core, "
                f"{config.video_fps_per_leg} fps/leg, failures: {len(config.failures)}"
            )
        out.aiortc_join_ms = bench.join_ms
        await bench.close_subscribers()
        if args.join_trials:
            await measure_browser_join(out, stage, args, workdir)
    finally:
        if bench is not None:
            await bench.close()
        server.stop()
        out.errors += log_problems(server)


async def measure_browser_join(
    out: Outcome, stage: Stage, args: argparse.Namespace, workdir: Path
) -> None:
    from sfu_browser import join_times  # Playwright is only needed here

    log(f"[node] join to first frame in Chromium, {args.join_trials} trials")
    try:
        out.browser_join_ms, out.browser_join_method = await join_times(
            stage.page_url, args.join_trials, workdir, args.chromium
        )
    except Exception as exc:  # reported, not fatal: the CPU figures stand on their own
        out.browser_error = f"{type(exc).__name__}: {exc}"[:500]
        log(f"[node] browser join failed: {out.browser_error}")


async def run_baseline(out: Outcome, clip: Path, args: argparse.Namespace, workdir: Path) -> None:
    server = baseline_server(workdir)
    log("[baseline] starting sfu_baseline.py")
    server.start()
    bench = Bench("baseline", server, args, workdir)
    try:
        await bench.spawn(clip, 1, 1)
        bench.prioritise()
        await bench.publish(args.baseline_publishers, None)
        for step in (0, args.baseline_subscribers):
            failures = await bench.subscribe(step, None)
            log(f"[baseline] {args.baseline_publishers} x {step}: measuring {args.window:.0f} s")
            config = await bench.window(args.window, args.warmup)
            config.failures[:0] = failures
            out.baseline.append(config)
            log(f"[baseline] {config.cpu_pct:.1f} % of a core, {config.video_fps_per_leg} fps/leg")
    finally:
        await bench.close()
        server.stop()
        out.errors += log_problems(server)


def log_problems(server: Server, limit: int = 10) -> list[str]:
    """Lines of the server's log that report a problem (it logs warnings and worse)."""
    if not server.log_path.exists():
        return []
    words = ("Traceback", "ERROR", "Error", "WARNING", "Exception")
    lines = server.log_path.read_text(errors="replace").splitlines()
    found = [f"[{server.name} log] {line[:300]}" for line in lines if any(w in line for w in words)]
    return found[:limit]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="CPU of the embedded SFU per publisher and per subscriber leg, against "
        "aiortc's MediaRelay re-encoding, and Chromium's join-to-first-frame."
    )
    p.add_argument("--publishers", type=int, default=4, help="speakers publishing (default 4)")
    p.add_argument(
        "--steps",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[0, 10, 20],
        help="subscriber counts to measure, comma-separated (default 0,10,20)",
    )
    p.add_argument("--baseline-publishers", type=int, default=1)
    p.add_argument("--baseline-subscribers", type=int, default=3)
    p.add_argument("--window", type=float, default=20.0, help="seconds measured per config")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before each window")
    p.add_argument("--idle-window", type=float, default=10.0, help="the idle node's window")
    p.add_argument("--client-procs", type=int, default=4, help="subscriber processes (default 4)")
    p.add_argument("--join-batch", type=int, default=4, help="joins in flight per process")
    p.add_argument("--join-trials", type=int, default=5, help="Chromium joins (0: skip)")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--max-viewers", type=int, default=1000, help="JUNTO_MEDIA_MAX_VIEWERS")
    p.add_argument("--target", choices=["both", "node", "baseline"], default="both")
    p.add_argument(
        "--uvloop", action=argparse.BooleanOptionalAction, default=True, help="clients use uvloop"
    )
    p.add_argument(
        "--priority",
        type=int,
        default=0,
        metavar="NICE",
        help="niceness of the servers and the clients (e.g. -10 as root on a machine shared "
        "with other work; default 0: unchanged)",
    )
    p.add_argument(
        "--node-env", action="append", default=[], metavar="KEY=VALUE", help="extra node env"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a ~1 minute run for the smoke test: 2 publishers x 0, 2 subscribers, baseline "
        "1 x 1, short windows, one Chromium join",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (server logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.publishers, args.steps = 2, [0, 2]
        args.baseline_publishers, args.baseline_subscribers = 1, 1
        args.window, args.warmup, args.idle_window = 3.0, 1.5, 2.0
        args.join_trials = min(args.join_trials, 1)
        args.client_procs = min(args.client_procs, 2)
    args.steps = sorted(set(args.steps) | {0})
    return args


async def main_async(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out = Outcome(load_avg_start=round(os.getloadavg()[0], 2))
    if out.load_avg_start > 1.0:
        log(
            f"warning: load average {out.load_avg_start:.1f} at the start: other work on this "
            "machine competes with the servers and the clients"
        )
    clip_path = workdir / "clip.bin"
    clip = encode_clip()
    clip.save(clip_path)
    log(
        f"clip: {len(clip.video)} VP8 frames at {clip.video_kbps:.0f} kbit/s, "
        f"{len(clip.audio)} Opus packets"
    )
    if args.target in ("both", "node"):
        await run_node(out, clip_path, args, workdir)
    if args.target in ("both", "baseline"):
        await run_baseline(out, clip_path, args, workdir)
    result = figures(out, args)
    print_summary(out, result, args)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="junto-sfu-bench-"))
    try:
        result = asyncio.run(main_async(args, workdir))
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError) as exc:
        log(f"error: the benchmark could not run: {type(exc).__name__}: {exc}")
        return 2
    finally:
        if args.keep:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
