"""The composition root: `build_app(settings)` wires every component of a node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from junto import __version__
from junto.config import Settings
from junto.media.backends import build_media_backend
from junto.node import Node
from junto.pubsub import make_pubsub
from junto.ratelimit import PostingLimiters
from junto.storage.engine import WriteQueue, make_engine, make_sessionmaker
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
        engine = make_engine(url, pool_timeout=settings.db_wait_seconds)
        pubsub = make_pubsub(settings.pubsub_url)
        await pubsub.start()
        node = Node(
            settings=settings,
            engine=engine,
            db=make_sessionmaker(engine),
            pubsub=pubsub,
            posting_limits=PostingLimiters(settings.limits),
            writes=WriteQueue.for_url(url),
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
            await _start_capture(node)
        if settings.workers > 0:
            from junto.jobs.supervisor import WorkerPool

            node.workers = WorkerPool(settings)
            await node.workers.start()
        app.state.node = node
        housekeeping = _start_housekeeping(node)
        from junto.search.vectors import one_blas_thread
        from junto.search.vectorstore import warm

        one_blas_thread()
        warming = asyncio.create_task(warm(node.db, settings), name="search-warm-up")
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
            for task in (warming, housekeeping):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await node.hub.stop()
            if node.on_air is not None:
                await node.on_air.stop()  # closes every recording piece and caption stream
            if node.recorder is not None:
                await node.recorder.stop()
            if node.captioner is not None:
                await node.captioner.stop()
            if node.workers is not None:
                await node.workers.stop()
            if node.stage is not None:
                await node.stage.stop()
            if node.media is not None:
                await node.media.stop()
            await node.writes.idle()  # what was queued before the hub stopped is stored
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
    _document_bad_bodies(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    from junto.web.busy import BusyGuard
    from junto.web.compression import AnonymousGZip

    # Outside the security middleware: its session lookup needs a connection too.
    app.add_middleware(BusyGuard)
    app.add_middleware(AnonymousGZip)  # outermost: compresses the finished response
    return app


def _start_housekeeping(node: Node) -> asyncio.Task[None] | None:
    """Every process keeps the next `housekeeping.sweep` queued (junto.housekeeping); the
    scheduling is locked, so several processes queue one sweep, not one each."""
    minutes = node.settings.housekeeping_minutes
    if minutes <= 0:
        return None
    from junto.housekeeping import keep_scheduled

    every = timedelta(minutes=minutes)
    return asyncio.create_task(keep_scheduled(node.db, every), name="housekeeping")


async def _start_capture(node: Node) -> None:
    """Recording and live captions: both follow who is on air (junto.recording.on_air)."""
    from junto.recording.on_air import OnAir

    assert node.hub is not None and node.stage is not None
    node.on_air = OnAir(node)
    node.stage.publication_listeners.append(node.on_air.publications_changed)
    node.hub.event_listeners.append(node.on_air.on_room_event)
    if node.settings.recording:
        from junto.recording.recorder import Recorder

        node.recorder = Recorder(node)
        node.on_air.add(node.recorder)
        await node.recorder.start()
    if node.settings.captions:
        from junto.speech.live import LiveCaptioner

        node.captioner = LiveCaptioner(node)
        node.on_air.add(node.captioner)
        await node.captioner.start()


BAD_BODY_DESCRIPTION = (
    "The body is not strict JSON (`bad_json`): not UTF-8, malformed, or holding NaN, Infinity, "
    "a number too large for a double or an unpaired surrogate escape."
)
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}


def _document_bad_bodies(app: FastAPI) -> None:
    """List the 400 every JSON body can get (junto.web.security refuses bodies that are not
    strict JSON before any handler runs) on each operation that takes a body, so clients that
    follow the OpenAPI document expect it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI caches it; adding below is idempotent
        for item in document.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    _add_bad_body(operation.setdefault("responses", {}))
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _add_bad_body(responses: dict[str, Any]) -> None:
    existing = responses.get("400")
    if existing is None:
        responses["400"] = {
            "description": BAD_BODY_DESCRIPTION,
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }
    elif BAD_BODY_DESCRIPTION not in existing.get("description", ""):
        # The route's own 400 (a bad token, a bad cursor) keeps its words; this one is added.
        said = existing.get("description", "")
        existing["description"] = f"{said} {BAD_BODY_DESCRIPTION}".strip()


def _install_routes(app: FastAPI) -> None:
    from junto.web import (
        accounts_api,
        accounts_pages,
        captions_api,
        conversation_page,
        conversations_api,
        conversations_pages,
        feeds,
        health,
        jobs_api,
        room_api,
        room_page,
        search_api,
        search_pages,
        security,
        snippet_pages,
        snippets_api,
        transcript_api,
        transcript_pages,
        ws,
    )

    security.install(app)
    for module in (
        health,
        accounts_api,
        accounts_pages,
        captions_api,
        conversation_page,
        conversations_api,
        conversations_pages,
        feeds,
        jobs_api,
        room_api,
        room_page,
        search_api,
        search_pages,
        snippet_pages,
        snippets_api,
        transcript_api,
        transcript_pages,
        ws,
    ):
        app.include_router(module.router)
