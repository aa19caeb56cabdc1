"""People: members (username + argon2 password), guests (a display name only), sessions and
password resets.

Secrets handed to browsers (session tokens, reset tokens) are random and only their SHA-256 is
stored, so a leaked database cannot be replayed as cookies or reset links.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from junto import user_text
from junto.storage.tables import PasswordReset, Session, User
from junto.storage.types import utcnow

USERNAME_MIN, USERNAME_MAX = 3, 32
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
DISPLAY_NAME_MAX = 64
BIO_MAX = 500
MIN_CONTRAST = 4.5  # WCAG 2.x AA for normal text: names are drawn in their colour on white.

MEMBER_SESSION_TTL = timedelta(days=30)
GUEST_SESSION_TTL = timedelta(days=1)
RESET_TTL = timedelta(hours=1)

# Distinct hues, each at least 4.5:1 on white (checked by tests/accounts).
PALETTE: tuple[str, ...] = (
    "#1f5fbf",  # blue
    "#b3261e",  # red
    "#1e7b34",  # green
    "#8e24aa",  # purple
    "#a14e00",  # orange
    "#00695c",  # teal
    "#c2185b",  # pink
    "#3949ab",  # indigo
    "#6a6a00",  # olive
    "#0b6e99",  # cyan
    "#5d4037",  # brown
    "#455a64",  # slate
)

_USERNAME_RE = re.compile(r"[a-z0-9_]+")
_COLOUR_RE = re.compile(r"#[0-9a-fA-F]{6}")

_T = TypeVar("_T")

_hasher = PasswordHasher()
# Verified against when the username does not exist, so a miss costs as much as a hit and
# response times do not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AccountError(Exception):
    """A request about people that cannot be honoured. `status`/`code` map it to HTTP."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


# ---- validation -------------------------------------------------------------------------------


def normalize_username(raw: str) -> str:
    """Usernames are case-insensitive: stored and compared in lower case."""
    name = raw.strip().lower()
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        raise AccountError(
            f"username must be {USERNAME_MIN} to {USERNAME_MAX} characters, got {len(name)}"
        )
    if not _USERNAME_RE.fullmatch(name):
        raise AccountError(
            f"username may contain only letters a-z, digits and underscores, got {raw!r}"
        )
    return name


