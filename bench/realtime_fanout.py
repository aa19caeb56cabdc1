"""Realtime fan-out benchmark (issue 2): how long until every watcher has a backchannel post.

For each target (the baseline server, then a real node) it starts the server as its own process,
connects `--clients` WebSocket watchers to one conversation from `--client-procs` separate
load-generator processes (`fanout_clients.py`), then posts `--posts` backchannel posts, one every
`--interval` seconds, and times each from the moment the poster sends it until the last watcher
has received it (CLOCK_MONOTONIC is system-wide on Linux, so times from different processes
compare). The baseline (`baseline_broadcast.py`) is a broadcast-only server on the same stack
(uvicorn + Starlette WebSocket, same uvicorn options), measured in the same run with the same
clients.

    python bench/realtime_fanout.py --clients 5000 --posts 50

It prints a human summary and, as its last line, one JSON object:
    {"clients": N, "posts": P, "p50_ms": ..., "p99_ms": ..., "node_rss_mb": ...,
     "baseline_p99_ms": ..., ...}
Targets (2 cores): 5,000 clients, p99 < 250 ms, node RSS < 1 GB, p99 <= 2x the baseline's.
This is a measurement, never a pass/fail test: the exit status only says whether it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
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
import websockets
from websockets.asyncio.client import ClientConnection

from fanout_posters import Posters
from fanout_report import Result, summary
from fanout_servers import (
    BENCH_DIR,
    Room,
    Server,
    baseline_server,
    node_server,
    prepare_node_room,
    raise_fd_limit,
)

# ---- load generator processes -----------------------------------------------------------------


class ClientProc:
    """One `fanout_clients.py` process, driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.done_posts: dict[int, tuple[int, int, int]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def spawn(cls, url: str, clients: int, deflate: bool) -> ClientProc:
        argv = [str(BENCH_DIR / "fanout_clients.py"), "--url", url, "--clients", str(clients)]
        argv.append("--deflate" if deflate else "--no-deflate")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            limit=1 << 24,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = orjson.loads(line)
            if msg["event"] == "post":
                self.done_posts[msg["seq"]] = (msg["count"], msg["min_ns"], msg["max_ns"])
            else:
                await self.lines.put(msg)

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.lines.get(), timeout)
        if msg.get("event") != event:
            raise RuntimeError(f"expected {event!r} from the load generator, got {msg}")
        return msg

    async def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.command("quit")
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()


# ---- measuring --------------------------------------------------------------------------------


