"""FastAPI dependencies shared by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from junto.node import Node


def get_node(conn: HTTPConnection) -> Node:
    node: Node = conn.app.state.node
    return node


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_node(request).db() as session:
        yield session


async def hand_over(db: AsyncSession) -> None:
    """Give the request's connection back before work that takes its own (room actions).

    A session keeps its connection from its first query until its transaction ends, so a route
    that read with `db` and then awaits something that opens `node.db()` would hold two
    connections, and a burst of such requests, each holding one and waiting for a second,
    empties the pool: every request then stalls until the pool times out (issue 12). `close()`
    ends the (read-only) transaction and detaches what was loaded with its attributes kept, so
    the route can go on using those objects; `rollback()` would expire them instead. Call it
    only on a session without unsaved changes: closing discards them.
    """
    if db.new or db.dirty or db.deleted:
        raise RuntimeError("expected a session without unsaved changes, got pending changes")
    await db.close()


NodeDep = Annotated[Node, Depends(get_node)]
DbDep = Annotated[AsyncSession, Depends(get_db)]
