"""JSON API for a conversation's final transcript and hosts' corrections of it.

Visibility is the conversation's: whoever may see the conversation may read its transcript;
hosts, co-hosts and admins may correct it and read the corrections' history (a correction may
remove something on purpose, so what it replaced is not shown to everyone). Errors use the
node's shape (`{"error", "message"}`, 422 with FastAPI's `detail` list), and PATCH needs the
CSRF token like every unsafe request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from junto import conversations as convs
from junto import corrections
from junto.conversations import ConversationError
from junto.transcripts import store
from junto.web.conversations_api import (
    Slug,
    _errors,
    answering,
    error_response,
    visible,
    visible_record,
)
from junto.web.deps import DbDep, NodeDep
from junto.web.security import CurrentUser, RequireIdentity

router = APIRouter(
    prefix="/api", tags=["transcripts"], route_class=answering(ConversationError, error_response)
)

Seq = Annotated[int, Path(ge=0, le=2**31 - 1, description="The segment's position (0, 1, ...).")]


class SpeakerOut(BaseModel):
    id: int
    name: str


class SegmentOut(BaseModel):
    seq: int
    speaker: SpeakerOut | None
    start_ms: int = Field(description="Milliseconds since the conversation went live.")
    end_ms: int
    text: str
    words: list[tuple[int, int, str, bool]] = Field(
        description="[start_ms, end_ms, word, joins] per word; joins: the word continues the one "
        'before with no space ("4" then ",500" reads "4,500").'
    )
    edited: bool = Field(description="A host has corrected this segment.")


class TranscriptOut(BaseModel):
    status: Literal["none", "processing", "ready"] = Field(
        description="none (no transcript), processing (being made) or ready."
    )
    model: str | None = Field(None, description="The speech model that made it.")
    edited: bool = False
    segments: list[SegmentOut]
    speakers: list[SpeakerOut]


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(
        None,
        max_length=20_000,
        description=f"The corrected words (≤ {corrections.TEXT_MAX} chars).",
    )
    speaker_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Who said it: a participant's user id."
    )


class EditOut(BaseModel):
    id: int
    seq: int
    field: str = Field(description="text or speaker")
    before: str
    after: str
    before_id: int | None = None
    after_id: int | None = None
    editor: SpeakerOut | None
    at: str | None


class HistoryOut(BaseModel):
    edits: list[EditOut]


@router.get(
    "/conversations/{slug}/transcript",
    response_model=TranscriptOut,
    summary="The conversation's final transcript",
    responses=_errors(404),
)
async def get_transcript(slug: Slug, db: DbDep, user: CurrentUser) -> dict[str, Any]:
    conv = await visible_record(db, slug, user)
    return (await store.read(db, conv)).as_json()


@router.patch(
    "/conversations/{slug}/transcript/segments/{seq}",
    response_model=SegmentOut,
    summary="Correct a segment's words or speaker (hosts and co-hosts)",
    responses=_errors(401, 403, 404, 409),
)
async def patch_segment(
    slug: Slug, seq: Seq, body: SegmentPatch, db: DbDep, node: NodeDep, user: RequireIdentity
) -> dict[str, Any]:
    conv = await visible(db, slug, user)
    seg = await corrections.edit_segment(
        db, conv, seq, user, text=body.text, speaker_id=body.speaker_id
    )
    people = await store.names(db, [seg.user_id])
    answer = store.segment_json(seg, people)
    await store.refresh_vtt_file(db, node.settings.data_dir, conv.id)
    return answer


@router.get(
    "/conversations/{slug}/transcript/history",
    response_model=HistoryOut,
    summary="Corrections made to the transcript, oldest first (hosts and co-hosts)",
    responses=_errors(401, 403, 404),
)
async def get_history(
    slug: Slug,
    db: DbDep,
    user: RequireIdentity,
    seq: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="Only this segment.")] = None,
) -> dict[str, Any]:
    """Managers only: a correction may remove something on purpose (a slip, a private detail),
    so what it replaced is not shown to everyone who can read the transcript."""
    conv = await visible(db, slug, user)
    await convs.require_manager(db, conv, user, "see the corrections of")
    return {"edits": await corrections.history(db, conv, seq)}
