"""Feed routes: /feeds/conversations.rss, /feeds/conversations.atom, /feeds/podcast.rss."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from junto import feeds
from junto.web.deps import DbDep, NodeDep

router = APIRouter(include_in_schema=False)

TITLE = "Junto"
# Readers poll; a minute of caching spares the database without delaying a new episode much.
CACHE = {"Cache-Control": "public, max-age=60"}


@router.get("/feeds/conversations.rss")
async def conversations_rss(db: DbDep, node: NodeDep) -> Response:
    entries = await feeds.published(db)
    body = feeds.rss(entries, node.settings.base_url, TITLE)
    return Response(body, media_type="application/rss+xml; charset=utf-8", headers=CACHE)


@router.get("/feeds/conversations.atom")
async def conversations_atom(db: DbDep, node: NodeDep) -> Response:
    entries = await feeds.published(db)
    body = feeds.atom(entries, node.settings.base_url, TITLE)
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers=CACHE)


@router.get("/feeds/podcast.rss")
async def podcast_rss(db: DbDep, node: NodeDep) -> Response:
    entries = await feeds.published(db)
    body = feeds.rss(entries, node.settings.base_url, TITLE, podcast=True)
    return Response(body, media_type="application/rss+xml; charset=utf-8", headers=CACHE)
