"""The servers `sfu.py` measures, how their CPU is read, and the node's stage set up as people do.

The node is `python -m junto serve` on a fresh SQLite data dir, offering 127.0.0.1 as its ICE
address; the baseline is `sfu_baseline.py`. For the node, a host and the speakers sign up through
the HTTP API, the host creates a public conversation and starts it, and brings every speaker on
stage with `stage.invite` over the room WebSocket (docs/protocol.md). Consent and publishing are
the speakers' own business (sfu_clients.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psutil
import websockets

from fanout_servers import BENCH_DIR, Server, _csrf_post, free_port


def node_server(workdir: Path, args: argparse.Namespace) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNTO_")}
    env.update(
        JUNTO_SECRET_KEY=secrets.token_urlsafe(32),
        JUNTO_LOG_LEVEL="warning",
        JUNTO_MEDIA_ADDRESSES="127.0.0.1",
        JUNTO_MEDIA_MAX_VIEWERS=str(args.max_viewers),
        # Every load-generating client connects from 127.0.0.1: lift the per-address socket
        # limits (junto.ratelimit.AddressConnections), or one address would hold them all.
        JUNTO_LIMIT_WS_PER_ADDRESS="1000000",
        JUNTO_LIMIT_WS_CONNECT_BURST="1000000",
        # This benchmark measures forwarding. Recording, live captions (a Whisper process
        # loading its model when the publishers go on air) and job workers would add their own
        # CPU to the node's figures; bench/transcription.py measures captions. Turn them back
        # on with --node-env JUNTO_CAPTIONS=1 and so on.
        JUNTO_RECORDING="0",
        JUNTO_CAPTIONS="0",
        JUNTO_WORKERS="0",
    )
    for pair in args.node_env:
        key, _, value = pair.partition("=")
        env[key] = value
    argv = [sys.executable, "-m", "junto", "serve", "--port", str(port)]
    argv += ["--data-dir", str(workdir / "node-data")]
    return Server("node", argv, env, workdir, port)


def baseline_server(workdir: Path) -> Server:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "sfu_baseline.py"), "--port", str(port)]
    return Server("baseline", argv, dict(os.environ), workdir, port)


@dataclass
class Speaker:
    user_id: int
    cookie: str


@dataclass
class Stage:
    """A live conversation with speakers on stage (not yet publishing)."""

    url: str
    slug: str
    speakers: list[Speaker] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + f"/ws/conversations/{self.slug}"

    @property
    def page_url(self) -> str:
        return f"{self.url}/c/{self.slug}"


def _member(url: str, username: str) -> tuple[int, str]:
    """Sign up a member; returns their id and the Cookie header of their session."""
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/signin").raise_for_status()  # sets the junto_csrf cookie
        me = _csrf_post(
            client,
            "/api/signup",
            {"username": username, "password": secrets.token_urlsafe(16), "display_name": username},
        )
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return int(me["id"]), cookie


async def prepare_stage(url: str, speakers: int) -> Stage:
    """Host, conversation (public, live) and `speakers` members brought on stage."""
    with httpx.Client(base_url=url, timeout=30) as host:
        host.get("/signin").raise_for_status()
        _csrf_post(
            host,
            "/api/signup",
            {
                "username": "benchhost",
                "password": secrets.token_urlsafe(16),
                "display_name": "Host",
            },
        )
        created = _csrf_post(
            host,
            "/api/conversations",
            {"title": "SFU benchmark", "description": "bench/sfu.py", "visibility": "public"},
        )
        slug = created.get("slug") or created["conversation"]["slug"]
        _csrf_post(host, f"/api/conversations/{slug}/start", {})
        host_cookie = "; ".join(f"{k}={v}" for k, v in host.cookies.items())
    stage = Stage(url, slug)
    for i in range(speakers):
        user_id, cookie = _member(url, f"speaker{i + 1}")
        stage.speakers.append(Speaker(user_id, cookie))
    async with websockets.connect(
        stage.ws_url,
        additional_headers={"Cookie": host_cookie},
        origin=url,  # type: ignore[arg-type]
        compression=None,
    ) as ws:
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1, "resume_from": None}).decode())
        for n, speaker in enumerate(stage.speakers):
            ref = f"invite{n}"
            await ws.send(
                orjson.dumps(
                    {"type": "stage.invite", "user_id": speaker.user_id, "ref": ref}
                ).decode()
            )
            while True:
                msg = orjson.loads(await ws.recv())
                if msg.get("ref") == ref:
                    if msg.get("type") != "ack":
                        raise RuntimeError(f"expected an ack for stage.invite, got {msg}")
                    break
    return stage


class CpuMeter:
    """CPU time of a server process and its descendants (an SFU may run in a child process)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_rss = 0

    def _tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self.root, *self.root.children(recursive=True)]
        return []

    def pids(self) -> list[int]:
        return [p.pid for p in self._tree()]

    def snapshot(self) -> tuple[float, dict[int, float]]:
        """(monotonic time, {pid: user+system seconds}); also samples the tree's RSS."""
        times: dict[int, float] = {}
        rss = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                cpu = proc.cpu_times()
                times[proc.pid] = cpu.user + cpu.system
                rss += proc.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        return time.monotonic(), times

    @staticmethod
    def percent(
        before: tuple[float, dict[int, float]], after: tuple[float, dict[int, float]]
    ) -> float:
        """% of one core between two snapshots (processes born in between count from zero)."""
        seconds = after[0] - before[0]
        used = sum(t - before[1].get(pid, 0.0) for pid, t in after[1].items())
        return 100.0 * used / seconds if seconds > 0 else 0.0

    def rss_mb(self) -> float:
        rss = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                rss += proc.memory_info().rss
        return rss / 2**20


def udp_receive_drops(pids: list[int]) -> dict[int, int]:
    """Datagrams the kernel dropped for a full receive buffer, per process, on its open UDP
    sockets (the `drops` column of /proc/net/udp, matched to each process's socket inodes).

    On loopback that is the only place RTP can be lost: when it grows during a window, that
    process did not read its sockets in time (a starved client, or a server that fell behind).
    Sockets closed since are not counted, so compare values taken while the peers are up.
    """
    drops_by_inode: dict[str, int] = {}
    with contextlib.suppress(OSError):
        with open("/proc/net/udp") as table:
            next(table)
            for line in table:
                fields = line.split()
                drops_by_inode[fields[9]] = int(fields[12])
    result: dict[int, int] = {}
    for pid in pids:
        total = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        total += drops_by_inode.get(target[8:-1], 0)
        result[pid] = total
    return result


__all__ = [
    "BENCH_DIR",
    "CpuMeter",
    "Server",
    "Speaker",
    "Stage",
    "baseline_server",
    "node_server",
    "prepare_stage",
    "udp_receive_drops",
]
