"""Account pages: plain HTML forms that work without JavaScript (progressive enhancement).

Each form re-renders with the error and what the person typed (never the password); success
redirects (303, post/redirect/get) to a safe `next` path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from junto import accounts
from junto.storage.tables import User
from junto.web.accounts_api import (
    FORGOT_ANSWER,
    end_session,
    request_reset,
    signin_rate_key,
    start_session,
)
from junto.web.deps import DbDep
from junto.web.render import render
from junto.web.security import (
    ApiError,
    CurrentUser,
    check_rate,
    client_address,
)

router = APIRouter(include_in_schema=False)

# Which form field an error message is about, so the page can mark that field invalid.
_FIELD_WORDS = (
    ("username", "username"),
    ("password", "password"),
    ("display name", "display_name"),
    ("colour", "colour"),
    ("bio", "bio"),
)


def safe_next(raw: str | None) -> str:
    """A same-site relative path to return to after signing in; anything else becomes "/".

    Refuses absolute and scheme-relative URLs ("//evil", "/\\evil") that would turn the sign-in
    page into an open redirect.
    """
    if not raw or not raw.startswith("/") or raw.startswith(("//", "/\\")):
        return "/"
    if any(ord(ch) < 0x20 or ch == "\\" for ch in raw):
        return "/"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return "/"
    return raw


def _next_query(next_path: str) -> str:
    return "" if next_path == "/" else f"?next={quote(next_path, safe='')}"


def _error_field(message: str) -> str:
    lowered = message.lower()
    for word, name in _FIELD_WORDS:
        if word in lowered:
            return name
    return ""


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    await form.close()
    return values


async def _sign_in(db: DbDep, request: Request, user: User, to: str) -> Response:
    response = RedirectResponse(to, status_code=303)
    await start_session(db, request, response, user)
    return response


def _page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
    error = ctx.get("error") or ""
    ctx.setdefault("error_field", _error_field(error) if error else "")
    return render(request, name, status_code=status, **ctx)


# ---- sign in / sign up / sign out -------------------------------------------------------------


@router.get("/signin")
async def signin_page(request: Request, user: CurrentUser, next: str = "/") -> Response:
    target = safe_next(next)
    if user is not None and not user.is_guest:
        return RedirectResponse(target, status_code=303)
    return _page(request, "signin.html", username="", next=target, next_query=_next_query(target))


@router.post("/signin")
async def signin_submit(request: Request, db: DbDep) -> Response:
    form = await _form(request)
    username = form.get("username", "").strip()
    target = safe_next(form.get("next"))
    ctx = {"username": username, "next": target, "next_query": _next_query(target)}
    try:
        check_rate(request, "signin_address", client_address(request))
        check_rate(request, "signin", signin_rate_key(request, username))
        user = await accounts.authenticate(db, username, form.get("password", ""))
    except ApiError as exc:
        return _page(request, "signin.html", exc.status, error=exc.message, **ctx)
    except accounts.AccountError as exc:
        return _page(
            request, "signin.html", exc.status, error=exc.message, error_field="password", **ctx
        )
    return await _sign_in(db, request, user, target)


@router.get("/signup")
async def signup_page(request: Request, user: CurrentUser, next: str = "/") -> Response:
    target = safe_next(next)
    if user is not None and not user.is_guest:
        return RedirectResponse(target, status_code=303)
    return _page(
        request, "signup.html", username="", display_name="", next=target,
        next_query=_next_query(target),
    )  # fmt: skip


@router.post("/signup")
async def signup_submit(request: Request, db: DbDep) -> Response:
    form = await _form(request)
    username = form.get("username", "").strip()
    display_name = form.get("display_name", "")
    target = safe_next(form.get("next"))
    ctx = {
        "username": username,
        "display_name": display_name,
        "next": target,
        "next_query": _next_query(target),
    }
    try:
        check_rate(request, "signup", client_address(request))
        user = await accounts.create_member(
            db,
            username=username,
            password=form.get("password", ""),
            display_name=display_name if display_name.strip() else username,
        )
    except (ApiError, accounts.AccountError) as exc:
        return _page(request, "signup.html", exc.status, error=exc.message, **ctx)
    return await _sign_in(db, request, user, target)


@router.post("/signout")
async def signout_submit(request: Request, db: DbDep) -> Response:
    response = RedirectResponse("/", status_code=303)
    await end_session(db, request, response)
    return response


# ---- profile ----------------------------------------------------------------------------------


def _to_signin(path: str) -> Response:
    return RedirectResponse(f"/signin?next={quote(path, safe='')}", status_code=303)


@router.get("/profile")
async def profile_page(request: Request, user: CurrentUser) -> Response:
    if user is None or user.is_guest:
        return _to_signin("/profile")
    notice = {"saved": "Profile saved.", "password": "Your new password is set."}.get(
        request.query_params.get("done", ""), ""
    )
    return _page(
        request, "profile.html", display_name=user.display_name, colour=user.colour,
        bio=user.bio, notice=notice,
    )  # fmt: skip


@router.post("/profile")
async def profile_submit(request: Request, user: CurrentUser, db: DbDep) -> Response:
    if user is None or user.is_guest:
        return _to_signin("/profile")
    form = await _form(request)
    ctx = {
        "display_name": form.get("display_name", ""),
        "colour": form.get("colour", user.colour),
        "bio": form.get("bio", ""),
    }
    row = await db.get(User, user.id)
    assert row is not None
    try:
        await accounts.update_profile(db, row, **ctx)
    except accounts.AccountError as exc:
        return _page(request, "profile.html", exc.status, error=exc.message, **ctx)
    await db.commit()
    return RedirectResponse("/profile?done=saved", status_code=303)


# ---- password reset ---------------------------------------------------------------------------


@router.get("/forgot-password")
async def forgot_page(request: Request) -> Response:
    return _page(request, "forgot_password.html", username="")


@router.post("/forgot-password")
async def forgot_submit(request: Request, db: DbDep) -> Response:
    form = await _form(request)
    username = form.get("username", "").strip()
    if not username:
        return _page(
            request, "forgot_password.html", 400, username="",
            error="Enter your username.", error_field="username",
        )  # fmt: skip
    try:
        await request_reset(request, db, username)
    except ApiError as exc:
        return _page(request, "forgot_password.html", exc.status, username=username,
                     error=exc.message)  # fmt: skip
    return _page(request, "forgot_password.html", username="", notice=FORGOT_ANSWER)


@router.get("/reset-password")
async def reset_page(request: Request, token: str = "") -> Response:
    return _page(request, "reset_password.html", token=token[:128])


@router.post("/reset-password")
async def reset_submit(request: Request, db: DbDep) -> Response:
    form = await _form(request)
    token = form.get("token", "")[:128]
    try:
        user = await accounts.reset_password(db, token, form.get("password", ""))
    except accounts.AccountError as exc:
        # A spent or expired link cannot be retried: show the error without the form.
        keep = token if exc.code != "bad_token" else ""
        return _page(request, "reset_password.html", exc.status, token=keep, error=exc.message)
    return await _sign_in(db, request, user, "/profile?done=password")