class ProcessWatch:
    """Samples a process's resident memory (peak) and CPU time while the run goes on."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self.task = asyncio.create_task(self._sample())

    def rss(self) -> int:
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
        return self.peak_rss

    def cpu_seconds(self) -> float:
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    async def _sample(self) -> None:
        while True:
            self.rss()
            await asyncio.sleep(0.25)

    async def settle(self, limit: float = 60.0) -> float:
        """Wait until the server is idle (the join storm's presence updates have gone out)."""
        started = time.monotonic()
        quiet = 0
        last = self.cpu_seconds()
        while time.monotonic() - started < limit and quiet < 3:
            await asyncio.sleep(0.5)
            now = self.cpu_seconds()
            quiet = quiet + 1 if now - last < 0.05 else 0
            last = now
        return time.monotonic() - started

    def stop(self) -> None:
        self.task.cancel()


class Poster:
    """The host's own WebSocket: sends `backchannel.post` frames and matches acks by `ref`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str], origin: str) -> Poster:
        ws = await websockets.connect(
            url,
            additional_headers=headers,
            origin=origin,  # type: ignore[arg-type]
            compression=None,
            max_size=None,
            max_queue=None,
        )
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1, "resume_from": None}).decode())
        poster = cls(ws)
        return poster

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                if '"ack"' not in raw and '"error"' not in raw:
                    continue  # broadcasts, presence, heartbeats
                msg = json.loads(raw)
                future = self.waiting.pop(str(msg.get("ref")), None)
                if future is not None and not future.done():
                    future.set_result(msg)

    async def post(self, seq: int, pad: int) -> tuple[int, dict[str, Any]]:
        """Send post `seq`; return its send time and the server's ack or error."""
        ref = f"p{seq}-{secrets.token_hex(3)}"
        body = f"bench#{seq}# fan-out probe #bench " + "x" * pad
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[ref] = future
        frame = orjson.dumps({"type": "backchannel.post", "body": body, "ref": ref}).decode()
        sent_ns = time.monotonic_ns()
        await self.ws.send(frame)
        return sent_ns, await asyncio.wait_for(future, 30)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def run_target(name: str, server: Server, args: argparse.Namespace, workdir: Path) -> Result:
    result = Result(target=name, clients_asked=args.clients, load_avg=os.getloadavg()[0])
    if result.load_avg > 1.0:
        log(
            f"[{name}] warning: load average {result.load_avg:.1f} before the run: other work "
            "on this machine competes for the same cores and inflates latencies"
        )
    log(f"[{name}] starting server")
    server.start()
    assert server.proc is not None
    watch = ProcessWatch(server.proc.pid)
    procs: list[ClientProc] = []
    try:
        room = prepare_node_room(server) if name == "node" else Room("/ws/conversations/bench")
        ws_url = f"ws://127.0.0.1:{server.port}{room.ws_path}"
        watchers = args.clients - poster_count(args)
        shares = [watchers // args.client_procs] * args.client_procs
        for i in range(watchers % args.client_procs):
            shares[i] += 1
        started = time.monotonic()
        procs = [await ClientProc.spawn(ws_url, n, args.deflate) for n in shares if n]
        reports = [await p.expect("connected", args.connect_timeout) for p in procs]
        result.connect_seconds = round(time.monotonic() - started, 2)
        result.connected = sum(r["ready"] for r in reports)
        result.deflated = sum(r["deflated"] for r in reports)
        for r in reports:
            for key, count in r["errors"].items():
                result.errors[key] = result.errors.get(key, 0) + count
        log(
            f"[{name}] {result.connected}/{watchers} watchers ready in "
            f"{result.connect_seconds} s; rss {watch.rss() / 2**20:.0f} MB"
        )
        settled = await watch.settle()
        log(f"[{name}] server idle after {settled:.1f} s")
        await measure_posts(result, server, room, procs, watch, args, workdir)
    finally:
        for p in procs:
            await p.close()
        result.rss_mb = round(watch.rss() / 2**20, 1)
        watch.stop()
        server.stop()
    return result


async def measure_posts(
    result: Result,
    server: Server,
    room: Room,
    procs: list[ClientProc],
    watch: ProcessWatch,
    args: argparse.Namespace,
    workdir: Path,
) -> None:
    assert server.proc is not None
    ws_url = f"ws://127.0.0.1:{server.port}{room.ws_path}"
    poster = await Poster.connect(ws_url, room.poster_headers, server.url)
    posters = Posters(poster_count(args) if result.target == "node" else 0, args.poster_rate)
    await posters.start(server.url, ws_url, room.ws_path.rsplit("/", 1)[-1])
    await asyncio.sleep(1.0)  # its welcome, snapshot and presence change settle
    client_ps = [psutil.Process(p.proc.pid) for p in procs]
    cpu_before = watch.cpu_seconds()
    clients_before = sum(sum(p.cpu_times()[:2]) for p in client_ps)
    measured = [server.proc.pid, os.getpid(), *(p.proc.pid for p in procs)]
    set_priority(measured, args.priority)
    spy = start_py_spy(args, server.proc.pid, workdir, result.target)
    sent: dict[int, int] = {}
    phase_start = time.monotonic()
    try:
        for seq in range(1, args.posts + 1):
            tick = time.monotonic()
            for _attempt in range(20):
                sent_ns, reply = await poster.post(seq, args.pad)
                if reply.get("type") == "ack":
                    sent[seq] = sent_ns
                    break
                if reply.get("code") != "rate_limited":
                    raise RuntimeError(f"expected an ack for post {seq}, got {reply}")
                result.rate_limited += 1
                await asyncio.sleep(0.5)
            await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - tick)))
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline and not all(
            all(seq in p.done_posts for seq in sent) for p in procs
        ):
            await asyncio.sleep(0.05)
        result.post_phase_s = round(time.monotonic() - phase_start, 2)
    finally:
        result.posters = await posters.finish()
        stop_py_spy(spy)
        set_priority(measured, 0)
        await poster.close()
    result.server_cpu_s = round(watch.cpu_seconds() - cpu_before, 2)
    result.clients_cpu_s = round(sum(sum(p.cpu_times()[:2]) for p in client_ps) - clients_before, 2)
    result.posts_sent = len(sent)
    watch.rss()
    await collect(result, procs, sent)


async def collect(result: Result, procs: list[ClientProc], sent: dict[int, int]) -> None:
    reports = []
    for p in procs:
        await p.command("report")
        reports.append(await p.expect("report", 30))
    alive = sum(r["ready"] - r["closed"] for r in reports)
    result.closed_clients = sum(r["closed"] for r in reports)
    for r in reports:
        for key, count in r["errors"].items():
            result.errors[key] = result.errors.get(key, 0) + count
    for seq, sent_ns in sent.items():
        recs = [r["posts"].get(str(seq)) for r in reports]
        got = [rec for rec in recs if rec]
        count = sum(rec[0] for rec in got)
        if count < alive or not got:
            result.incomplete_posts += 1
            continue
        result.latencies_ms.append((max(rec[2] for rec in got) - sent_ns) / 1e6)
        result.first_ms.append((min(rec[1] for rec in got) - sent_ns) / 1e6)


