"""Pages: the lobby, the create/edit forms with host controls, and invite links.

Every page works without JavaScript (plain forms posting back here, answered with a redirect or
the form again with its errors); the ES modules only add live counts and local times.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from junto import accounts, invites, ratelimit
from junto import conversations as convs
from junto.conversation_fields import ConversationCreate, ConversationPatch
from junto.conversations import ConversationError
from junto.enums import ConversationState, Role, Visibility
from junto.node import Node
from junto.storage.tables import Conversation, User
from junto.web import security
from junto.web.conversations_api import admitting, answering, live_counts
from junto.web.deps import DbDep, NodeDep
from junto.web.render import render
from junto.web.security import CurrentUser

LOBBY_LIVE_MAX = 50
LOBBY_UPCOMING_MAX = 50
LOBBY_PUBLISHED_MAX = 10
FIELDS = ("title", "description", "tags", "language", "visibility", "scheduled_at")
ROLE_NAMES = {
    Role.HOST: "host",
    Role.COHOST: "co-host",
    Role.SPEAKER: "speaker",
    Role.AUDIENCE: "audience member",
}


class _Answer(Exception):
    """Raised by a page's shared steps to answer with `response` instead of going on.

    The steps (sign in first, may this person manage it, did the host control work) then read as
    plain calls in each handler, which keeps only what is particular to it.
    """

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


router = APIRouter(
    include_in_schema=False, route_class=answering(_Answer, lambda answer: answer.response)
)


def _see_other(url: str) -> RedirectResponse:
    # 303 so the browser follows a form POST with a GET (POST/redirect/GET: no resubmission).
    return RedirectResponse(url, status_code=303)


def _signin_redirect(request: Request) -> RedirectResponse:
    return _see_other(f"/signin?next={quote(request.url.path, safe='')}")


def _signed_in(request: Request, user: User | None) -> User:
    """`user`, or on to the sign-in page (which comes back here) for someone not signed in."""
    if user is None:
        raise _Answer(_signin_redirect(request))
    return user


def _member(request: Request, user: User | None) -> User:
    """Like `_signed_in`, but guests cannot create conversations, so they are sent there too."""
    if user is None or user.is_guest:
        raise _Answer(_signin_redirect(request))
    return user


def _utc_text(when: datetime) -> str:
    """A readable UTC time for readers without JavaScript (lobby.js shows local time)."""
    return when.astimezone(UTC).strftime("%a %d %b %Y, %H:%M UTC")


def _card(node: Node, conv: Conversation, tags: list[str]) -> dict[str, Any]:
    present, on_stage = live_counts(node, conv)
    when = conv.scheduled_at
    return {
        "slug": conv.slug,
        "title": conv.title,
        "state": conv.state.value,
        "tags": tags,
        "present": present,
        "on_stage": on_stage,
        "scheduled_iso": convs.iso(when),
        "scheduled_text": _utc_text(when) if when else None,
        "ended_iso": convs.iso(conv.ended_at),
        "ended_text": _utc_text(conv.ended_at) if conv.ended_at else None,
        "published_iso": convs.iso(conv.published_at),
        "published_text": _utc_text(conv.published_at) if conv.published_at else None,
    }


async def _cards(
    db: AsyncSession, node: Node, state: ConversationState, limit: int
) -> list[dict[str, Any]]:
    found = await convs.list_public(db, state=state, limit=limit)
    tags = await convs.tags_for(db, [c.id for c in found])
    return [_card(node, c, tags[c.id]) for c in found]


# ---- the lobby ----------------------------------------------------------------------------------


@router.get("/")
async def lobby(request: Request, db: DbDep, node: NodeDep) -> Response:
    return render(
        request,
        "lobby.html",
        live=await _cards(db, node, ConversationState.LIVE, LOBBY_LIVE_MAX),
        upcoming=await _cards(db, node, ConversationState.SCHEDULED, LOBBY_UPCOMING_MAX),
        # Ended conversations are under review until a host publishes them (issue 5).
        published=await _cards(db, node, ConversationState.PUBLISHED, LOBBY_PUBLISHED_MAX),
    )


# ---- create and edit --------------------------------------------------------------------------


def _parse_when(form: FormData) -> tuple[datetime | None, str | None]:
    """(time, error). JS fills `scheduled_at_utc` from the reader's clock and time zone; without
    JS the datetime-local value is taken as UTC, which the form's hint says."""
    utc = str(form.get("scheduled_at_utc") or "").strip()
    local = str(form.get("scheduled_at") or "").strip()
    if not local:
        return None, None
    try:
        if utc:
            return datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(UTC), None
        return datetime.fromisoformat(local).replace(tzinfo=UTC), None
    except ValueError:
        return None, f"expected a date and time such as 2030-05-01T18:30, got {local!r}"


