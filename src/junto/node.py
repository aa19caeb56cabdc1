"""The running node's shared services, built once by `junto.app.build_app`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from junto.config import Settings
from junto.pubsub import PubSub
from junto.ratelimit import PostingLimiters

if TYPE_CHECKING:
    from junto.media.base import MediaBackend
    from junto.realtime.hub import Hub
    from junto.realtime.signaling import StageMedia


@dataclass
class Node:
    settings: Settings
    engine: AsyncEngine
    db: async_sessionmaker[AsyncSession]
    pubsub: PubSub
    posting_limits: PostingLimiters
    hub: Hub | None = None
    media: MediaBackend | None = None  # None when live media is turned off
    stage: StageMedia | None = None

    @property
    def database_backend(self) -> str:
        return self.engine.dialect.name
