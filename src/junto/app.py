"""The composition root: `build_app(settings)` wires every component of a node."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from junto import __version__
from junto.config import Settings
from junto.media.backends import build_media_backend
from junto.node import Node
from junto.pubsub import make_pubsub
from junto.ratelimit import PostingLimiters
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade
from junto.web.render import STATIC_DIR

log = logging.getLogger("junto")


def build_app(settings: Settings, *, migrate: bool = True) -> FastAPI:
    """Build the ASGI app. Services start in the lifespan, so building has no side effects."""
    settings = settings.ensure_secret()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.effective_database_url
        if migrate:
            # Alembic drives its own event loop, so it runs in a worker thread.
            await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        pubsub = make_pubsub(settings.pubsub_url)
        await pubsub.start()
        node = Node(
            settings=settings,
            engine=engine,
            db=make_sessionmaker(engine),
            pubsub=pubsub,
            posting_limits=PostingLimiters(settings.limits),
        )
        from junto.realtime.hub import Hub

        node.hub = Hub(node)
        await node.hub.start()
        node.media = build_media_backend(settings)
        if node.media is not None:
            from junto.realtime.signaling import StageMedia

            await node.media.start()
            node.stage = StageMedia(node, node.media)
            node.hub.event_listeners.append(node.stage.on_room_event)
        app.state.node = node
        log.info(
            "junto %s node %s up: database=%s pubsub=%s media=%s",
            __version__,
            settings.node_id,
            node.database_backend,
            pubsub.name,
            node.media.name if node.media is not None else "off",
        )
        try:
            yield
        finally:
            await node.hub.stop()
            if node.stage is not None:
                await node.stage.stop()
            if node.media is not None:
                await node.media.stop()
            await pubsub.close()
            await engine.dispose()

    app = FastAPI(
        title="Junto",
        version=__version__,
        summary="Live public conversations that become collective knowledge.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    _install_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _install_routes(app: FastAPI) -> None:
    from junto.realtime import ws
    from junto.web import (
        accounts_api,
        accounts_pages,
        conversations_api,
        conversations_pages,
        health,
        room_api,
        room_page,
        security,
    )

    security.install(app)
    for module in (
        health,
        accounts_api,
        accounts_pages,
        conversations_api,
        conversations_pages,
        room_api,
        room_page,
        ws,
    ):
        app.include_router(module.router)
