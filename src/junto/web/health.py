"""Liveness and identity of the node."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from junto import __version__
from junto.web.deps import NodeDep

router = APIRouter(tags=["node"])


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
    status: str
    version: str
    node_id: str
    database: str
    pubsub: str
    media: MediaHealth | None
    # Live captions on this process: counts, drops and latency since it started.
    captions: CaptionHealth | None = None
    # Job worker processes this node started (more may run elsewhere).
    workers: int = 0


@router.get("/healthz", response_model=Health)
async def healthz(node: NodeDep) -> Health:
    async with node.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
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
        status="ok",
        version=__version__,
        node_id=node.settings.node_id,
        database=node.database_backend,
        pubsub=node.pubsub.name,
        media=media,
        captions=CaptionHealth(**node.captioner.health()) if node.captioner is not None else None,
        workers=len(node.workers.pids) if node.workers is not None else 0,
    )
