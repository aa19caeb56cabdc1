"""The running node's shared services, built once by `junto.app.build_app`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from junto.config import Settings
from junto.pubsub import PubSub
from junto.ratelimit import PostingLimiters
from junto.storage.engine import WriteQueue

if TYPE_CHECKING:
    from junto.jobs.supervisor import WorkerPool
    from junto.media.base import MediaBackend
    from junto.realtime.hub import Hub
    from junto.realtime.signaling import StageMedia
    from junto.recording.on_air import OnAir
    from junto.recording.recorder import Recorder
    from junto.speech.live import LiveCaptioner


@dataclass
class Node:
    settings: Settings
    engine: AsyncEngine
    db: async_sessionmaker[AsyncSession]
    pubsub: PubSub
    posting_limits: PostingLimiters
    writes: WriteQueue  # room actions wait here before taking a connection
    hub: Hub | None = None
    media: MediaBackend | None = None  # None when live media is turned off
    stage: StageMedia | None = None
    on_air: OnAir | None = None  # speakers publishing in a live conversation
    recorder: Recorder | None = None  # None when recording is off or there is no media
    captioner: LiveCaptioner | None = None  # None when live captions are off
    workers: WorkerPool | None = None  # job worker processes started by this node

    @property
    def database_backend(self) -> str:
        return self.engine.dialect.name
