"""/healthz tells the truth about what the node depends on: a load balancer or an operator
reading it must see a node whose Redis is gone as down (503), not "ok"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from helpers import eventually, in_process_node
from junto.config import Settings
from private_redis import start_private_redis


async def test_healthz_lists_each_dependency(app_client: httpx.AsyncClient) -> None:
    answer = await app_client.get("/healthz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok"
    assert body["dependencies"]["database"] == "up"
    assert body["dependencies"]["pubsub"] == "up"  # in memory: always there
    assert "redis" not in body["dependencies"]


async def _health_until(client: httpx.AsyncClient, status: int) -> httpx.Response:
    async def answered() -> httpx.Response:
        answer = await client.get("/healthz")
        assert answer.status_code == status, answer.text
        return answer

    return await eventually(answered, 15, every=0.1)


async def test_a_node_whose_redis_is_down_answers_503(tmp_path: Path) -> None:
    redis = start_private_redis(tmp_path)  # our own: the shared one must stay up
    (tmp_path / "data").mkdir()
    settings = Settings(data_dir=tmp_path / "data", secret_key="test-secret", workers=0,
                        captions=False, pubsub_url=redis.url)  # fmt: skip
    try:
        async with in_process_node(settings) as (_node, client):
            up = await client.get("/healthz")
            assert up.status_code == 200, up.text
            assert up.json()["dependencies"]["redis"] == "up"

            redis.kill()
            started = asyncio.get_running_loop().time()
            down = await client.get("/healthz")
            took = asyncio.get_running_loop().time() - started
            assert down.status_code == 503, down.text
            body = down.json()
            assert body["status"] == "down"
            assert body["dependencies"]["redis"] == "down"
            assert body["dependencies"]["database"] == "up"
            assert any("redis" in problem.lower() for problem in body["problems"]), body
            assert took < 3, f"a health check must answer quickly, took {took:.1f} s"

            redis.start()  # the same port: the node finds it again by itself
            again = await _health_until(client, 200)
            assert again.status_code == 200, again.text
            assert again.json()["dependencies"]["redis"] == "up"
    finally:
        redis.kill()
