"""Liveness, dependencies and identity of the node.

`/healthz` checks what the node cannot work without, each with a short timeout, and answers
503 when one is down, so a load balancer takes the process out of rotation and an operator sees
why: the database (`SELECT 1`) and, with the redis pub/sub, Redis (`PING` on a connection of its
own, so a check never waits behind the hub's traffic). The media backend, the caption worker and
the job workers are reported too; without them the node still serves, so they make the status
"degraded", not down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from junto import __version__
from junto.node import Node
from junto.web.deps import NodeDep

router = APIRouter(tags=["node"])
log = logging.getLogger("junto")

CHECK_TIMEOUT_S = 1.0  # a health check must answer well within a load balancer's own timeout
State = Literal["up", "down", "idle"]


class MediaHealth(BaseModel):
    backend: str
    rooms: int
    publishers: int
    subscribers: int
    viewers: int
    max_viewers: int


class CaptionHealth(BaseModel):
    captions: int
    partials: int
    worker_restarts: int
    dropped_packets: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    delivered_ms_p95: float | None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"] = Field(
        description="down (503): a required dependency (database, Redis) is down; degraded: an "
        "optional one (caption worker, job workers) is; ok otherwise."
    )
    version: str
    node_id: str
    database: str
    pubsub: str
    media: MediaHealth | None
    # Live captions on this process: counts, drops and latency since it started.
    captions: CaptionHealth | None = None
    # Job worker processes this node started (more may run elsewhere).
    workers: int = 0
    dependencies: dict[str, State] = Field(
        default_factory=dict,
        description="database, pubsub or redis, media, captions, job_workers: up, down, or idle "
        "(the caption worker starts with the first speaker on air).",
    )
    problems: list[str] = Field(default_factory=list, description="Why a dependency is down.")


REQUIRED = ("database", "pubsub", "redis")


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A required dependency is down."}},
)
async def healthz(node: NodeDep) -> Health | JSONResponse:
    checks = await asyncio.gather(_database(node), _pubsub(node))
    dependencies: dict[str, State] = {}
    problems: list[str] = []
    for name, problem in checks:
        dependencies[name] = "up" if problem is None else "down"
        if problem is not None:
            problems.append(problem)
    dependencies.update(_processes(node, problems))
    health = _report(node, dependencies, problems)
    if health.status == "down":
        return JSONResponse(health.model_dump(mode="json"), status_code=503)
    return health


async def _database(node: Node) -> tuple[str, str | None]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), node.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except TimeoutError:
        return "database", f"the database did not answer SELECT 1 within {CHECK_TIMEOUT_S} s"
    except Exception as exc:  # whatever the driver raises, the answer is "down", and why
        # The details (host names, database names) go to the log, not to anyone who asks.
        log.warning("health check: the database refused SELECT 1: %r", exc)
        return "database", f"the database refused SELECT 1 ({type(exc).__name__})"
    return "database", None


async def _pubsub(node: Node) -> tuple[str, str | None]:
    if node.pubsub.name != "redis":
        return "pubsub", None  # in this process's memory: there as long as the process is
    import redis.asyncio as aioredis

    client = aioredis.from_url(
        node.settings.pubsub_url,
        socket_connect_timeout=CHECK_TIMEOUT_S,
        socket_timeout=CHECK_TIMEOUT_S,
        retry_on_timeout=False,
    )
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S * 2):
            await client.ping()
    except Exception as exc:  # refused, timed out, wrong password: Redis is not usable
        log.warning("health check: Redis did not answer PING: %r", exc)
        return "redis", f"Redis did not answer PING ({type(exc).__name__})"
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    return "redis", None


def _processes(node: Node, problems: list[str]) -> dict[str, State]:
    """What the node's own helpers are doing: known without waiting for anything."""
    found: dict[str, State] = {}
    if node.media is not None:
        found["media"] = "up"  # the embedded SFU runs in this process
    if node.captioner is not None:
        process = node.captioner.process
        found["captions"] = "up" if process is not None and process.pid is not None else "idle"
    if node.workers is not None:
        running, wanted = len(node.workers.pids), node.settings.workers
        found["job_workers"] = "up" if running >= wanted else "down"
        if running < wanted:
            problems.append(f"{running} of {wanted} job worker processes are running")
    return found


def _report(node: Node, dependencies: dict[str, State], problems: list[str]) -> Health:
    if any(dependencies.get(name) == "down" for name in REQUIRED):
        status: Literal["ok", "degraded", "down"] = "down"
    elif "down" in dependencies.values():
        status = "degraded"
    else:
        status = "ok"
    media = None
    if node.media is not None:
        rooms = node.media.stats()
        media = MediaHealth(
            backend=node.media.name,
            rooms=len(rooms),
            publishers=sum(r.publishers for r in rooms),
            subscribers=sum(r.subscribers for r in rooms),
            viewers=node.media.viewer_count(),
            max_viewers=node.settings.media_max_viewers,
        )
    return Health(
        status=status,
        version=__version__,
        node_id=node.settings.node_id,
        database=node.database_backend,
        pubsub=node.pubsub.name,
        media=media,
        captions=CaptionHealth(**node.captioner.health()) if node.captioner is not None else None,
        workers=len(node.workers.pids) if node.workers is not None else 0,
        dependencies=dependencies,
        problems=problems,
    )
