"""Liveness and identity of the node."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from junto import __version__
from junto.web.deps import NodeDep

router = APIRouter(tags=["node"])


class Health(BaseModel):
    status: str
    version: str
    node_id: str
    database: str
    pubsub: str


@router.get("/healthz", response_model=Health)
async def healthz(node: NodeDep) -> Health:
    async with node.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return Health(
        status="ok",
        version=__version__,
        node_id=node.settings.node_id,
        database=node.database_backend,
        pubsub=node.pubsub.name,
    )
