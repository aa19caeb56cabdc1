"""The benchmark's baseline: a minimal broadcast-only WebSocket server on Junto's server stack.

Same stack as the node (uvicorn with its automatic choices: uvloop, httptools, the websockets
sans-I/O protocol; Starlette's WebSocket) and the same uvicorn options and garbage-collector
settings as `junto serve` (see `node_runtime`). It speaks just enough of
docs/protocol.md for the benchmark's clients: `hello` gets `welcome` and an empty `snapshot`,
`backchannel.post` gets an `ack` and is broadcast to every connection as a `backchannel.post`
stream frame shaped like the node's. No database, no accounts, no permissions, no presence.

Fan-out shape (`--fanout`): by default each connection has its own queue and writer task, the
structure the node must have anyway (issue 2: "per-connection send queues so one slow client
never slows the others"), so the ratio node/baseline measures what the node adds on top of a
fair fan-out: storing the post, the event log, pub/sub, presence. `--fanout direct` is the naive
`for ws in clients: await ws.send_text(frame)` loop, which is cheaper per message but lets one
slow socket stall everyone behind it; the benchmark README records both.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

HEARTBEAT_SECONDS = 15.0
# The options `junto serve` passed to uvicorn.run when this was written. When junto.cli offers
# `uvicorn_options(settings)` (and `tune_gc()`), the baseline uses those instead, so the two
# servers can never drift apart.
FALLBACK_UVICORN_OPTIONS: dict[str, Any] = {
    "ws_max_size": 1 << 20,
    "backlog": 4096,
    "ws_ping_interval": HEARTBEAT_SECONDS,
    "ws_ping_timeout": HEARTBEAT_SECONDS * 2,
    "proxy_headers": False,
    "access_log": False,
}
QUEUE_MAX = 1000  # like Limits.send_queue_max: a client this far behind is dropped


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Room:
    """All connections of the one conversation and the fan-out to them."""

    def __init__(self, fanout: str) -> None:
        self.fanout = fanout
        self.queues: dict[WebSocket, asyncio.Queue[str]] = {}
        self.ids = itertools.count(1)
        self.started = time.monotonic()

    def post_frame(self, body: str) -> tuple[int, str]:
        """A frame shaped like the node's `backchannel.post` event, serialised once."""
        event_id = next(self.ids)
        ts = _now_iso()
        post = {
            "id": event_id,
            "author": {"id": 1, "name": "Bench Host", "colour": "#1f6feb", "is_guest": False},
            "body": body,
            "hashtags": [],
            "offset_ms": int((time.monotonic() - self.started) * 1000),
            "created_at": ts,
            "reactions": {},
        }
        frame = {
            "type": "backchannel.post",
            "stream": "room",
            "id": event_id,
            "ts": ts,
            "data": {"post": post},
        }
        return event_id, orjson.dumps(frame).decode()

    async def broadcast(self, frame: str) -> None:
        if self.fanout == "direct":
            for ws in list(self.queues):
                try:
                    await ws.send_text(frame)
                except (WebSocketDisconnect, RuntimeError):
                    pass
            return
        for ws, queue in list(self.queues.items()):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:  # too slow: drop it, it would resume (close 4008)
                self.queues.pop(ws, None)


async def _writer(ws: WebSocket, queue: asyncio.Queue[str]) -> None:
    while True:
        frame = await queue.get()
        await ws.send_text(frame)


async def _serve_connection(room: Room, ws: WebSocket) -> None:
    await ws.accept()
    hello = orjson.loads(await ws.receive_text())
    if hello.get("type") != "hello":
        await ws.close(4400)
        return
    welcome = {"type": "welcome", "protocol": 1, "heartbeat_seconds": HEARTBEAT_SECONDS}
    await ws.send_text(orjson.dumps({**welcome, "resume": "snapshot"}).decode())
    await ws.send_text(orjson.dumps({"type": "snapshot", "last_id": 0, "backchannel": []}).decode())
    queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_MAX)
    room.queues[ws] = queue
    writer = asyncio.create_task(_writer(ws, queue)) if room.fanout == "queue" else None
    try:
        while True:
            msg = orjson.loads(await ws.receive_text())
            reply: dict[str, Any]
            if msg.get("type") == "backchannel.post":
                event_id, frame = room.post_frame(str(msg.get("body", "")))
                await room.broadcast(frame)
                reply = {"type": "ack", "ref": msg.get("ref"), "id": event_id}
            else:
                reply = {"type": "pong"} if msg.get("type") == "ping" else {"type": "error"}
            await ws.send_text(orjson.dumps(reply).decode())
    except WebSocketDisconnect:
        pass
    finally:
        room.queues.pop(ws, None)
        if writer is not None:
            writer.cancel()


def build_app(fanout: str = "queue") -> Starlette:
    room = Room(fanout)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "connections": len(room.queues)})

    async def conversation_ws(ws: WebSocket) -> None:
        await _serve_connection(room, ws)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            WebSocketRoute("/ws/conversations/{slug}", conversation_ws),
        ]
    )


def node_runtime() -> tuple[dict[str, Any], Callable[[], None] | None]:
    """The node's uvicorn options and garbage-collector tuning, as `junto serve` applies them."""
    from junto import cli
    from junto.config import load_settings

    options_of = getattr(cli, "uvicorn_options", None)
    if options_of is None:
        options = dict(FALLBACK_UVICORN_OPTIONS)
    else:
        options = {
            k: v
            for k, v in options_of(load_settings()).items()
            if k not in ("host", "port", "log_level")
        }
    return options, getattr(cli, "tune_gc", None)


def main() -> None:
    p = argparse.ArgumentParser(description="Minimal broadcast-only WebSocket server (baseline).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--fanout", choices=["queue", "direct"], default="queue")
    p.add_argument("--log-level", default="warning")
    p.add_argument("--gc-threshold", metavar="G0,G1,G2", help="gc.set_threshold before serving")
    args = p.parse_args()
    options, tune_gc = node_runtime()
    app = build_app(args.fanout)
    if tune_gc is not None:
        tune_gc()
    if args.gc_threshold:
        gc.set_threshold(*(int(g) for g in args.gc_threshold.split(",")))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **options)


if __name__ == "__main__":
    main()
