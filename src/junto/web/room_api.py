"""The room over plain HTTP: read chat, backchannel and the room stream; post messages and posts.

For clients without a WebSocket (scripts, bots, feed readers) and for people reading a
conversation later. Posting goes through the same `dispatch` as the WebSocket hub, so sizes,
rate limits, slow mode, blocks and states are enforced identically; only the error's form
differs (an HTTP status instead of an `error` frame).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from junto import conversations
from junto.events import log as room_log
from junto.events.log import StoredEvent
from junto.room import actions
from junto.room.protocol import BODY_HARD_MAX, MAX_ROW_ID, REACTION_KINDS, ActionError
from junto.room.text import normalise_tag
from junto.room.views import backchannel_page, chat_page
from junto.storage.tables import Conversation, User
from junto.web.conversations_api import answering
from junto.web.deps import DbDep, NodeDep, hand_over
from junto.web.security import ApiError, CurrentUser, error_response

# ActionError code -> HTTP status for the REST mirror.
STATUS_FOR_CODE = {
    "bad_message": 422,
    "too_large": 413,
    "not_signed_in": 401,
    "forbidden": 403,
    "blocked": 403,
    "not_found": 404,
    "invalid_state": 409,
    "rate_limited": 429,
    "slow_mode": 429,
    "busy": 503,
}

# Slugs are letters and digits (junto.conversations); anything else cannot name a conversation
# and must not reach the database (PostgreSQL refuses NUL characters in text parameters).
Slug = Annotated[
    str,
    Path(
        min_length=1,
        max_length=16,
        pattern="^[A-Za-z0-9]+$",
        description="The conversation's slug.",
    ),
]
Before = Annotated[
    int | None,
    Query(ge=1, le=MAX_ROW_ID, description="Only items with an id below this (for older pages)."),
]


# ---- models -------------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    error: str = Field(description="The protocol error code, e.g. slow_mode, blocked, forbidden.")
    message: str = Field(description="What went wrong, for people.")


class PersonOut(BaseModel):
    id: int
    name: str
    colour: str = Field(description="Their colour, '#rrggbb'.")
    is_guest: bool


class ChatMessageOut(BaseModel):
    id: int
    author: PersonOut
    body: str = Field(description="Plain text: render as text, never as HTML.")
    created_at: str
    edited_at: str | None


class BackchannelPostOut(BaseModel):
    id: int
    author: PersonOut
    body: str = Field(description="Plain text: render as text, never as HTML.")
    hashtags: list[str] = Field(description="Lower-case, without '#'.")
    offset_ms: int | None = Field(description="Milliseconds since the conversation went live.")
    created_at: str
    reactions: dict[str, int] = Field(description=f"Counts by kind: {', '.join(REACTION_KINDS)}.")
    mine: list[str] | None = Field(None, description="Your reactions (if you are signed in).")


class ChatPage(BaseModel):
    messages: list[ChatMessageOut] = Field(description="Oldest first.")
    next_before: int | None = Field(
        description="Pass as `before` for older messages; null at the start."
    )


class BackchannelPage(BaseModel):
    posts: list[BackchannelPostOut] = Field(description="Oldest first.")
    next_before: int | None = Field(
        description="Pass as `before` for older posts; null at the start."
    )


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(
        max_length=BODY_HARD_MAX,
        description="Plain text; chat up to 2000 and backchannel up to 280 characters by default.",
    )


class ChatPosted(BaseModel):
    event_id: int = Field(description="The room-stream id of the resulting chat.message event.")
    message: ChatMessageOut


class BackchannelPosted(BaseModel):
    event_id: int = Field(description="The room-stream id of the resulting backchannel.post event.")
    post: BackchannelPostOut


class RoomEventOut(BaseModel):
    type: str
    stream: str
    id: int
    ts: str
    data: dict[str, Any]


class RoomEvents(BaseModel):
    events: list[RoomEventOut] = Field(description="In id order, without gaps.")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "Posting needs a member or guest identity.",
        403: "Your role does not allow it, or a host blocked you.",
        404: "No such conversation, or one you may not see.",
        409: "The conversation is not open for posting (expected scheduled or live).",
        413: "The text is longer than this node allows.",
        429: "Rate limit or slow mode: see Retry-After.",
        503: "The node is overloaded (no database connection within a few seconds): retry "
        "after Retry-After.",
    }
    return {code: {"model": ErrorOut, "description": described[code]} for code in codes}


# Whatever refuses a chat message or a backchannel post (see `dispatch`).
POSTING_ERRORS = _errors(401, 403, 404, 409, 413, 429, 503)


# ---- helpers -------------------------------------------------------------------------------------


async def _visible(db: DbDep, slug: str, user: User | None) -> Conversation:
    """The conversation, or 404 for a missing one and an invite-only one the user may not see."""
    conv = await conversations.get_by_slug(db, slug)
    if conv is None or not await conversations.can_view(db, conv, user):
        raise ApiError(404, "not_found", "no such conversation")
    return conv


def validation_error(where: str, field: str, message: str) -> JSONResponse:
    """422 in the shape FastAPI gives pydantic's errors, so clients parse one format."""
    detail = [{"type": "value_error", "loc": [where, field], "msg": message}]
    return JSONResponse({"detail": detail}, status_code=422)