def poster_count(args: argparse.Namespace) -> int:
    return round(int(args.clients) * float(args.posters))


def set_priority(pids: list[int], nice: int) -> None:
    """Give the measured processes precedence over other work while posts are timed."""
    for pid in pids:
        try:
            # Linux keeps a niceness per thread: the node's database threads count too.
            for thread in psutil.Process(pid).threads():
                os.setpriority(os.PRIO_PROCESS, thread.id, nice)
        except (psutil.Error, OSError) as exc:  # a negative niceness needs root
            log(f"could not set priority {nice} on {pid}: {exc}")


def start_py_spy(
    args: argparse.Namespace, pid: int, workdir: Path, target: str
) -> subprocess.Popen[bytes] | None:
    """Optional sampling profile of the server during the post phase (needs `py-spy`)."""
    if not args.py_spy:
        return None
    exe = shutil.which(args.py_spy_bin)
    if not exe:
        log(f"{args.py_spy_bin} not found: no profile")
        return None
    path = f"{args.py_spy}.{target}.{args.py_spy_format}"
    with open(workdir / "py-spy.log", "ab") as err:
        return subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--format",
                args.py_spy_format,
                "--output",
                path,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def stop_py_spy(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    import signal

    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time backchannel posts until every WebSocket watcher has them, "
        "on a real node and on a broadcast-only baseline.",
    )
    p.add_argument("--clients", type=int, default=5000, help="watchers to connect (default 5000)")
    p.add_argument("--posts", type=int, default=50, help="posts to time (default 50)")
    p.add_argument(
        "--interval",
        type=float,
        default=0.5,
        help="seconds between posts (default 0.5: the node's default member rate limit "
        "is a burst of 10 then 2 per second)",
    )
    p.add_argument("--client-procs", type=int, default=2, help="load generator processes")
    p.add_argument(
        "--posters",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="this fraction of the clients are guests posting at --poster-rate (half over REST, "
        "half over their WebSocket) on the node while the others watch (default 0)",
    )
    p.add_argument(
        "--poster-rate",
        type=float,
        default=0.5,
        help="posts per second per poster (default 0.5: the node's guest rate limit)",
    )
    p.add_argument("--target", choices=["both", "baseline", "node"], default="both")
    p.add_argument(
        "--deflate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clients offer permessage-deflate as browsers do (default: on)",
    )
    p.add_argument(
        "--baseline-fanout",
        choices=["queue", "direct"],
        default="queue",
        help="baseline's fan-out: per-connection queue + writer task (default) or a naive loop",
    )
    p.add_argument(
        "--gc-threshold",
        metavar="G0,G1,G2",
        help="what-if: run both servers with gc.set_threshold(G0, G1, G2) (default: untouched)",
    )
    p.add_argument("--pad", type=int, default=60, help="extra characters in each post body")
    p.add_argument("--connect-timeout", type=float, default=600.0)
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=20.0,
        help="seconds to wait after the last post for every client to have it",
    )
    p.add_argument("--database-url", help="node database (default: SQLite in a temp dir)")
    p.add_argument("--pubsub-url", help="node pub/sub (default: memory://)")
    p.add_argument(
        "--node-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the node, e.g. JUNTO_HEARTBEAT_SECONDS=60 (repeatable)",
    )
    p.add_argument(
        "--py-spy",
        metavar="PATH",
        help="profile the server with py-spy during the posts; writes PATH.TARGET.FORMAT",
    )
    p.add_argument("--py-spy-bin", default="py-spy", help="the py-spy executable")
    p.add_argument(
        "--py-spy-format", default="speedscope", choices=["flamegraph", "speedscope", "raw"]
    )
    p.add_argument(
        "--priority",
        type=int,
        default=0,
        metavar="NICE",
        help="niceness of the server, the load generators and the poster while posts are timed "
        "(e.g. -10 as root on a machine shared with other work; default 0: unchanged)",
    )
    p.add_argument("--per-post", action="store_true", help="print every post's latency")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (server logs)")
    return p.parse_args(argv)


async def main_async(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Result] = {}
    if args.target in ("both", "baseline"):
        results["baseline"] = await run_target(
            "baseline", baseline_server(workdir, args), args, workdir
        )
    if args.target in ("both", "node"):
        results["node"] = await run_target("node", node_server(workdir, args), args, workdir)
    return summary(results, args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.posters:
        # Every poster is a guest of its own, all from this machine's address.
        args.node_env.append(f"JUNTO_LIMIT_GUEST_CREATE_BURST={poster_count(args) + 10}")
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="junto-bench-"))
    try:
        outcome = asyncio.run(main_async(args, workdir))
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError) as exc:
        log(f"error: the benchmark could not run: {type(exc).__name__}: {exc}")
        return 2
    finally:
        if args.keep:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
