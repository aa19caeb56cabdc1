"""Posters for `realtime_fanout.py --posters`: people who post at their rate limit (issue 12).

Half of them post over the REST API (`POST /api/conversations/{slug}/backchannel`), half over
their own room WebSocket (`backchannel.post`), each one every `1 / rate` seconds, while the
host's timed posts go out. Each is a guest of its own, so per-person rate limits hold as they
ship. Their bodies carry no `bench#` marker: the load generators count only the timed posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection


@dataclass
class PosterStats:
    posters: int = 0
    sent: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # by HTTP status or error code
    errors_5xx: int = 0  # HTTP 5xx, and `internal`/`busy` error frames
    answer_ms: list[float] = field(default_factory=list)

    def refuse(self, key: str, server_error: bool) -> None:
        self.refused[key] = self.refused.get(key, 0) + 1
        self.errors_5xx += server_error


async def make_guests(base_url: str, count: int) -> list[httpx.AsyncClient]:
    """`count` guests, each an HTTP client holding its session and CSRF cookies."""
    clients: list[httpx.AsyncClient] = []

    async def one(i: int) -> None:
        http = httpx.AsyncClient(base_url=base_url, timeout=30)
        clients.append(http)
        (await http.get("/signin")).raise_for_status()
        token = http.cookies.get("junto_csrf") or ""
        name = f"poster {i} {secrets.token_hex(2)}"
        answer = await http.post(
            "/api/guest", json={"display_name": name}, headers={"X-CSRF-Token": token}
        )
        if answer.status_code != 201:
            raise RuntimeError(f"expected a guest, got {answer.status_code}: {answer.text[:200]}")

    for start in range(0, count, 20):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 20))))
    return clients


async def rest_poster(
    http: httpx.AsyncClient, slug: str, rate: float, stop: asyncio.Event, stats: PosterStats
) -> None:
    token = http.cookies.get("junto_csrf") or ""
    n = 0
    while not stop.is_set():
        tick = time.monotonic()
        n += 1
        stats.sent += 1
        try:
            answer = await http.post(
                f"/api/conversations/{slug}/backchannel",
                json={"body": f"rest poster says {n} #load"},
                headers={"X-CSRF-Token": token},
            )
        except httpx.HTTPError as exc:
            stats.refuse(type(exc).__name__, server_error=True)
        else:
            stats.answer_ms.append((time.monotonic() - tick) * 1000)
            if answer.status_code == 201:
                stats.accepted += 1
            else:
                stats.refuse(str(answer.status_code), server_error=answer.status_code >= 500)
        await _pace(stop, tick, rate)


async def ws_poster(
    ws_url: str,
    http: httpx.AsyncClient,
    origin: str,
    rate: float,
    stop: asyncio.Event,
    stats: PosterStats,
) -> None:
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    async with websockets.connect(
        ws_url,
        additional_headers={"Cookie": cookie},
        origin=origin,  # type: ignore[arg-type]
        compression=None,
        max_size=None,
        max_queue=None,
    ) as ws:
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1, "resume_from": None}).decode())
        answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        reader = asyncio.create_task(_read_answers(ws, answers))
        try:
            n = 0
            while not stop.is_set():
                tick = time.monotonic()
                n += 1
                ref = f"w{n}"
                future = answers[ref] = asyncio.get_running_loop().create_future()
                frame = {"type": "backchannel.post", "body": f"ws poster says {n}", "ref": ref}
                stats.sent += 1
                await ws.send(orjson.dumps(frame).decode())
                try:
                    answer = await asyncio.wait_for(future, 30)
                except TimeoutError:
                    stats.refuse("no answer in 30 s", server_error=True)
                else:
                    stats.answer_ms.append((time.monotonic() - tick) * 1000)
                    if answer["type"] == "ack":
                        stats.accepted += 1
                    else:
                        code = str(answer.get("code"))
                        stats.refuse(code, server_error=code in ("internal", "busy"))
                await _pace(stop, tick, rate)
        finally:
            reader.cancel()


async def _read_answers(
    ws: ClientConnection, answers: dict[str, asyncio.Future[dict[str, Any]]]
) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            if '"ack"' not in raw and '"error"' not in raw:
                continue  # broadcasts, presence, heartbeats
            msg = orjson.loads(raw)
            future = answers.pop(str(msg.get("ref")), None)
            if future is not None and not future.done():
                future.set_result(msg)


async def _pace(stop: asyncio.Event, tick: float, rate: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, 1 / rate - (time.monotonic() - tick)))


class Posters:
    """The posters of one run: created before the timed posts, stopped after them."""

    def __init__(self, count: int, rate: float) -> None:
        self.count = count
        self.rate = rate
        self.stats = PosterStats(posters=count)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.clients: list[httpx.AsyncClient] = []

    async def start(self, base_url: str, ws_url: str, slug: str) -> None:
        if self.count == 0:
            return
        self.clients = await make_guests(base_url, self.count)
        for i, http in enumerate(self.clients):
            if i % 2 == 0:
                job = rest_poster(http, slug, self.rate, self.stop, self.stats)
            else:
                job = ws_poster(ws_url, http, base_url, self.rate, self.stop, self.stats)
            self.tasks.append(asyncio.create_task(job))

    async def finish(self) -> PosterStats:
        self.stop.set()
        for outcome in await asyncio.gather(*self.tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                self.stats.refuse(type(outcome).__name__, server_error=True)
        for http in self.clients:
            await http.aclose()
        return self.stats
