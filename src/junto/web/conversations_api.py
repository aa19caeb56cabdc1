"""JSON API for conversations: list, create, read, edit, start, end, invites and roles.

Invite-only conversations answer 404 to anyone who may not see them, exactly as if they did not
exist, so probing slugs reveals nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse

from junto import conversations as convs
from junto import invites, ratelimit
from junto.accounts import person
from junto.conversation_fields import ConversationCreate, ConversationPatch, normalise_tag
from junto.conversations import ConversationError
from junto.enums import ConversationState, Role, Visibility
from junto.node import Node
from junto.storage.tables import Conversation, Invite, User
from junto.web import security
from junto.web.deps import DbDep, NodeDep
from junto.web.security import CurrentUser, RequireIdentity, RequireMember

_E = TypeVar("_E", bound=Exception)


def answering(kind: type[_E], answer: Callable[[_E], Response]) -> type[APIRoute]:
    """A route class that answers an exception of `kind` raised by the handler with
    `answer(exc)`, so handlers raise domain errors instead of each catching them."""

    class AnsweringRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except kind as exc:
                    return answer(exc)

            return handle

    return AnsweringRoute


def error_response(exc: ConversationError) -> JSONResponse:
    if exc.status == 422 and exc.field:
        # The same shape FastAPI gives pydantic's validation errors, so clients read one format.
        detail: Any = [{"type": "value_error", "loc": ["body", exc.field], "msg": exc.message}]
        return JSONResponse({"detail": detail}, status_code=exc.status)
    return security.error_response(exc.status, exc.code, exc.message)


def admitting(db: AsyncSession, node: Node, kind: str, user: User) -> Callable[[], Awaitable[None]]:
    """The rate limit a domain function awaits once a request to make a `kind` is valid: one of
    `user`'s tokens, shared by the node's processes, spent in `db`'s transaction."""
    return lambda: ratelimit.admit(db, node.settings.limits, kind, user.id)


# Turns a domain ConversationError into its JSON error response.
router = APIRouter(
    prefix="/api", tags=["conversations"], route_class=answering(ConversationError, error_response)
)


# ---- response models ----------------------------------------------------------------------------


class ErrorOut(BaseModel):
    """The node's JSON error shape (junto.web.security.error_response)."""

    error: str = Field(description="Machine-readable reason, e.g. invalid_state, forbidden.")
    message: str = Field(description="What went wrong, for people.")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Malformed request (for example a bad cursor or invite token).",
        401: "Not signed in (or not even a guest).",
        403: "Signed in, but your role does not allow this.",
        404: "No such conversation, or one you may not see.",
        409: "The conversation is not in the state this needs (expected X, got Y).",
        410: "The invite expired, was used up or was revoked.",
        429: "You made too many of these just now (per account, for the whole node): see "
        "Retry-After.",
    }
    return {code: {"model": ErrorOut, "description": described[code]} for code in codes}


class ConversationOut(BaseModel):
    slug: str
    title: str
    description: str
    language: str
    visibility: Visibility
    state: ConversationState
    tags: list[str]
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    url: str = Field(description="The conversation's room page.")


class LobbyEntry(ConversationOut):
    present: int = Field(description="People in the room now (0 if not live).")
    on_stage: int = Field(description="People on stage now.")


class ConversationDetail(LobbyEntry):
    your_role: Role | None = Field(description="Your role here, null if you are not a participant.")
    can_manage: bool = Field(description="Whether you may edit, start, end and invite.")


class ConversationList(BaseModel):
    conversations: list[LobbyEntry]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class InviteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["cohost", "speaker", "audience"] = Field(
        "speaker", description="The role the invite gives (co-host invites need the host)."
    )
    ttl_seconds: int = Field(
        int(invites.DEFAULT_TTL.total_seconds()),
        ge=60,
        le=int(invites.MAX_TTL.total_seconds()),
        description="How long the link works.",
    )
    max_uses: int = Field(1, ge=1, le=invites.MAX_USES, description="How many people may use it.")


class InviteOut(BaseModel):
    id: int
    url: str = Field(description="The link to share: /invite/{token} on this node.")
    token: str
    role: Role
    expires_at: datetime
    max_uses: int
    uses: int


class InviteAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)


class InviteAccepted(BaseModel):
    conversation: ConversationOut
    role: Role = Field(description="Your role now (an invite never lowers a role you had).")


class ParticipantOut(BaseModel):
    id: int
    name: str
    colour: str
    is_guest: bool
    role: Role
    hand_raised: bool


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["cohost", "speaker", "audience"]


Slug = Annotated[str, Path(min_length=1, max_length=16, description="The conversation's slug.")]


# ---- helpers ------------------------------------------------------------------------------------


def live_counts(node: Node, conv: Conversation) -> tuple[int, int]:
    """(present, on_stage) from the hub; zeros while nobody can be in the room."""
    counts = getattr(node.hub, "counts", None)
    if counts is None or conv.state != ConversationState.LIVE:
        return 0, 0
    present, on_stage = counts(conv.id)
    return int(present), int(on_stage)


def conversation_out(
    request: Request, node: Node, conv: Conversation, tags: list[str]
) -> dict[str, Any]:
    return {
        **convs.summary(conv, tags),
        "visibility": conv.visibility,
        "state": conv.state,
        "scheduled_at": conv.scheduled_at,
        "started_at": conv.started_at,
        "ended_at": conv.ended_at,
        "url": f"{node.settings.base_url}/c/{conv.slug}",
    }


def lobby_entry(request: Request, node: Node, conv: Conversation, tags: list[str]) -> LobbyEntry:
    present, on_stage = live_counts(node, conv)
    return LobbyEntry(
        **conversation_out(request, node, conv, tags), present=present, on_stage=on_stage
    )


async def visible(db: AsyncSession, slug: str, user: User | None) -> Conversation:
    """The conversation, if this person may see it; 404 otherwise (existence does not leak)."""
    conv = await convs.get_by_slug(db, slug)
    if conv is None or not await convs.can_view(db, conv, user):
        raise ConversationError(f"no conversation {slug!r}", status=404, code="not_found")
    return conv


async def visible_record(db: AsyncSession, slug: str, user: User | None) -> Conversation:
    """`visible`, and for an ended conversation under review (not yet published) only to its
    reviewers: its transcript and captions are not public before a host publishes them."""
    conv = await visible(db, slug, user)
    if not await convs.can_see_page(db, conv, user):
        raise ConversationError(f"no conversation {slug!r}", status=404, code="not_found")
    return conv


async def detail(
    request: Request, db: AsyncSession, node: Node, conv: Conversation, user: User | None
) -> ConversationDetail:
    entry = lobby_entry(request, node, conv, await convs.tags_of(db, conv))
    return ConversationDetail(
        **entry.model_dump(),
        your_role=await convs.role_of(db, conv, user),
        can_manage=await convs.can_manage(db, conv, user),
    )


