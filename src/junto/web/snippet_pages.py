"""A snippet's page `/s/{slug}`, its embeddable player `/s/{slug}/embed`, oEmbed and its files.

The page is rendered on the server with Open Graph tags (link previews show the clip) and an
oEmbed discovery link. The embed page is the only page of the node that other sites may frame
(junto.web.security exempts `/s/{slug}/embed` from `frame-ancestors 'none'` / X-Frame-Options).
Files are served with Range support (Starlette's FileResponse) under the snippet's visibility.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlparse

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from junto import clips, snippets
from junto.node import Node
from junto.storage.tables import Conversation, Snippet
from junto.web import security
from junto.web.deps import DbDep, NodeDep
from junto.web.render import render
from junto.web.snippets_api import EMBED_HEIGHT, EMBED_WIDTH, describe
from junto.web.transcript_pages import stored_file

router = APIRouter(include_in_schema=False)

FILES = {
    "clip.mp4": ("clip_path", "video/mp4"),
    "audio.m4a": ("audio_path", "audio/mp4"),
    "thumbnail.jpg": ("thumb_path", "image/jpeg"),
}
DESCRIPTION_CHARS = 300


def mmss(ms: int) -> str:
    seconds = max(0, ms) // 1000
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def _not_found(what: str) -> Response:
    return security.error_response(404, "not_found", what)


async def _visible(
    request: Request, db: AsyncSession, slug: str
) -> tuple[Snippet, Conversation] | None:
    snippet = await snippets.get_by_slug(db, slug)
    conv = await db.get(Conversation, snippet.conversation_id) if snippet else None
    if snippet is None or conv is None:
        return None
    if not await snippets.can_see(db, conv, security.current_user(request)):
        return None
    return snippet, conv


async def _context(
    request: Request, node: Node, db: AsyncSession, snippet: Snippet, conv: Conversation
) -> dict[str, Any]:
    about = await describe(request, node, db, snippet, conv)
    viewer = security.current_user(request)
    text = snippet.text
    base = node.settings.base_url
    return {
        "snippet": about,
        "conv": conv,
        "from_clock": mmss(snippet.start_ms),
        "length": mmss(snippet.end_ms - snippet.start_ms + 500),
        "speakers": [
            {**s, "consent_date": (s["consent_given_at"] or "")[:10]} for s in about["speakers"]
        ],
        "description": text if len(text) <= DESCRIPTION_CHARS else text[:299] + "…",
        "oembed": f"{base}/oembed?url={quote(about['url'], safe='')}&format=json",
        "can_delete": viewer is not None
        and not viewer.is_guest
        and await snippets.can_delete(db, snippet, conv, viewer),
    }


@router.get("/s/{slug}")
async def snippet_page(request: Request, slug: str, db: DbDep, node: NodeDep) -> Response:
    found = await _visible(request, db, slug)
    if found is None:
        return render(
            request,
            "conversation_problem.html",
            status_code=404,
            heading="No such snippet",
            message="It may have been deleted, or the conversation is not public.",
        )
    return render(request, "snippet.html", **await _context(request, node, db, *found))


@router.get("/s/{slug}/embed")
async def snippet_embed(request: Request, slug: str, db: DbDep, node: NodeDep) -> Response:
    found = await _visible(request, db, slug)
    if found is None:
        return _not_found("no such snippet")
    return render(request, "snippet_embed.html", **await _context(request, node, db, *found))


@router.get("/oembed")
async def oembed(
    request: Request,
    db: DbDep,
    node: NodeDep,
    url: str = Query(..., max_length=2000),
    format: str = Query("json", max_length=10),
    maxwidth: int | None = Query(None, ge=1, le=10_000),
    maxheight: int | None = Query(None, ge=1, le=10_000),
) -> Response:
    """oEmbed 1.0 for snippet pages: a `video` whose html is the embed iframe."""
    if format != "json":
        return security.error_response(501, "not_implemented", "only format=json is offered")
    parts = urlparse(url)
    segments = [p for p in parts.path.split("/") if p]
    if len(segments) < 2 or segments[0] != "s":
        return _not_found("not a snippet's address")
    found = await _visible(request, db, segments[1])
    if found is None:
        return _not_found("no such snippet")
    snippet, conv = found
    about = await describe(request, node, db, snippet, conv)
    width, height = EMBED_WIDTH, EMBED_HEIGHT
    # Keep the aspect ratio when a consumer asks for something smaller.
    scale = min(1.0, (maxwidth or width) / width, (maxheight or height) / height)
    width, height = max(1, int(width * scale)), max(1, int(height * scale))
    answer: dict[str, Any] = {
        "version": "1.0",
        "type": "video",
        "title": snippet.title,
        "author_name": ", ".join(s["name"] for s in about["speakers"]) or conv.title,
        "author_url": about["conversation"]["url"],
        "provider_name": "Junto",
        "provider_url": node.settings.base_url + "/",
        "html": about["embed_html"]
        .replace(f'width="{EMBED_WIDTH}"', f'width="{width}"')
        .replace(f'height="{EMBED_HEIGHT}"', f'height="{height}"'),
        "width": width,
        "height": height,
    }
    if "thumbnail" in about["files"]:
        answer |= {
            "thumbnail_url": about["files"]["thumbnail"],
            "thumbnail_width": clips.THUMB_WIDTH,
            "thumbnail_height": clips.THUMB_WIDTH * 9 // 16,
        }
    return JSONResponse(answer)


@router.get("/s/{slug}/captions.vtt")
async def snippet_captions(request: Request, slug: str, db: DbDep) -> Response:
    """Rendered from the transcript as it is now, not read from the file cut with the clip: a
    correction (which may remove a private detail) shows at once, not after a job has run."""
    found = await _visible(request, db, slug)
    if found is None or found[0].state != snippets.READY:
        return _not_found("no such snippet")
    return Response(
        await snippets.captions_text(db, found[0]),
        media_type="text/vtt; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{found[0].slug}.vtt"'},
    )


@router.get("/s/{slug}/{name}")
async def snippet_file(
    request: Request, slug: str, name: str, db: DbDep, node: NodeDep
) -> Response:
    """The clip, its audio or its thumbnail."""
    found = await _visible(request, db, slug)
    if found is None or name not in FILES:
        return _not_found("no such snippet or file")
    column, mime = FILES[name]
    relative = getattr(found[0], column)
    if found[0].state != snippets.READY or not relative:
        return _not_found("this snippet has no such file")
    return stored_file(node.settings.data_dir, relative, mime, f"{slug}-{name}")
