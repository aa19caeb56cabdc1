"""A conversation's live captions: as WebVTT for players, as JSON for scripts.

Both follow the conversation's visibility (invite-only conversations answer 404 to people who
may not see them, exactly as if they did not exist). Times are milliseconds since the
conversation went live, the timeline of its recordings.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from junto import conversations
from junto.accounts import person
from junto.speech import webvtt
from junto.storage.tables import Caption, Conversation, User
from junto.web.deps import DbDep
from junto.web.room_api import Slug
from junto.web.security import ApiError, CurrentUser

router = APIRouter(tags=["captions"])


class PersonOut(BaseModel):
    id: int
    name: str
    colour: str
    is_guest: bool


class CaptionOut(BaseModel):
    id: int
    user: PersonOut = Field(description="Who spoke.")
    start_ms: int = Field(description="Milliseconds since the conversation went live.")
    end_ms: int
    text: str = Field(description="Plain text, as recognised (render it as text, not HTML).")


class CaptionList(BaseModel):
    captions: list[CaptionOut]


async def _visible(db: AsyncSession, slug: str, user: User | None) -> Conversation:
    conv = await conversations.get_by_slug(db, slug)
    if (
        conv is None
        or not await conversations.can_view(db, conv, user)
        or not await conversations.can_see_page(db, conv, user)  # under review: reviewers only
    ):
        raise ApiError(404, "not_found", "no such conversation")
    return conv


async def _captions(db: AsyncSession, conv: Conversation) -> list[tuple[Caption, User]]:
    rows = await db.execute(
        select(Caption, User)
        .join(User, User.id == Caption.user_id)
        .where(Caption.conversation_id == conv.id)
        .order_by(Caption.start_ms, Caption.id)
    )
    return [(caption, user) for caption, user in rows.all()]


@router.get(
    "/api/conversations/{slug}/captions",
    response_model=CaptionList,
    summary="The live captions of a conversation, in time order",
    responses={404: {"description": "No such conversation (or not visible to you)."}},
)
async def captions_json(slug: Slug, db: DbDep, user: CurrentUser) -> CaptionList:
    conv = await _visible(db, slug, user)
    return CaptionList(
        captions=[
            CaptionOut(
                id=c.id,
                user=PersonOut(**person(u)),
                start_ms=c.start_ms,
                end_ms=c.end_ms,
                text=c.text,
            )
            for c, u in await _captions(db, conv)
        ]
    )


@router.get(
    "/c/{slug}/captions.vtt",
    summary="The live captions of a conversation as WebVTT",
    response_class=Response,
    responses={
        200: {"content": {"text/vtt": {}}, "description": "A WebVTT file."},
        404: {"description": "No such conversation (or not visible to you)."},
    },
)
async def captions_vtt(slug: Slug, db: DbDep, user: CurrentUser) -> Response:
    conv = await _visible(db, slug, user)
    cues = [
        webvtt.Cue(c.start_ms, c.end_ms, u.display_name, c.text)
        for c, u in await _captions(db, conv)
    ]
    return Response(
        webvtt.render(cues),
        media_type="text/vtt; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{conv.slug}-captions.vtt"'},
    )