def _form_values(form: FormData) -> dict[str, str]:
    """What the person typed, to put back into the form next to any errors.

    The time goes back in UTC, like every time the form is given (JS shows it in local time)."""
    values = {name: str(form.get(name) or "") for name in FIELDS}
    when, _error = _parse_when(form)
    if when is not None:
        values["scheduled_at"] = when.strftime("%Y-%m-%dT%H:%M")
    return values


def _split_tags(text: str) -> list[str]:
    return [t for t in (part.strip() for part in text.replace("\n", ",").split(",")) if t]


def _plain_message(error: Any, field: str) -> str:
    """Pydantic's wording ("String should have at least 1 character") in words for people."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return "Please fill this in."
    if kind == "string_too_short":
        return f"Please use at least {ctx['min_length']} characters."
    if kind == "string_too_long":
        return f"Please keep it to {ctx['max_length']} characters or fewer."
    if kind == "too_long":
        return f"Please use at most {ctx['max_length']} {field}."  # a list field: "10 tags"
    if kind in {"enum", "literal_error"}:
        return "Please choose one of the options."
    return str(error["msg"]).removeprefix("Value error, ")


def _validation_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error["loc"]
        field = str(loc[0]) if loc else "form"
        message = _plain_message(error, field)
        if field == "tags" and len(loc) > 1 and isinstance(loc[1], int):
            message = f"tag {loc[1] + 1}: {message}"
        errors.setdefault(field, message)
    return errors


def _parse_form(form: FormData, *, include_schedule: bool) -> tuple[dict[str, Any], dict[str, str]]:
    data: dict[str, Any] = {
        "title": str(form.get("title") or ""),
        "description": str(form.get("description") or ""),
        "tags": _split_tags(str(form.get("tags") or "")),
        "language": str(form.get("language") or "").strip() or "en",
        "visibility": str(form.get("visibility") or "public"),
    }
    errors: dict[str, str] = {}
    if include_schedule:
        when, error = _parse_when(form)
        data["scheduled_at"] = when
        if error:
            errors["scheduled_at"] = error
    return data, errors


def _empty_values() -> dict[str, str]:
    return {
        "title": "",
        "description": "",
        "tags": "",
        "language": "en",
        "visibility": "public",
        "scheduled_at": "",
    }


def _render_form(
    request: Request,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
    **context: Any,
) -> Response:
    return render(
        request,
        "conversation_form.html",
        status_code=status_code,
        values=values,
        errors=errors,
        visibilities=list(Visibility),
        **context,
    )


def _form_errors(exc: ValidationError | ConversationError) -> dict[str, str]:
    """The create/edit form's errors, by field, for a refused create or edit."""
    if isinstance(exc, ValidationError):
        return _validation_errors(exc)
    return {exc.field or "form": exc.message}


@router.get("/conversations/new")
async def new_form(request: Request, user: CurrentUser) -> Response:
    _member(request, user)
    return _render_form(request, values=_empty_values(), errors={}, conv=None)


