"""Review: account rate limiters stay small whatever clients type."""

from __future__ import annotations

import asyncio
import os
import re

import httpx
from asgi_lifespan import LifespanManager  # type: ignore[import-not-found]

from junto import accounts
from junto.app import build_app
from junto.config import Settings


async def test_signin_rate_limit_keys_are_bounded_and_still_limit(settings: Settings) -> None:
    app = build_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        page = await client.get("/signin")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match
        huge = "u" * 200_000  # fits the 256 KiB form limit
        statuses = []
        for _ in range(11):
            form = {"username": huge, "password": "not-the-password", "csrf_token": match[1]}
            statuses.append((await client.post("/signin", data=form)).status_code)
        # Ten tries, then the same (digested) key is refused: limiting still works.
        assert statuses[:10] == [401] * 10 and statuses[10] == 429, statuses
        keys = list(app.state.account_limiters.signin._buckets)
        assert keys and max(len(k) for k in keys) <= 128, [len(k) for k in keys]


async def test_a_burst_of_password_checks_leaves_the_default_executor_free() -> None:
    """argon2 runs in its own pool: while more sign-ins than asyncio's default executor has
    threads are being checked, the loop's other thread work (getaddrinfo for a new database
    connection, to_thread) still runs at once instead of queueing behind them."""
    loop = asyncio.get_running_loop()
    stored = await accounts._hash("correct horse")
    default_workers = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
    burst = [
        asyncio.create_task(accounts._verify(stored, f"wrong {i}"))
        for i in range(default_workers + 2)
    ]
    await asyncio.sleep(0.05)
    started = loop.time()
    await loop.getaddrinfo("localhost", 80)
    waited = loop.time() - started
    assert not any(await asyncio.gather(*burst))
    assert waited < 0.2, f"getaddrinfo waited {waited:.2f}s behind password hashing"


async def test_oversized_request_bodies_are_refused_before_being_read(
    app_client: httpx.AsyncClient,
) -> None:
    page = await app_client.get("/signin")
    headers = {"X-CSRF-Token": page.cookies.get("junto_csrf") or app_client.cookies["junto_csrf"]}
    huge = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    headers["Content-Type"] = "application/json"
    response = await app_client.post("/api/conversations", content=huge, headers=headers)
    assert response.status_code == 413, response.text[:200]
    # Ordinary requests are unaffected.
    small = await app_client.post("/api/conversations", json={"title": "x"}, headers=headers)
    assert small.status_code == 401, small.text
