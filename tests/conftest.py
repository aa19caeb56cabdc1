"""Shared fixtures: databases (SQLite and the test PostgreSQL), an in-process app, live nodes.

`./tasks test` starts a private PostgreSQL and Redis and exports JUNTO_TEST_POSTGRES_URL and
JUNTO_TEST_REDIS_URL. Without them, tests that need those services skip locally, but fail under
CI (CI=true), so a missing service can never pass silently.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager  # type: ignore[import-not-found]

from helpers import missing
from junto.app import build_app
from junto.config import Settings

# Support modules (`*_support.py`, unique names) import from any test directory: a feed test
# builds its conversation with the transcripts' support, a snippet test with the media's.
for _folder in sorted(Path(__file__).parent.iterdir()):
    if _folder.is_dir() and not _folder.name.startswith((".", "_")):
        sys.path.append(str(_folder))


def need_service(env_name: str, what: str) -> str:
    """The service's URL from `env_name`; like a missing tool, skips locally, fails under CI."""
    url = os.environ.get(env_name)
    if url:
        return url
    missing(f"{what} not available ({env_name} is not set): run the tests through ./tasks test")


# ---- databases ------------------------------------------------------------------------------


async def _pg_create(admin_url: str, name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _pg_drop(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    admin = need_service("JUNTO_TEST_POSTGRES_URL", "PostgreSQL")
    name = "junto_test_" + secrets.token_hex(6)
    asyncio.run(_pg_create(admin, name))
    yield admin.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_pg_drop(admin, name))


@pytest.fixture
def redis_url() -> str:
    return need_service("JUNTO_TEST_REDIS_URL", "Redis")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'junto.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # No job worker processes: tests that need workers run them explicitly. The public URL is
    # the address the in-process clients use (httpx's http://testserver), as an operator sets
    # JUNTO_PUBLIC_URL to the address people use: absolute links never come from a Host header.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret",
        workers=0,
        public_url="http://testserver",
    )


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to an in-process node (lifespan started, migrations run)."""
    app = build_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client


# ---- live nodes (real processes, for WebSocket, browser and multi-node tests) ------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveNode:
    """A `junto serve` process on 127.0.0.1."""

    data_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        with open(self.data_dir / "node.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "junto",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited early:\n{self.log_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node did not become healthy:\n{self.log_text()}")

    def stop(self, hard: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if hard:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        path = self.data_dir / "node.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""


def make_live_node(data_dir: Path, **env: str) -> LiveNode:
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JUNTO_")}
    full_env.update({"JUNTO_SECRET_KEY": "live-test-secret", "JUNTO_LOG_LEVEL": "warning"})
    # Captions (a Whisper worker process) and job workers cost CPU that most live-node tests do
    # not need; the recording and transcription tests turn them on.
    full_env.update({"JUNTO_CAPTIONS": "0", "JUNTO_WORKERS": "0"})
    # Every test client comes from 127.0.0.1: the per-address socket limits would count a load
    # test's hundred people as one address. test_ws_address_limits.py sets its own.
    full_env.update(
        {"JUNTO_LIMIT_WS_PER_ADDRESS": "100000", "JUNTO_LIMIT_WS_CONNECT_BURST": "100000"}
    )
    full_env.update(env)
    return LiveNode(data_dir=data_dir, port=free_port(), env=full_env)


@pytest.fixture
def live_node(tmp_path: Path) -> Iterator[LiveNode]:
    """A running node with embedded defaults (SQLite, in-memory pub/sub)."""
    node = make_live_node(tmp_path / "node")
    node.start()
    yield node
    node.stop()
