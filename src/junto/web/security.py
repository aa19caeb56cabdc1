"""Sessions, CSRF, security headers, the current user and account rate limits.

`install(app)` adds one pure ASGI middleware (not BaseHTTPMiddleware, which would buffer
streaming responses and does not see WebSockets) and the JSON error handlers.

CSRF is the double-submit pattern (OWASP CSRF cheat sheet): a random `junto_csrf` cookie that
another site can neither read nor set must be echoed in the `X-CSRF-Token`
header or a `csrf_token` form field on every unsafe request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from junto import accounts, strict_json
from junto.config import Limits, Settings
from junto.ratelimit import AddressConnections, RateLimited, TokenBucket
from junto.storage.tables import User

SESSION_COOKIE = "junto_session"
CSRF_COOKIE = "junto_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_BODY_MAX = 256 * 1024  # Pages only post small forms; anything larger is refused (413).
# Every request body. The largest legitimate one (a conversation with a 5,000-character
# description) is a few tens of KiB; without a cap, anyone holding a CSRF token (any visitor
# can get one) could make the node buffer gigabytes of JSON before validation refused it.
REQUEST_BODY_MAX = 1024 * 1024

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # No 'unsafe-inline': colours people choose are drawn with SVG `fill` attributes or set
        # from JS through the CSSOM (el.style.color), neither of which CSP restricts.
        "style-src 'self'",
        "connect-src 'self' ws: wss:",
        "img-src 'self' data:",
        "font-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)
# FastAPI's interactive docs load Swagger/ReDoc from a CDN with inline scripts; they show no
# user content, so they are served without the CSP rather than broken by it.
_CSP_EXEMPT = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")
# The only pages other sites may frame: snippets' players. Same policy, any frame ancestor.
_FRAMEABLE_RE = re.compile(r"/s/[A-Za-z0-9]{1,16}/embed")
EMBED_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "frame-ancestors 'none'", "frame-ancestors *"
)


# ---- errors -----------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered as JSON `{"error": code, "message": message}`."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _wants_html(conn: HTTPConnection) -> bool:
    return "text/html" in conn.headers.get("accept", "")


async def _api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    # A person opening a members-only page is sent to sign in and brought back afterwards.
    is_page = not request.url.path.startswith("/api/")
    if exc.status == 401 and is_page and request.method == "GET" and _wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _account_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, accounts.AccountError)
    return error_response(exc.status, exc.code, exc.message)


async def _rate_limited_handler(request: Request, exc: Exception) -> Response:
    """Too many snippets, conversations or invites (junto.ratelimit.admit), for any route."""
    assert isinstance(exc, RateLimited)
    return rate_limited_response(exc)


def rate_limited_response(exc: RateLimited) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)}
    return error_response(429, "rate_limited", exc.message, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
}


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    """Framework errors (unparsable body, unknown path, ...) in the API's one error shape.

    `detail` is kept next to `error`/`message` for clients that expect FastAPI's default.
    """
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = exc.detail
    message = detail if isinstance(detail, str) else HTTPStatus(exc.status_code).phrase
    body = {"error": _HTTP_CODES.get(exc.status_code, "http_error"), "message": message,
            "detail": detail}  # fmt: skip
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


# FastAPI's 422 items carry `input` (the value refused, up to the whole body) and `ctx` (which
# can quote it): echoing them multiplies what a client sends into what the node writes, and a
# value JSON cannot encode made the handler itself fail. Items keep `type`, `loc` and `msg`;
# a body of many bad list items gets the first ones only.
_VALIDATION_ITEMS_MAX = 20
_LOC_PART_MAX = 64  # a location names the keys a client sent, and keys can be long
_MSG_MAX = 300


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _public_error(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = [p if isinstance(p, int) else _capped(str(p), _LOC_PART_MAX) for p in error["loc"]]
    return {"type": str(error["type"]), "loc": loc, "msg": _capped(str(error["msg"]), _MSG_MAX)}


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = [_public_error(e) for e in exc.errors()[:_VALIDATION_ITEMS_MAX]]
    return JSONResponse({"detail": detail}, status_code=422)


# ---- cookies ----------------------------------------------------------------------------------


def _cookie(name: str, value: str, *, secure: bool, same_site: str, http_only: bool,
            max_age: int | None) -> str:  # fmt: skip
    parts = [f"{name}={value}", "Path=/", f"SameSite={same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    if http_only:
        parts.append("HttpOnly")
    return "; ".join(parts)


def _settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def set_session_cookie(response: Response, conn: HTTPConnection, token: str, user: User) -> None:
    max_age = int(accounts.session_ttl(user).total_seconds())
    response.headers.append(
        "set-cookie",
        _cookie(SESSION_COOKIE, token, secure=_settings(conn).secure_cookies, same_site="Lax",
                http_only=True, max_age=max_age),
    )  # fmt: skip


def clear_session_cookie(response: Response, conn: HTTPConnection) -> None:
    response.headers.append("set-cookie", _clear_session_header(_settings(conn).secure_cookies))


def _clear_session_header(secure: bool) -> str:
    return _cookie(SESSION_COOKIE, '""', secure=secure, same_site="Lax", http_only=True, max_age=0)


def session_token(conn: HTTPConnection) -> str | None:
    return conn.cookies.get(SESSION_COOKIE) or None


# ---- the middleware ---------------------------------------------------------------------------


class SecurityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/static/"):
            # Static files need no user and no CSRF: no DB query on the hot path.
            await self.app(scope, receive, _with_headers(send, path, []))
            return
        headers = Headers(scope=scope)
        cookies = cookie_parser(headers.get("cookie", ""))
        settings: Settings = scope["app"].state.settings
        existing = cookies.get(CSRF_COOKIE, "")
        has_csrf = bool(_TOKEN_RE.fullmatch(existing))
        csrf_token = existing if has_csrf else secrets.token_urlsafe(32)
        extra: list[str] = []
        if not has_csrf:
            # Not HttpOnly: scripts may read it, though pages carry it in <meta name=csrf-token>.
            # Lax, not Strict: a Strict cookie is withheld when someone follows a link to Junto
            # from another site (the way conversations are shared), so a fresh token would be
            # minted and every form and script in their other open Junto tabs would fail with
            # "form expired". Lax still keeps it off cross-site POSTs, and the double-submit
            # check rests on other sites being unable to read or set it, which SameSite
            # does not change.
            extra.append(_cookie(CSRF_COOKIE, csrf_token, secure=settings.secure_cookies,
                                 same_site="Lax", http_only=False, max_age=None))  # fmt: skip
        state = scope.setdefault("state", {})
        state["csrf_token"] = csrf_token
        state["user"] = None
        # `extra` is read when the response starts, so cookies decided below still go out.
        send = _with_headers(send, path, extra)

        if scope["method"] not in SAFE_METHODS:
            refusal, receive = await _check_unsafe(scope, receive, headers, existing, has_csrf)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if _is_json(headers):
            refusal, receive = await _check_json(scope, receive)
            if refusal is not None:
                await refusal(scope, receive, send)
                return

        token = cookies.get(SESSION_COOKIE)
        if token:
            async with scope["app"].state.node.db() as db:
                state["user"] = await accounts.user_for_session(db, token)
            if state["user"] is None:
                # Expired or signed out elsewhere: drop the dead cookie.
                extra.append(_clear_session_header(settings.secure_cookies))
        await self.app(scope, receive, send)


def _with_headers(send: Send, path: str, cookies: list[str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            already = {c.split("=", 1)[0] for c in headers.getlist("set-cookie")}
            for cookie in cookies:
                # A handler that signed someone in wins over clearing their dead cookie.
                if cookie.split("=", 1)[0] not in already:
                    headers.append("set-cookie", cookie)
            headers.setdefault("x-content-type-options", "nosniff")
            headers.setdefault("referrer-policy", "same-origin")
            if headers.get("content-type", "").startswith("text/html"):
                if _FRAMEABLE_RE.fullmatch(path):
                    # A snippet's embed page (junto.web.snippet_pages) is made to be framed.
                    headers.setdefault("content-security-policy", EMBED_SECURITY_POLICY)
                    return await send(message)
                if path not in _CSP_EXEMPT:
                    headers.setdefault("content-security-policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("x-frame-options", "DENY")
        await send(message)

    return wrapped


async def _check_unsafe(
    scope: Scope, receive: Receive, headers: Headers, cookie: str, has_cookie: bool
) -> tuple[Response | None, Receive]:
    """Refuse a cross-site or token-less unsafe request; returns (refusal, receive to use)."""
    conn = HTTPConnection(scope)
    is_form = headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )
    if not origin_allowed(conn):
        return _csrf_refusal(is_form, "cross-site request refused (Origin does not match)"), receive
    sent = headers.get(CSRF_HEADER)
    if sent is None and is_form:
        body = await _read_body(receive, FORM_BODY_MAX)
        if body is None:
            return error_response(413, "too_large", "form is too large"), receive
        sent = await _form_token(scope, body)
        receive = _replay(body)  # the app reads the body we consumed
    if not has_cookie or not sent or not secrets.compare_digest(sent, cookie):
        return _csrf_refusal(
            is_form,
            "missing or wrong CSRF token: send the junto_csrf cookie's value in X-CSRF-Token "
            "(pages: reload and submit again)",
        ), receive
    return None, receive


def _csrf_refusal(is_form: bool, message: str) -> Response:
    if is_form:
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Form expired · Junto</title>"
            "<main><h1>This form has expired</h1>"
            f"<p>{escape(message)}</p><p><a href=javascript:history.back()>Go back</a>, reload "
            "the page and try again.</p></main></html>"
        )
        return HTMLResponse(page, status_code=403)
    return error_response(403, "csrf", message)


def _is_json(headers: Headers) -> bool:
    """The content types FastAPI decodes as JSON: application/json and application/*+json."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _check_json(scope: Scope, receive: Receive) -> tuple[Response | None, Receive]:
    """Refuse a JSON body that is not strict JSON (400 bad_json) before any handler sees it.

    FastAPI decodes bodies with Python's lenient `json.loads` on a Request of its own, so the
    check cannot hand its result on: the body is decoded twice, which costs little next to
    a 1 MiB cap, and what the handler decodes is then known to be strict JSON.
    """
    limit = getattr(scope["app"], "max_body_size", None) or REQUEST_BODY_MAX
    body = await _read_body(receive, limit)
    if body is None:
        return error_response(413, "too_large", f"expected at most {limit} bytes"), receive
    receive = _replay(body)
    if body:  # an empty body is the handler's to refuse ("field required")
        try:
            strict_json.loads(body)
        except strict_json.BadJson as exc:
            return error_response(400, "bad_json", str(exc)), receive
    return None, receive


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A `receive` that hands the already-read body to the app once, then waits as usual."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _form_token(scope: Scope, body: bytes) -> str | None:
    request = Request(scope, _replay(body))
    try:
        form = await request.form()
    except Exception:  # a malformed body is the app's to reject; here it just has no token
        return None
    value = form.get(CSRF_FIELD)
    await form.close()
    return value if isinstance(value, str) else None


# ---- origins and users for other components ---------------------------------------------------


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_key(host: str, scheme: str | None) -> str:
    """`host[:port]` in lower case, with the scheme's default port dropped."""
    host = host.strip().lower()
    if scheme and host.endswith(f":{_DEFAULT_PORTS.get(scheme, -1)}"):
        host = host.rsplit(":", 1)[0]
    if not scheme and host.endswith((":80", ":443")):
        # A Host header says nothing about the scheme; behind a TLS proxy it is often http.
        host = host.rsplit(":", 1)[0]
    return host


def origin_allowed(conn: HTTPConnection) -> bool:
    """True unless the request carries an Origin of another site.

    Non-browser clients send no Origin and are allowed (they cannot ride a victim's cookies);
    browsers always send it on WebSocket handshakes and cross-origin POSTs (RFC 6454, 6455).
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # includes "null" (sandboxed frames, file: pages)
    key = _host_key(parts.netloc, parts.scheme)
    allowed = {_host_key(conn.headers.get("host", ""), None)}
    public = _settings(conn).public_url
    if public:
        pub = urlsplit(public)
        allowed.add(_host_key(pub.netloc, pub.scheme))
    return key in allowed


async def user_for_connection(
    conn: HTTPConnection, db: AsyncSession | async_sessionmaker[AsyncSession]
) -> User | None:
    """The person behind a request or WebSocket handshake, from the session cookie."""
    token = session_token(conn)
    if token is None:
        return None
    if isinstance(db, AsyncSession):
        return await accounts.user_for_session(db, token)
    async with db() as session:
        return await accounts.user_for_session(session, token)


# ---- dependencies -----------------------------------------------------------------------------


def current_user(request: Request) -> User | None:
    user: User | None = getattr(request.state, "user", None)
    return user


def require_identity(request: Request) -> User:
    user = current_user(request)
    if user is None:
        raise ApiError(401, "unauthenticated", "sign in or join as a guest first")
    return user


def require_member(request: Request) -> User:
    user = current_user(request)
    if user is None or user.is_guest:
        raise ApiError(401, "unauthenticated", "sign in as a member first")
    return user


CurrentUser = Annotated[User | None, Depends(current_user)]
RequireIdentity = Annotated[User, Depends(require_identity)]
RequireMember = Annotated[User, Depends(require_member)]


# ---- rate limits ------------------------------------------------------------------------------


@dataclass
class AccountLimiters:
    signin: TokenBucket
    signup: TokenBucket
    guest: TokenBucket
    reset_request: TokenBucket
    signin_address: TokenBucket

    @classmethod
    def from_limits(cls, limits: Limits) -> AccountLimiters:
        return cls(
            signin=TokenBucket(limits.signin_burst, limits.signin_per_second),
            signup=TokenBucket(limits.signup_burst, limits.signup_per_second),
            guest=TokenBucket(limits.guest_create_burst, limits.guest_create_per_second),
            reset_request=TokenBucket(limits.reset_request_burst, limits.reset_request_per_second),
            signin_address=TokenBucket(
                limits.signin_address_burst, limits.signin_address_per_second
            ),
        )


def client_address(conn: HTTPConnection) -> str:
    # The TCP peer, not a spoofable header: uvicorn reads X-Forwarded-For only from the proxies
    # in JUNTO_TRUSTED_PROXIES (junto.cli.uvicorn_options), and then this is what they forwarded.
    return conn.client.host if conn.client else "unknown"


_KEY_MAX = 128


def _bounded_key(key: str) -> str:
    """Keys embed what clients typed (the sign-in form's username is only bounded by the 256 KiB
    form limit), and a bucket keeps up to 100,000 keys: long keys are replaced by their digest
    so that memory stays bounded by the key count, not by what attackers send."""
    if len(key) <= _KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_rate(conn: HTTPConnection, bucket: str, key: str) -> None:
    """Spend one token of `bucket` for `key`, or raise ApiError 429 with Retry-After."""
    limiters: AccountLimiters = conn.app.state.account_limiters
    wait = getattr(limiters, bucket).take(_bounded_key(key))
    if wait > 0:
        seconds = max(1, int(wait + 0.999))
        raise ApiError(
            429,
            "rate_limited",
            f"too many attempts; try again in {seconds} seconds",
            headers={"Retry-After": str(seconds)},
        )


# ---- wiring -----------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.account_limiters = AccountLimiters.from_limits(settings.limits)
    app.state.ws_addresses = AddressConnections.from_limits(settings.limits)
    # FastAPI enforces it (413) in the middleware stack it builds on the first request.
    if app.max_body_size is None:
        app.max_body_size = REQUEST_BODY_MAX
    app.add_middleware(SecurityMiddleware)
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(accounts.AccountError, _account_error_handler)
    app.add_exception_handler(RateLimited, _rate_limited_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