def check_password(password: str, username: str | None = None) -> None:
    if len(password) < PASSWORD_MIN:
        raise AccountError(f"password must be at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise AccountError(f"password must be at most {PASSWORD_MAX} characters")
    if username is not None and password.strip().lower() == username.lower():
        raise AccountError("password must not be the same as the username")


def clean_display_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise AccountError("display name must not be empty")
    if len(name) > DISPLAY_NAME_MAX:
        raise AccountError(
            f"display name must be at most {DISPLAY_NAME_MAX} characters, got {len(name)}"
        )
    # Bidi overrides can make a name render as someone else's (junto.user_text).
    if problem := user_text.unfit_character(name):
        raise AccountError(f"display name {problem}")
    return name


def clean_bio(raw: str) -> str:
    bio = raw.strip()
    if len(bio) > BIO_MAX:
        raise AccountError(f"bio must be at most {BIO_MAX} characters, got {len(bio)}")
    if problem := user_text.unfit_character(bio, allow="\n\t"):
        raise AccountError(f"bio {problem}")
    return bio.replace("\r\n", "\n")


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def contrast_on_white(colour: str) -> float:
    """WCAG 2.x contrast ratio of `#rrggbb` against white."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)
    return 1.05 / (luminance + 0.05)


def clean_colour(raw: str) -> str:
    colour = raw.strip().lower()
    if not _COLOUR_RE.fullmatch(colour):
        raise AccountError(f"colour must look like #rrggbb, got {raw!r}")
    ratio = contrast_on_white(colour)
    # Compare the rounded ratio people see, so "4.50:1" is never refused.
    if round(ratio, 2) < MIN_CONTRAST:
        raise AccountError(
            f"colour {colour} has contrast {ratio:.2f}:1 on white; "
            f"expected at least {MIN_CONTRAST}:1 so names stay readable — choose a darker colour"
        )
    return colour


def palette_colour(user_id: int) -> str:
    return PALETTE[(user_id - 1) % len(PALETTE)]


# ---- people -----------------------------------------------------------------------------------


def person(user: User) -> dict[str, Any]:
    """How a person appears to others (docs/protocol.md)."""
    return {
        "id": user.id,
        "name": user.display_name,
        "colour": user.colour,
        "is_guest": user.is_guest,
    }


def profile(user: User) -> dict[str, Any]:
    """What a person sees of themselves: `person` plus their profile."""
    return {
        **person(user),
        "username": user.username,
        "bio": user.bio,
        "is_admin": user.is_admin,
    }


# argon2 is deliberately slow (tens to hundreds of ms) and takes 64 MiB per call, so it runs off
# the event loop in a pool of its own: a burst of sign-ins (from any number of usernames, which
# the per-username sign-in limit does not bound) then waits its turn here, holding at most
# `max_workers` x 64 MiB, instead of filling asyncio's default executor, which the loop also
# needs for other work (getaddrinfo when the database pool opens a connection, to_thread).
_ARGON2_POOL = ThreadPoolExecutor(
    max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="junto-argon2"
)


async def _off_loop(fn: Callable[..., _T], *args: Any) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_ARGON2_POOL, fn, *args)


async def _hash(password: str) -> str:
    return await _off_loop(_hasher.hash, password)


async def _verify(stored: str, password: str) -> bool:
    try:
        return await _off_loop(_hasher.verify, stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def _insert_user(db: AsyncSession, user: User) -> User:
    # The colour follows the id, which exists only after the insert; a placeholder keeps the
    # NOT NULL column satisfied until then.
    user.colour = PALETTE[0]
    db.add(user)
    await db.flush()
    user.colour = palette_colour(user.id)
    await db.flush()
    return user


async def get_by_username(db: AsyncSession, username: str) -> User | None:
    name = username.strip().lower()
    return (await db.execute(select(User).where(User.username == name))).scalar_one_or_none()


async def create_member(
    db: AsyncSession, *, username: str, password: str, display_name: str, is_admin: bool = False
) -> User:
    """Create a member (the caller commits). Raises AccountError, status 409 when taken."""
    name = normalize_username(username)
    check_password(password, name)
    shown = clean_display_name(display_name)
    if await get_by_username(db, name) is not None:
        raise AccountError(f"username {name!r} is taken", status=409, code="taken")
    user = User(
        username=name,
        password_hash=await _hash(password),
        display_name=shown,
        bio="",
        is_admin=is_admin,
        is_guest=False,
    )
    try:
        return await _insert_user(db, user)
    except IntegrityError:
        # Lost a race with a concurrent sign-up for the same name. The transaction is unusable
        # after a failed flush; nothing else belongs in a sign-up transaction, so roll it back.
        await db.rollback()
        raise AccountError(f"username {name!r} is taken", status=409, code="taken") from None


async def create_guest(db: AsyncSession, display_name: str) -> User:
    """A guest: a users row with a display name and no way to sign in again."""
    user = User(
        username=None,
        password_hash=None,
        display_name=clean_display_name(display_name),
        bio="",
        is_admin=False,
        is_guest=True,
    )
    return await _insert_user(db, user)


async def authenticate(db: AsyncSession, username: str, password: str) -> User:
    """The member with these credentials, upgrading the stored hash when parameters changed."""
    user = await get_by_username(db, username)
    if user is None or user.password_hash is None or len(password) > PASSWORD_MAX:
        await _verify(_DUMMY_HASH, password[:PASSWORD_MAX])
        raise AccountError("wrong username or password", status=401, code="bad_credentials")
    if not await _verify(user.password_hash, password):
        raise AccountError("wrong username or password", status=401, code="bad_credentials")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await _hash(password)
        await db.flush()
    return user


async def update_profile(
    db: AsyncSession,
    user: User,
    *,
    display_name: str | None = None,
    colour: str | None = None,
    bio: str | None = None,
) -> User:
    """Validate everything first, then change: a bad field changes nothing."""
    changes: dict[str, str] = {}
    if display_name is not None:
        changes["display_name"] = clean_display_name(display_name)
    if colour is not None:
        changes["colour"] = clean_colour(colour)
    if bio is not None:
        changes["bio"] = clean_bio(bio)
    for key, value in changes.items():
        setattr(user, key, value)
    await db.flush()
    return user


async def set_password(db: AsyncSession, user: User, password: str) -> None:
    check_password(password, user.username)
    user.password_hash = await _hash(password)
    await db.flush()


# ---- sessions ---------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_ttl(user: User) -> timedelta:
    return GUEST_SESSION_TTL if user.is_guest else MEMBER_SESSION_TTL


async def create_session(db: AsyncSession, user: User) -> str:
    """Start a session and return its cookie token (only the hash is stored)."""
    now = utcnow()
    # Sweep this person's expired sessions here, where we write anyway, instead of a timer.
    await db.execute(delete(Session).where(Session.user_id == user.id, Session.expires_at < now))
    token = secrets.token_urlsafe(32)
    db.add(
        Session(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + session_ttl(user),
        )
    )
    await db.flush()
    return token


async def user_for_session(db: AsyncSession, token: str) -> User | None:
    """The person signed in with this cookie token, in one query; None if unknown or expired."""
    if not token or len(token) > 128:
        return None
    query = (
        select(User)
        .join(Session, Session.user_id == User.id)
        .where(Session.token_hash == token_hash(token), Session.expires_at > utcnow())
    )
    return (await db.execute(query)).scalar_one_or_none()


async def end_session(db: AsyncSession, token: str) -> None:
    await db.execute(delete(Session).where(Session.token_hash == token_hash(token)))


async def revoke_sessions(db: AsyncSession, user_id: int) -> None:
    await db.execute(delete(Session).where(Session.user_id == user_id))


async def count_sessions(db: AsyncSession, user_id: int) -> int:
    query = select(func.count()).select_from(Session).where(Session.user_id == user_id)
    return int((await db.execute(query)).scalar_one())


# ---- password reset ---------------------------------------------------------------------------


async def issue_password_reset(db: AsyncSession, username: str) -> str:
    """A one-time reset token for a member, valid for an hour (the caller commits)."""
    user = await get_by_username(db, username)
    if user is None or user.is_guest:
        raise AccountError(f"no member named {username.strip().lower()!r}", status=404)
    token = secrets.token_urlsafe(32)
    db.add(
        PasswordReset(
            token_hash=token_hash(token), user_id=user.id, expires_at=utcnow() + RESET_TTL
        )
    )
    await db.flush()
    return token


_BAD_RESET = "this password reset link is invalid, expired or already used"


async def reset_password(db: AsyncSession, token: str, new_password: str) -> User:
    """Set a new password with a reset token, once; every existing session is signed out.

    The new password is checked before the token is spent, so a typo does not burn the link.
    """
    digest = token_hash(token)
    now = utcnow()
    row = (
        await db.execute(select(PasswordReset).where(PasswordReset.token_hash == digest))
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or _expired(row.expires_at, now):
        raise AccountError(_BAD_RESET, status=400, code="bad_token")
    user = await db.get(User, row.user_id)
    if user is None:
        raise AccountError(_BAD_RESET, status=400, code="bad_token")
    check_password(new_password, user.username)
    # Conditional update: of two concurrent uses of one token only one matches.
    spent = await db.execute(
        update(PasswordReset)
        .where(PasswordReset.token_hash == digest, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(spent, "rowcount", 0) != 1:
        raise AccountError(_BAD_RESET, status=400, code="bad_token")
    user.password_hash = await _hash(new_password)
    await revoke_sessions(db, user.id)
    await db.flush()
    return user


def _expired(expires_at: datetime, now: datetime) -> bool:
    return expires_at <= now
