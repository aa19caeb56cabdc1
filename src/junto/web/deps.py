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


NodeDep = Annotated[Node, Depends(get_node)]
DbDep = Annotated[AsyncSession, Depends(get_db)]