@router.post("/conversations/new")
async def create(request: Request, db: DbDep, node: NodeDep, user: CurrentUser) -> Response:
    host = _member(request, user)
    form = await request.form()
    data, errors = _parse_form(form, include_schedule=True)
    status = 422
    if not errors:
        admit = admitting(db, node, "conversation", host)
        try:
            fields = ConversationCreate.model_validate(data)
            conv = await convs.create(db, fields, host, node, admit=admit)
            return _see_other(f"/c/{conv.slug}/edit?created=1")
        except (ValidationError, ConversationError) as exc:
            errors = _form_errors(exc)
        except ratelimit.RateLimited as exc:
            errors, status = {"form": exc.message}, 429
    values = _form_values(form)
    return _render_form(request, values=values, errors=errors, conv=None, status_code=status)


async def _managed(
    request: Request, db: AsyncSession, slug: str, user: User | None
) -> tuple[Conversation, User]:
    """The conversation and the signed-in person, if they may manage it; otherwise answers
    with the sign-in page, or with a page saying why not."""
    manager = _signed_in(request, user)
    conv = await convs.get_by_slug(db, slug)
    if conv is None or not await convs.can_view(db, conv, manager):
        # Invite-only conversations look exactly like missing ones to outsiders.
        raise _Answer(
            _problem(
                request,
                404,
                "No such conversation",
                "There is no conversation at this address, or it is private.",
            )
        )
    if not await convs.can_manage(db, conv, manager):
        raise _Answer(
            _problem(
                request,
                403,
                "Only hosts can change this conversation",
                "Ask its host to make you a co-host if you should help run it.",
            )
        )
    return conv, manager


def _problem(request: Request, status: int, heading: str, message: str) -> Response:
    return render(
        request, "conversation_problem.html", status_code=status, heading=heading, message=message
    )


def _conv_values(conv: Conversation, tags: list[str]) -> dict[str, str]:
    when = conv.scheduled_at
    return {
        "title": conv.title,
        "description": conv.description,
        "tags": ", ".join(tags),
        "language": conv.language,
        "visibility": conv.visibility.value,
        "scheduled_at": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if when else "",
    }


async def _host_context(
    request: Request, db: AsyncSession, node: Node, conv: Conversation, user: User
) -> dict[str, Any]:
    key = node.settings.secret_key
    root = node.settings.base_url
    open_invites = [
        {
            "id": i.id,
            "role": ROLE_NAMES[i.role],
            "url": f"{root}/invite/{invites.sign(key, i.id, i.expires_at)}",
            "expires_iso": convs.iso(i.expires_at),
            "expires_text": _utc_text(i.expires_at),
            "uses": i.uses,
            "max_uses": i.max_uses,
        }
        for i in await invites.open_invites(db, conv)
    ]
    people = [
        {
            "id": u.id,
            "name": u.display_name,
            "is_guest": u.is_guest,
            "role": p.role.value,
            "role_name": ROLE_NAMES[p.role],
        }
        for p, u in await convs.participants(db, conv)
    ]
    return {
        "conv": conv,
        "room_url": f"/c/{conv.slug}",
        "open_invites": open_invites,
        "participants": people,
        "can_set_roles": await convs.can_set_roles(db, conv, user),
        "notice": request.query_params.get("notice"),
        "created": request.query_params.get("created") == "1",
        "new_invite": request.query_params.get("invite"),
        "control_error": request.query_params.get("error"),
    }


@router.get("/c/{slug}/edit")
async def edit_form(
    request: Request, slug: str, db: DbDep, node: NodeDep, user: CurrentUser
) -> Response:
    conv, manager = await _managed(request, db, slug, user)
    values = _conv_values(conv, await convs.tags_of(db, conv))
    context = await _host_context(request, db, node, conv, manager)
    return _render_form(request, values=values, errors={}, **context)


def _keep_untouched_time(conv: Conversation, data: dict[str, Any]) -> None:
    """The form shows whole minutes; an untouched field must not count as a new time."""
    if data.get("scheduled_at") is None or conv.scheduled_at is None:
        return
    if data["scheduled_at"] == conv.scheduled_at.replace(second=0, microsecond=0):
        data["scheduled_at"] = conv.scheduled_at


