"""JSON API for people: sign up, sign in/out, guests, the profile, password reset."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from junto import accounts
from junto.storage.tables import User
from junto.web.deps import DbDep
from junto.web.security import (
    CurrentUser,
    RequireIdentity,
    check_rate,
    clear_session_cookie,
    client_address,
    error_response,
    session_token,
    set_session_cookie,
)

log = logging.getLogger("junto.accounts")
router = APIRouter(prefix="/api", tags=["accounts"])

Username = Annotated[
    str,
    StringConstraints(
        min_length=accounts.USERNAME_MIN,
        max_length=accounts.USERNAME_MAX,
        pattern=r"^[A-Za-z0-9_]+$",
    ),
]
Password = Annotated[
    str, StringConstraints(min_length=accounts.PASSWORD_MIN, max_length=accounts.PASSWORD_MAX)
]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=accounts.DISPLAY_NAME_MAX)]
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupIn(_In):
    username: Username = Field(description="3-32 of a-z, 0-9, _ (case-insensitive)")
    password: Password = Field(description="at least 8 characters, not the username")
    display_name: DisplayName | None = Field(
        default=None, description="name shown to others (default: the username)"
    )


class SigninIn(_In):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=accounts.PASSWORD_MAX)]


class GuestIn(_In):
    display_name: DisplayName


class ProfilePatch(_In):
    display_name: DisplayName | None = None
    colour: Colour | None = Field(
        default=None, description="#rrggbb with at least 4.5:1 contrast on white"
    )
    bio: Annotated[str, StringConstraints(max_length=accounts.BIO_MAX)] | None = None


class ForgotIn(_In):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ResetIn(_In):
    token: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: Password


class Me(BaseModel):
    """A person (as others see them: id, name, colour, is_guest) plus their own profile."""

    id: int
    name: str
    colour: str
    is_guest: bool
    username: str | None
    bio: str
    is_admin: bool


class Message(BaseModel):
    message: str


class ErrorOut(BaseModel):
    error: str = Field(description="machine-readable code, e.g. taken, csrf, rate_limited")
    message: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


def _me(user: User) -> Me:
    return Me(**accounts.profile(user))


async def start_session(db: DbDep, request: Request, response: Response, user: User) -> None:
    """Sign `user` in on this browser (the cookie goes on `response`), ending whatever session
    it had."""
    old = session_token(request)
    if old:
        await accounts.end_session(db, old)
    token = await accounts.create_session(db, user)
    await db.commit()
    set_session_cookie(response, request, token, user)


async def end_session(db: DbDep, request: Request, response: Response) -> None:
    """Sign this browser out (the cookie is cleared on `response`)."""
    token = session_token(request)
    if token:
        await accounts.end_session(db, token)
        await db.commit()
    clear_session_cookie(response, request)


async def _signed_in_as(db: DbDep, request: Request, response: Response, user: User) -> Me:
    """Sign `user` in on this browser and answer with who they now are."""
    await start_session(db, request, response, user)
    return _me(user)


def signin_rate_key(request: Request, username: str) -> str:
    # Per address and username: guessing one person's password is slow, while other people
    # behind the same address (a café, a conference) can still sign in.
    return f"{client_address(request)}|{username.strip().lower()}"


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=Me,
    responses=_errors(400, 403, 409, 429),
    summary="Create a member account and sign in",
)
async def signup(body: SignupIn, request: Request, response: Response, db: DbDep) -> Me:
    check_rate(request, "signup", client_address(request))
    user = await accounts.create_member(
        db,
        username=body.username,
        password=body.password,
        display_name=body.display_name or body.username,
    )
    return await _signed_in_as(db, request, response, user)


@router.post(
    "/signin",
    response_model=Me,
    responses=_errors(401, 403, 429),
    summary="Sign in with username and password",
)
async def signin(body: SigninIn, request: Request, response: Response, db: DbDep) -> Me:
    check_rate(request, "signin_address", client_address(request))
    check_rate(request, "signin", signin_rate_key(request, body.username))
    user = await accounts.authenticate(db, body.username, body.password)
    return await _signed_in_as(db, request, response, user)


@router.post(
    "/signout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors(403),
    summary="End this browser's session",
)
async def signout(request: Request, db: DbDep) -> Response:
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    await end_session(db, request, response)
    return response


@router.get("/me", response_model=Me, responses=_errors(401), summary="The signed-in person")
async def get_me(user: RequireIdentity) -> Me:
    return _me(user)


@router.patch(
    "/me",
    response_model=Me,
    responses=_errors(400, 401, 403),
    summary="Change display name, colour or bio",
)
async def patch_me(body: ProfilePatch, user: RequireIdentity, db: DbDep) -> Me:
    # The middleware's copy of the user belongs to another (closed) DB session.
    row = await db.get(User, user.id)
    assert row is not None
    await accounts.update_profile(
        db, row, display_name=body.display_name, colour=body.colour, bio=body.bio
    )
    await db.commit()
    return _me(row)


@router.post(
    "/guest",
    status_code=status.HTTP_201_CREATED,
    response_model=Me,
    responses={
        200: {"model": Me, "description": "already a guest: renamed"},
        **_errors(400, 403, 409, 429),
    },
    summary="Join as a guest with a display name",
)
async def join_as_guest(
    body: GuestIn, request: Request, response: Response, user: CurrentUser, db: DbDep
) -> Me | Response:
    if user is not None and not user.is_guest:
        return error_response(409, "signed_in", f"already signed in as {user.username!r}")
    if user is not None:
        row = await db.get(User, user.id)
        assert row is not None
        await accounts.update_profile(db, row, display_name=body.display_name)
        await db.commit()
        response.status_code = status.HTTP_200_OK
        return _me(row)
    check_rate(request, "guest", client_address(request))
    guest = await accounts.create_guest(db, body.display_name)
    return await _signed_in_as(db, request, response, guest)


FORGOT_ANSWER = (
    "If that member exists, a password reset link has been issued. "
    "This node has no mail server: ask its operator for the link from the node's log."
)


async def request_reset(request: Request, db: DbDep, username: str) -> None:
    """Issue a reset link and log it for the operator; silent when no such member exists."""
    check_rate(request, "reset_request", client_address(request))
    try:
        token = await accounts.issue_password_reset(db, username)
    except accounts.AccountError:
        # Same answer either way: the response must not reveal who has an account.
        return
    await db.commit()
    settings = request.app.state.settings
    # Never build the link from the request's Host header: anyone could make the operator
    # forward a link to their own site, carrying a valid token (junto.config.Settings.base_url).
    base = settings.base_url
    log.warning(
        "password reset requested for %r: %s/reset-password?token=%s (valid 1 hour)",
        username.strip().lower(),
        base,
        token,
    )


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Message,
    responses=_errors(403, 429),
    summary="Request a password reset link (written to the operator log)",
)
async def forgot_password(body: ForgotIn, request: Request, db: DbDep) -> Message:
    await request_reset(request, db, body.username)
    return Message(message=FORGOT_ANSWER)


@router.post(
    "/password/reset",
    response_model=Me,
    responses=_errors(400, 403),
    summary="Set a new password with a reset token; signs out every other session",
)
async def reset_password(body: ResetIn, request: Request, response: Response, db: DbDep) -> Me:
    user = await accounts.reset_password(db, body.token, body.password)
    return await _signed_in_as(db, request, response, user)
