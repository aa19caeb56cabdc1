"""JSON API for snippets: make one from a conversation, read it, delete it.

`POST /api/conversations/{slug}/snippets` cuts the files while the request waits (a minute of
clip in well under a second, see junto.clips) and answers 201 with the snippet; a snippet whose
files could not be cut is kept as `failed` and answered with 500 `render_failed`. Errors use
the node's shape like junto.web.transcript_api, and unsafe methods need the CSRF token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from junto import conversations as convs
from junto import snippets
from junto.conversations import ConversationError
from junto.node import Node
from junto.storage.tables import Conversation, Snippet
from junto.web import security
from junto.web.conversations_api import (
    ErrorOut,
    Slug,
    _errors,
    admitting,
    answering,
    error_response,
    visible,
)
from junto.web.deps import DbDep, NodeDep
from junto.web.security import CurrentUser, RequireMember

router = APIRouter(
    prefix="/api", tags=["snippets"], route_class=answering(ConversationError, error_response)
)

SnippetSlug = Annotated[str, Path(min_length=1, max_length=16, description="The snippet's slug.")]
MS = Field(ge=0, le=2**53, description="Milliseconds on the conversation's timeline.")
EMBED_WIDTH, EMBED_HEIGHT = 640, 400  # 16:9 video plus the attribution line


class SnippetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_ms: int = MS
    end_ms: int = MS
    title: str | None = Field(None, max_length=1000, description="≤ 200 characters, one line.")


class SpeakerOut(BaseModel):
    id: int
    name: str
    consent_given_at: str | None = Field(description="When they agreed to be recorded here.")
    consent_statement: str | None


class SnippetOut(BaseModel):
    slug: str
    url: str
    title: str
    state: str = Field(description="ready, failed or rendering")
    error: str | None
    start_ms: int
    end_ms: int
    duration_ms: int
    text: str
    speakers: list[SpeakerOut]
    conversation: dict[str, str]
    files: dict[str, str]
    embed_html: str
    created_by: int
    created_at: str | None


def embed_html(url: str, title: str) -> str:
    """The iframe people paste into their pages (the title is escaped for the attribute)."""
    from markupsafe import escape

    return (
        f'<iframe src="{escape(url)}/embed" width="{EMBED_WIDTH}" height="{EMBED_HEIGHT}" '
        f'title="{escape(title)}" frameborder="0" allow="fullscreen" loading="lazy"></iframe>'
    )


async def describe(
    request: Request, node: Node, db: AsyncSession, snippet: Snippet, conv: Conversation
) -> dict[str, Any]:
    base = node.settings.base_url
    url = f"{base}/s/{snippet.slug}"
    files: dict[str, str] = {}
    if snippet.state == snippets.READY:
        if snippet.clip_path:
            files["clip"] = f"{url}/clip.mp4"
        if snippet.audio_path:
            files["audio"] = f"{url}/audio.m4a"
        if snippet.thumb_path:
            files["thumbnail"] = f"{url}/thumbnail.jpg"
        files["captions"] = f"{url}/captions.vtt"
    return {
        "slug": snippet.slug,
        "url": url,
        "title": snippet.title,
        "state": snippet.state,
        "error": snippet.error,
        "start_ms": snippet.start_ms,
        "end_ms": snippet.end_ms,
        "duration_ms": snippet.end_ms - snippet.start_ms,
        "text": snippet.text,
        "speakers": [
            {
                "id": s.id,
                "name": s.name,
                "consent_given_at": convs.iso(s.consent_at),
                "consent_statement": s.statement,
            }
            for s in await snippets.speakers(db, snippet)
        ],
        "conversation": {
            "slug": conv.slug,
            "title": conv.title,
            "url": f"{base}/c/{conv.slug}?t={snippet.start_ms // 1000}",
        },
        "files": files,
        "embed_html": embed_html(url, snippet.title),
        "created_by": snippet.created_by,
        "created_at": convs.iso(snippet.created_at),
    }


async def _find(db: AsyncSession, slug: str, user: Any) -> tuple[Snippet, Conversation]:
    snippet = await snippets.get_by_slug(db, slug)
    conv = await db.get(Conversation, snippet.conversation_id) if snippet else None
    if snippet is None or conv is None or not await snippets.can_see(db, conv, user):
        raise ConversationError(f"no snippet {slug!r}", status=404, code="not_found")
    return snippet, conv


@router.post(
    "/conversations/{slug}/snippets",
    response_model=SnippetOut,
    status_code=201,
    summary="Make a snippet (clip) of a conversation between two times",
    responses={
        **_errors(401, 403, 404, 409),
        429: {"model": ErrorOut, "description": "Too many snippets made just now."},
    },
)
async def create_snippet(
    request: Request,
    slug: Slug,
    body: SnippetCreate,
    db: DbDep,
    node: NodeDep,
    user: RequireMember,
) -> Any:
    conv = await visible(db, slug, user)
    snippet = await snippets.create(
        db,
        node.settings,
        conv,
        user,
        body.start_ms,
        body.end_ms,
        body.title,
        # Making a snippet runs ffmpeg three times in the request: a per-member allowance,
        # shared by the node's processes (JUNTO_LIMIT_SNIPPET_CREATE_*), keeps the cores free.
        admit=admitting(db, node, "snippet", user),
    )
    answer = await describe(request, node, db, snippet, conv)
    if snippet.state == snippets.FAILED:
        return JSONResponse(
            {
                "error": "render_failed",
                "message": f"the snippet's files could not be made: {snippet.error}",
                "snippet": answer,
            },
            status_code=500,
        )
    return answer


@router.get(
    "/snippets/{slug}",
    response_model=SnippetOut,
    summary="A snippet",
    responses=_errors(404),
)
async def get_snippet(
    request: Request, slug: SnippetSlug, db: DbDep, node: NodeDep, user: CurrentUser
) -> dict[str, Any]:
    snippet, conv = await _find(db, slug, user)
    return await describe(request, node, db, snippet, conv)


@router.delete(
    "/snippets/{slug}",
    status_code=204,
    summary="Delete a snippet (its creator, the conversation's hosts)",
    responses=_errors(401, 403, 404),
)
async def delete_snippet(
    slug: SnippetSlug, db: DbDep, node: NodeDep, user: RequireMember
) -> Response:
    snippet, conv = await _find(db, slug, user)
    if not await snippets.can_delete(db, snippet, conv, user):
        return security.error_response(
            403,
            "forbidden",
            "only the snippet's creator and the conversation's hosts may delete it",
        )
    await snippets.remove(db, node.settings, snippet)
    return Response(status_code=204)