@router.post("/c/{slug}/edit")
async def save(
    request: Request, slug: str, db: DbDep, node: NodeDep, user: CurrentUser
) -> Response:
    conv, manager = await _managed(request, db, slug, user)
    form = await request.form()
    data, errors = _parse_form(form, include_schedule=conv.state == ConversationState.SCHEDULED)
    _keep_untouched_time(conv, data)
    if not errors:
        try:
            await convs.edit(db, conv, ConversationPatch.model_validate(data), manager, node)
            return _see_other(f"/c/{conv.slug}/edit?notice=saved")
        except (ValidationError, ConversationError) as exc:
            errors = _form_errors(exc)
    # Show the page as stored, around what the person typed.
    await db.rollback()
    await db.refresh(conv)
    context = await _host_context(request, db, node, conv, manager)
    return _render_form(
        request, values=_form_values(form), errors=errors, status_code=422, **context
    )


# ---- host controls: each goes back to the edit page with a notice, or with why it was refused --


def _back_to_edit(conv: Conversation, **params: str) -> RedirectResponse:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return _see_other(f"/c/{conv.slug}/edit" + (f"?{query}" if query else ""))


@contextmanager
def _refusal_back_to_edit(conv: Conversation) -> Iterator[None]:
    """A refused host control answers with the edit page showing why."""
    try:
        yield
    except (ConversationError, ratelimit.RateLimited) as exc:
        raise _Answer(_back_to_edit(conv, error=exc.message)) from exc


def _form_role(form: FormData, default: str) -> Role:
    try:
        return Role(str(form.get("role") or default))
    except ValueError:
        raise ConversationError("expected cohost, speaker or audience as the role") from None


# Form numbers are clamped before the domain checks their real range: an absurd value such as
# ttl_days=10**12 would otherwise overflow date arithmetic (a 500) instead of getting the
# domain's clear "between 1 minute and 90 days".
FORM_INT_LIMIT = 1_000_000


def _form_int(form: FormData, name: str, default: int) -> int:
    try:
        value = int(str(form.get(name) or default))
    except ValueError:
        return default
    return max(-FORM_INT_LIMIT, min(value, FORM_INT_LIMIT))


@router.post("/c/{slug}/start")
async def start(
    request: Request, slug: str, db: DbDep, node: NodeDep, user: CurrentUser
) -> Response:
    conv, manager = await _managed(request, db, slug, user)
    with _refusal_back_to_edit(conv):
        await convs.transition(db, conv, "start", manager, node)
    # Going live means going to the room.
    return _see_other(f"/c/{conv.slug}")


@router.post("/c/{slug}/end")
async def end(request: Request, slug: str, db: DbDep, node: NodeDep, user: CurrentUser) -> Response:
    conv, manager = await _managed(request, db, slug, user)
    with _refusal_back_to_edit(conv):
        await convs.transition(db, conv, "end", manager, node)
    return _back_to_edit(conv, notice="ended")


@router.post("/c/{slug}/invites")
async def create_invite(
    request: Request, slug: str, db: DbDep, node: NodeDep, user: CurrentUser
) -> Response:
    conv, manager = await _managed(request, db, slug, user)
    form = await request.form()
    with _refusal_back_to_edit(conv):
        issued = await invites.create_invite(
            db,
            conv,
            manager,
            secret_key=node.settings.secret_key,
            role=_form_role(form, "speaker"),
            ttl=timedelta(days=_form_int(form, "ttl_days", 7)),
            max_uses=_form_int(form, "max_uses", 1),
            admit=admitting(db, node, "invite", manager),
        )
    return _back_to_edit(conv, invite=str(issued.invite.id))


@router.post("/c/{slug}/invites/{invite_id}/revoke")
async def revoke_invite(
    request: Request, slug: str, invite_id: int, db: DbDep, user: CurrentUser
) -> Response:
    conv, manager = await _managed(request, db, slug, user)
    with _refusal_back_to_edit(conv):
        await invites.revoke_invite(db, conv, invite_id, manager)
    return _back_to_edit(conv, notice="revoked")