def action_error_response(exc: ActionError) -> JSONResponse:
    if exc.code == "bad_message":
        # Over HTTP the only field a client sends is `body` (the frame type is the URL's).
        return validation_error("body", "body", exc.message)
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
    return error_response(STATUS_FOR_CODE.get(exc.code, 400), exc.code, exc.message, headers)


async def _send(
    db: DbDep, node: NodeDep, slug: str, user: User | None, frame: dict[str, Any]
) -> StoredEvent:
    """Send `frame` as `user` in the conversation; a refusal raises ActionError, which the
    router answers with its HTTP status (see `action_error_response`)."""
    conv = await _visible(db, slug, user)
    await hand_over(db)  # the action takes a connection of its own
    event = await actions.dispatch(node, conv, user, frame)
    assert event is not None  # sending always creates an event
    return event


router = APIRouter(
    prefix="/api/conversations/{slug}",
    tags=["room"],
    route_class=answering(ActionError, action_error_response),
)

# ---- routes -------------------------------------------------------------------------------------


@router.get("/chat", response_model=ChatPage, responses=_errors(404))
async def read_chat(
    slug: Slug,
    db: DbDep,
    user: CurrentUser,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Chat messages, newest page first (deleted ones left out)."""
    conv = await _visible(db, slug, user)
    messages = await chat_page(db, conv.id, before=before, limit=limit)
    older = messages[0]["id"] if len(messages) == limit else None
    return {"messages": messages, "next_before": older}


@router.get("/backchannel", response_model=BackchannelPage, responses=_errors(404))
async def read_backchannel(
    slug: Slug,
    db: DbDep,
    user: CurrentUser,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    tag: Annotated[
        str | None, Query(max_length=41, description="Only posts with this hashtag.")
    ] = None,
) -> Any:
    """Backchannel posts, newest page first, optionally only those with one hashtag."""
    conv = await _visible(db, slug, user)
    wanted = None
    if tag is not None:
        wanted = normalise_tag(tag)
        if wanted is None:
            return validation_error(
                "query", "tag", f"expected letters, digits, '_' or '-', got {tag!r}"
            )
    posts = await backchannel_page(db, conv.id, before=before, limit=limit, tag=wanted, viewer=user)
    older = posts[0]["id"] if len(posts) == limit else None
    return {"posts": posts, "next_before": older}


@router.post(
    "/chat",
    status_code=201,
    response_model=ChatPosted,
    responses=POSTING_ERRORS,
)
async def post_chat(
    slug: Slug, payload: TextIn, db: DbDep, node: NodeDep, user: CurrentUser
) -> Any:
    """Send a chat message (the same rules as `chat.send` over the WebSocket)."""
    event = await _send(db, node, slug, user, {"type": "chat.send", "body": payload.body})
    return {"event_id": event.id, "message": event.data["message"]}


@router.post(
    "/backchannel",
    status_code=201,
    response_model=BackchannelPosted,
    responses=POSTING_ERRORS,
)
async def post_backchannel(
    slug: Slug, payload: TextIn, db: DbDep, node: NodeDep, user: CurrentUser
) -> Any:
    """Post to the backchannel (the same rules as `backchannel.post` over the WebSocket)."""
    event = await _send(db, node, slug, user, {"type": "backchannel.post", "body": payload.body})
    return {"event_id": event.id, "post": event.data["post"]}


@router.get("/events", response_model=RoomEvents, responses=_errors(404))
async def read_events(
    slug: Slug,
    db: DbDep,
    user: CurrentUser,
    after: Annotated[int, Query(ge=0, le=2**53 - 1, description="Events with ids above this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The durable room stream as stored, for debugging and export. Events you may not read
    (captions of a conversation under review, unless you review it) come as `withheld`
    stand-ins with their id and time only, so ids stay dense."""
    conv = await _visible(db, slug, user)
    withhold = await conversations.events_withheld_from(db, conv, user)
    events = await room_log.events_after(db, conv.id, after, limit, withhold)
    return {
        "events": [
            {"type": e.type, "stream": "room", "id": e.id, "ts": e.ts, "data": e.data}
            for e in events
        ]
    }
