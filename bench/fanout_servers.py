"""The servers `realtime_fanout.py` measures: start, health-check, stop, and set up a room.

The node runs as `python -m junto serve` on a fresh data dir; the baseline is
`baseline_broadcast.py`. For the node, a host is signed up and a public conversation created and
started through the HTTP API, as a person would.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit() -> None:
    """Children inherit it: the node needs one descriptor per connection, too."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
    except (ValueError, OSError):  # not root: the hard limit is as far as we may go
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Server:
    """A server process under test (the node or the baseline) and its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} did not answer /healthz in {timeout} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


_GC_LAUNCHER = (
    "import gc, sys; gc.set_threshold(*map(int, sys.argv.pop(1).split(','))); "
    "from junto.cli import main; sys.exit(main(sys.argv[1:]))"
)


def baseline_server(workdir: Path, args: argparse.Namespace) -> Server:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "baseline_broadcast.py"), "--port", str(port)]
    argv += ["--fanout", args.baseline_fanout]
    if args.gc_threshold:
        argv += ["--gc-threshold", args.gc_threshold]
    return Server("baseline", argv, dict(os.environ), workdir, port)


def node_server(workdir: Path, args: argparse.Namespace) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNTO_")}
    env.update(
        JUNTO_SECRET_KEY=secrets.token_urlsafe(32),
        JUNTO_LOG_LEVEL="warning",
        # Every load-generating client connects from 127.0.0.1: lift the per-address socket
        # limits (junto.ratelimit.AddressConnections), or one address would hold them all.
        JUNTO_LIMIT_WS_PER_ADDRESS="1000000",
        JUNTO_LIMIT_WS_CONNECT_BURST="1000000",
    )
    for pair in args.node_env:
        key, _, value = pair.partition("=")
        env[key] = value
    argv = [sys.executable, "-m", "junto"]
    if args.gc_threshold:
        # What-if experiment: the node's own code, with the collector tuned before it starts.
        argv = [sys.executable, "-c", _GC_LAUNCHER, args.gc_threshold]
    argv += ["serve", "--port", str(port), "--data-dir", str(workdir / "node-data")]
    if args.database_url:
        argv += ["--database-url", args.database_url]
    if args.pubsub_url:
        argv += ["--pubsub-url", args.pubsub_url]
    return Server("node", argv, env, workdir, port)


@dataclass
class Room:
    """Where the clients connect and how the poster proves who it is."""

    ws_path: str
    poster_headers: dict[str, str] = field(default_factory=dict)


def _csrf_post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    token = client.cookies.get("junto_csrf") or ""
    response = client.post(path, json=body, headers={"X-CSRF-Token": token})
    if response.status_code >= 400:
        raise RuntimeError(
            f"expected success from POST {path}, got {response.status_code}: {response.text[:300]}"
        )
    return dict(response.json()) if response.content else {}


def prepare_node_room(server: Server) -> Room:
    """Sign up a host, create a public conversation and start it, through the HTTP API."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/signin").raise_for_status()  # sets the junto_csrf cookie
        _csrf_post(
            client,
            "/api/signup",
            {
                "username": "benchhost",
                "password": secrets.token_urlsafe(16),
                "display_name": "Bench Host",
            },
        )
        created = _csrf_post(
            client,
            "/api/conversations",
            {
                "title": "Fan-out benchmark",
                "description": "bench/realtime_fanout.py",
                "visibility": "public",
            },
        )
        slug = created.get("slug") or created["conversation"]["slug"]
        _csrf_post(client, f"/api/conversations/{slug}/start", {})
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return Room(f"/ws/conversations/{slug}", {"Cookie": cookie})