@router.post("/c/{slug}/participants/{user_id}/role")
async def set_role(
    request: Request, slug: str, user_id: int, db: DbDep, node: NodeDep, user: CurrentUser
) -> Response:
    conv, manager = await _managed(request, db, slug, user)
    form = await request.form()
    with _refusal_back_to_edit(conv):
        await convs.set_role(db, conv, manager, user_id, _form_role(form, ""), node)
    return _back_to_edit(conv, notice="role")


# ---- invite links -------------------------------------------------------------------------------


async def _invite_page(
    request: Request,
    db: AsyncSession,
    node: Node,
    token: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    display_name: str = "",
) -> Response:
    try:
        invite, conv = await invites.open_invite(db, token, secret_key=node.settings.secret_key)
    except ConversationError as exc:
        return render(
            request, "invite.html", status_code=exc.status, invalid=exc.message, token=token
        )
    return render(
        request,
        "invite.html",
        status_code=status_code,
        invalid=None,
        token=token,
        conv=conv,
        tags=await convs.tags_of(db, conv),
        role=invite.role.value,
        role_name=ROLE_NAMES[invite.role],
        expires_iso=convs.iso(invite.expires_at),
        expires_text=_utc_text(invite.expires_at),
        joinable=conv.state in invites.JOINABLE_STATES,
        error=error,
        display_name=display_name,
        next_path=quote(request.url.path, safe=""),
    )


@router.get("/invite/{token}")
async def invite(request: Request, token: str, db: DbDep, node: NodeDep) -> Response:
    return await _invite_page(request, db, node, token)


async def _new_guest(
    request: Request, db: AsyncSession, node: Node, token: str, response: Response
) -> User:
    """A guest with the name typed on the invite page, signed in through `response`'s cookie;
    otherwise answers with the invite page again, showing why not."""
    form = await request.form()
    display_name = str(form.get("display_name") or "")
    try:
        # The same per-address limit as POST /api/guest, so this is no way around it.
        security.check_rate(request, "guest", security.client_address(request))
        guest = await accounts.create_guest(db, display_name)
        session = await accounts.create_session(db, guest)
        await db.commit()
    except (accounts.AccountError, security.ApiError) as exc:
        await db.rollback()
        page = await _invite_page(
            request,
            db,
            node,
            token,
            error=exc.message,
            status_code=exc.status,
            display_name=display_name,
        )
        raise _Answer(page) from exc
    security.set_session_cookie(response, request, session, guest)
    return guest


@router.post("/invite/{token}")
async def accept(
    request: Request, token: str, db: DbDep, node: NodeDep, user: CurrentUser
) -> Response:
    """Accept as the signed-in person, or first become a guest with the name typed here."""
    response = _see_other("/")  # replaced below; carries the guest's session cookie if any
    try:
        # Check the link first, so a dead link does not leave a guest account behind.
        invite, _conv = await invites.open_invite(db, token, secret_key=node.settings.secret_key)
    except ConversationError:
        return await _invite_page(request, db, node, token)
    if user is None and invite.role == Role.COHOST:
        # Nor does a co-host invite, which a guest cannot accept (invites.accept_invite).
        return await _invite_page(request, db, node, token)
    if user is None:
        user = await _new_guest(request, db, node, token, response)
    try:
        conv, _role = await invites.accept_invite(
            db, token, user, secret_key=node.settings.secret_key, node=node
        )
    except ConversationError as exc:
        failed = await _invite_page(
            request, db, node, token, error=exc.message, status_code=exc.status
        )
        # A guest created just now stays signed in even though the invite failed.
        for cookie in response.headers.getlist("set-cookie"):
            failed.headers.append("set-cookie", cookie)
        return failed
    response.headers["location"] = f"/c/{conv.slug}"
    return response