def encode_cursor(value: datetime, conv_id: int) -> str:
    raw = json.dumps([value.isoformat(), conv_id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, conv_id = json.loads(raw)
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None or not isinstance(conv_id, int):
            raise ValueError("naive time or non-integer id")
        return parsed, conv_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ConversationError(
            "expected a cursor from a previous page, got something else", status=400
        ) from exc


def invite_out(request: Request, node: Node, invite: Invite, token: str) -> InviteOut:
    return InviteOut(
        id=invite.id,
        url=f"{node.settings.base_url}/invite/{token}",
        token=token,
        role=invite.role,
        expires_at=invite.expires_at,
        max_uses=invite.max_uses,
        uses=invite.uses,
    )


# ---- endpoints ----------------------------------------------------------------------------------


@router.get(
    "/conversations",
    response_model=ConversationList,
    summary="List public conversations",
    responses=_errors(400),
)
async def list_conversations(
    request: Request,
    db: DbDep,
    node: NodeDep,
    state: Annotated[
        Literal["live", "scheduled", "ended"] | None,
        Query(
            description="Only this state; live ones come most recent first, scheduled soonest "
            "first, ended most recently ended first."
        ),
    ] = None,
    tag: Annotated[str | None, Query(max_length=80, description="Only with this tag.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ConversationList:
    """Public conversations only: unlisted and invite-only ones are never listed."""
    wanted = ConversationState(state) if state else None
    tag_name: str | None = None
    if tag is not None:
        try:
            tag_name = normalise_tag(tag)
        except ValueError as exc:
            raise ConversationError(str(exc), status=400) from exc
    after = decode_cursor(cursor) if cursor else None
    found = await convs.list_public(db, state=wanted, tag=tag_name, limit=limit + 1, after=after)
    page, more = found[:limit], len(found) > limit
    tags = await convs.tags_for(db, [c.id for c in page])
    last = page[-1] if page else None
    return ConversationList(
        conversations=[lobby_entry(request, node, c, tags[c.id]) for c in page],
        next_cursor=encode_cursor(convs.sort_value(last, wanted), last.id)
        if more and last
        else None,
    )


@router.post(
    "/conversations",
    status_code=201,
    response_model=ConversationDetail,
    summary="Create a conversation (you become its host)",
    responses=_errors(401, 403, 429),
)
async def create_conversation(
    request: Request, body: ConversationCreate, db: DbDep, node: NodeDep, user: RequireMember
) -> ConversationDetail:
    conv = await convs.create(db, body, user, node, admit=admitting(db, node, "conversation", user))
    return await detail(request, db, node, conv, user)


@router.get(
    "/conversations/{slug}",
    response_model=ConversationDetail,
    summary="One conversation, with your role in it",
    responses=_errors(404),
)
async def get_conversation(
    request: Request, slug: Slug, db: DbDep, node: NodeDep, user: CurrentUser
) -> ConversationDetail:
    conv = await visible(db, slug, user)
    return await detail(request, db, node, conv, user)


@router.patch(
    "/conversations/{slug}",
    response_model=ConversationDetail,
    summary="Edit a conversation (hosts and co-hosts)",
    responses=_errors(401, 403, 404, 409),
)
async def edit_conversation(
    request: Request,
    slug: Slug,
    body: ConversationPatch,
    db: DbDep,
    node: NodeDep,
    user: RequireIdentity,
) -> ConversationDetail:
    """Only the fields present change; `scheduled_at` can change only before the start."""
    conv = await visible(db, slug, user)
    await convs.edit(db, conv, body, user, node)
    return await detail(request, db, node, conv, user)


async def _transition(
    request: Request, slug: str, db: AsyncSession, node: Node, user: User, action: str
) -> ConversationDetail:
    """Start, end, publish or unpublish (convs.TRANSITIONS); answer with how it is now."""
    conv = await visible(db, slug, user)
    await convs.transition(db, conv, action, user, node)
    return await detail(request, db, node, conv, user)


@router.post(
    "/conversations/{slug}/start",
    response_model=ConversationDetail,
    summary="Go live: scheduled → live",
    responses=_errors(401, 403, 404, 409),
)
async def start_conversation(
    request: Request, slug: Slug, db: DbDep, node: NodeDep, user: RequireIdentity
) -> ConversationDetail:
    return await _transition(request, slug, db, node, user, "start")


@router.post(
    "/conversations/{slug}/end",
    response_model=ConversationDetail,
    summary="End: live → ended",
    responses=_errors(401, 403, 404, 409),
)
async def end_conversation(
    request: Request, slug: Slug, db: DbDep, node: NodeDep, user: RequireIdentity
) -> ConversationDetail:
    return await _transition(request, slug, db, node, user, "end")


@router.post(
    "/conversations/{slug}/publish",
    response_model=ConversationDetail,
    summary="Publish: ended → published",
    responses=_errors(401, 403, 404, 409),
)
async def publish_conversation(
    request: Request, slug: Slug, db: DbDep, node: NodeDep, user: RequireIdentity
) -> ConversationDetail:
    """Open the reviewed conversation's page to everyone (search and feeds list it if public)."""
    return await _transition(request, slug, db, node, user, "publish")


@router.post(
    "/conversations/{slug}/unpublish",
    response_model=ConversationDetail,
    summary="Unpublish: published → ended",
    responses=_errors(401, 403, 404, 409),
)
async def unpublish_conversation(
    request: Request, slug: Slug, db: DbDep, node: NodeDep, user: RequireIdentity
) -> ConversationDetail:
    """Take the page back to review (hosts, co-hosts and speakers only)."""
    return await _transition(request, slug, db, node, user, "unpublish")


@router.post(
    "/conversations/{slug}/invites",
    status_code=201,
    response_model=InviteOut,
    summary="Create an invite link (hosts and co-hosts)",
    responses=_errors(401, 403, 404, 429),
)
async def create_invite(
    request: Request,
    slug: Slug,
    db: DbDep,
    node: NodeDep,
    user: RequireIdentity,
    body: InviteCreate | None = None,
) -> InviteOut:
    """Whoever accepts the link becomes a participant with `role` (speaker by default)."""
    body = body or InviteCreate()
    conv = await visible(db, slug, user)
    issued = await invites.create_invite(
        db,
        conv,
        user,
        secret_key=node.settings.secret_key,
        role=Role(body.role),
        ttl=timedelta(seconds=body.ttl_seconds),
        max_uses=body.max_uses,
        admit=admitting(db, node, "invite", user),
    )
    return invite_out(request, node, issued.invite, issued.token)


@router.get(
    "/conversations/{slug}/invites",
    response_model=list[InviteOut],
    summary="Invite links that still work (hosts and co-hosts)",
    responses=_errors(401, 403, 404),
)
async def list_invites(
    request: Request, slug: Slug, db: DbDep, node: NodeDep, user: RequireIdentity
) -> list[InviteOut]:
    conv = await visible(db, slug, user)
    await convs.require_manager(db, conv, user, "see the invites of")
    key = node.settings.secret_key
    return [
        invite_out(request, node, i, invites.sign(key, i.id, i.expires_at))
        for i in await invites.open_invites(db, conv)
    ]


@router.delete(
    "/conversations/{slug}/invites/{invite_id}",
    status_code=204,
    summary="Revoke an invite link",
    responses=_errors(401, 403, 404),
)
async def revoke_invite(
    slug: Slug,
    invite_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    db: DbDep,
    user: RequireIdentity,
) -> Response:
    conv = await visible(db, slug, user)
    await invites.revoke_invite(db, conv, invite_id, user)
    return Response(status_code=204)


@router.post(
    "/invites/accept",
    response_model=InviteAccepted,
    summary="Accept an invite link (members and guests)",
    responses=_errors(400, 401, 403, 409, 410),
)
async def accept_invite(
    request: Request, body: InviteAccept, db: DbDep, node: NodeDep, user: RequireIdentity
) -> InviteAccepted:
    conv, role = await invites.accept_invite(
        db, body.token, user, secret_key=node.settings.secret_key, node=node
    )
    tags = await convs.tags_of(db, conv)
    return InviteAccepted(
        conversation=ConversationOut(**conversation_out(request, node, conv, tags)), role=role
    )


@router.get(
    "/conversations/{slug}/participants",
    response_model=list[ParticipantOut],
    summary="Participants and their roles, hosts first",
    responses=_errors(404),
)
async def list_participants(slug: Slug, db: DbDep, user: CurrentUser) -> list[ParticipantOut]:
    conv = await visible(db, slug, user)
    return [
        ParticipantOut(**person(u), role=p.role, hand_raised=p.hand_raised_at is not None)
        for p, u in await convs.participants(db, conv)
    ]


@router.put(
    "/conversations/{slug}/participants/{user_id}/role",
    response_model=ParticipantOut,
    summary="Set someone's role: cohost, speaker or audience (the host)",
    responses=_errors(401, 403, 404, 409),
)
async def set_role(
    slug: Slug,
    user_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: RoleChange,
    db: DbDep,
    node: NodeDep,
    user: RequireIdentity,
) -> ParticipantOut:
    conv = await visible(db, slug, user)
    row = await convs.set_role(db, conv, user, user_id, Role(body.role), node)
    target = await db.get(User, user_id)
    assert target is not None  # set_role raised 404 otherwise
    return ParticipantOut(
        **person(target), role=row.role, hand_raised=row.hand_raised_at is not None
    )
