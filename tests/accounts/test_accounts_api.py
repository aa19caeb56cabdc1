"""People over the JSON API, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
import time

import httpx
import pytest

from helpers import csrf_headers, guest, signin, signup
from junto.config import Settings

PASSWORD = "correct horse battery"  # the default of helpers.signup


async def test_signup_signin_signout(app_client: httpx.AsyncClient) -> None:
    me = await signup(app_client, "Alice_1", display_name="Alice")
    assert me["username"] == "alice_1"  # usernames are case-insensitive, kept in lower case
    assert me["name"] == "Alice"
    assert me["is_guest"] is False and me["is_admin"] is False
    assert re.fullmatch(r"#[0-9a-f]{6}", me["colour"])

    cookie = next(c for c in app_client.cookies.jar if c.name == "junto_session")
    assert cookie.has_nonstandard_attr("HttpOnly")

    out = await app_client.post("/api/signout", headers=await csrf_headers(app_client))
    assert out.status_code == 204
    me_after = await app_client.get("/api/me")
    assert me_after.status_code == 401
    assert me_after.json()["error"] == "unauthenticated"

    again = await signin(app_client, "ALICE_1")
    assert again["id"] == me["id"]


async def test_signed_out_cookie_no_longer_works(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "bob")
    token = app_client.cookies["junto_session"]
    await app_client.post("/api/signout", headers=await csrf_headers(app_client))
    app_client.cookies.set("junto_session", token)
    assert (await app_client.get("/api/me")).status_code == 401


async def test_wrong_password_is_rejected(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "carol")
    await app_client.post("/api/signout", headers=await csrf_headers(app_client))
    for username, password in [("carol", "not the password"), ("nobody", PASSWORD)]:
        r = await app_client.post(
            "/api/signin",
            json={"username": username, "password": password},
            headers=await csrf_headers(app_client),
        )
        assert r.status_code == 401
        # The same answer for an unknown person and a wrong password: no account enumeration.
        assert r.json() == {"error": "bad_credentials", "message": "wrong username or password"}
    assert (await app_client.get("/api/me")).status_code == 401


async def test_duplicate_username_conflicts(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "dana")
    other = httpx.AsyncClient(transport=app_client._transport, base_url="http://testserver")
    async with other:
        r = await other.post(
            "/api/signup",
            json={"username": "DANA", "password": PASSWORD},
            headers=await csrf_headers(other),
        )
    assert r.status_code == 409
    assert r.json() == {"error": "taken", "message": "username 'dana' is taken"}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"username": "eve", "password": "short"}, 422, "password"),
        ({"username": "e", "password": PASSWORD}, 422, "username"),
        ({"username": "bad name", "password": PASSWORD}, 422, "username"),
        ({"username": "evelyn12", "password": "EVELYN12"}, 400, "same as the username"),
        ({"username": "eve", "password": PASSWORD, "display_name": "  "}, 400, "display name"),
        ({"username": "eve", "password": PASSWORD, "display_name": "a\x00b"}, 400, "control"),
    ],
)
async def test_signup_validation(
    app_client: httpx.AsyncClient, body: dict[str, str], status: int, needle: str
) -> None:
    r = await app_client.post("/api/signup", json=body, headers=await csrf_headers(app_client))
    assert r.status_code == status, r.text
    assert needle in r.text
    assert (await app_client.get("/api/me")).status_code == 401


async def test_missing_csrf_token_is_refused_and_changes_nothing(
    app_client: httpx.AsyncClient,
) -> None:
    body = {"username": "frank", "password": PASSWORD}
    r = await app_client.post("/api/signup", json=body)
    assert r.status_code == 403
    assert r.json()["error"] == "csrf"
    wrong = await app_client.post("/api/signup", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    # Nothing was created: the same username is still free.
    me = await signup(app_client, "frank")
    assert me["username"] == "frank"
    # ... and a signed-in person's profile cannot be changed without the token.
    patch = await app_client.patch("/api/me", json={"display_name": "Mallory"})
    assert patch.status_code == 403
    assert (await app_client.get("/api/me")).json()["name"] == "frank"


async def test_cross_site_origin_is_refused(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "gina")
    headers = await csrf_headers(app_client) | {"Origin": "https://evil.example"}
    r = await app_client.patch("/api/me", json={"bio": "pwned"}, headers=headers)
    assert r.status_code == 403
    same = await csrf_headers(app_client) | {"Origin": "http://testserver"}
    ok = await app_client.patch("/api/me", json={"bio": "hello"}, headers=same)
    assert ok.status_code == 200
    assert ok.json()["bio"] == "hello"


async def test_guest_is_created_and_signed_in(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.get("/api/me")).status_code == 401
    me = await guest(app_client, "Visitor")
    assert me["is_guest"] is True
    assert me["username"] is None
    assert me["name"] == "Visitor"
    # A guest joining again keeps their identity and only changes the name.
    r = await app_client.post(
        "/api/guest", json={"display_name": "Visitor 2"}, headers=await csrf_headers(app_client)
    )
    assert r.status_code == 200
    assert r.json()["id"] == me["id"] and r.json()["name"] == "Visitor 2"


async def test_member_cannot_become_guest(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "henry")
    r = await app_client.post(
        "/api/guest", json={"display_name": "x"}, headers=await csrf_headers(app_client)
    )
    assert r.status_code == 409


async def test_profile_edit_and_colour_contrast(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "iris")
    headers = await csrf_headers(app_client)
    ok = await app_client.patch(
        "/api/me",
        json={"display_name": "  Iris M.  ", "colour": "#1E7B34", "bio": "Gardener."},
        headers=headers,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() | {"id": 0} == {
        "id": 0, "name": "Iris M.", "colour": "#1e7b34", "is_guest": False,
        "username": "iris", "bio": "Gardener.", "is_admin": False,
    }  # fmt: skip
    # Yellow on white is unreadable: refused, and nothing in the request is applied.
    bad = await app_client.patch(
        "/api/me", json={"display_name": "Changed", "colour": "#ffff00"}, headers=headers
    )
    assert bad.status_code == 400
    assert "contrast" in bad.json()["message"] and "4.5:1" in bad.json()["message"]
    me = (await app_client.get("/api/me")).json()
    assert me["name"] == "Iris M." and me["colour"] == "#1e7b34"
    malformed = await app_client.patch("/api/me", json={"colour": "red"}, headers=headers)
    assert malformed.status_code == 422


async def test_new_people_get_distinct_readable_colours(app_client: httpx.AsyncClient) -> None:
    from junto.accounts import contrast_on_white

    colours = []
    for i in range(4):
        async with httpx.AsyncClient(
            transport=app_client._transport, base_url="http://testserver"
        ) as c:
            colours.append((await signup(c, f"person{i}"))["colour"])
    assert len(set(colours)) == 4
    assert all(contrast_on_white(c) >= 4.5 for c in colours)


async def test_password_reset_works_once_and_ends_old_sessions(
    app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await signup(app_client, "jack")
    old_cookie = app_client.cookies["junto_session"]

    async with httpx.AsyncClient(
        transport=app_client._transport, base_url="http://testserver"
    ) as stranger:
        with caplog.at_level(logging.WARNING, logger="junto.accounts"):
            r = await stranger.post(
                "/api/password/forgot",
                json={"username": "jack"},
                headers=await csrf_headers(stranger),
            )
            unknown = await stranger.post(
                "/api/password/forgot",
                json={"username": "nobody_here"},
                headers=await csrf_headers(stranger),
            )
        assert r.status_code == unknown.status_code == 202
        assert r.json() == unknown.json()  # no account enumeration
        links = [m for m in caplog.messages if "reset-password?token=" in m]
        assert len(links) == 1 and "jack" in links[0]
        token = links[0].split("token=")[1].split()[0]

        too_short = await stranger.post(
            "/api/password/reset",
            json={"token": token, "password": "short"},
            headers=await csrf_headers(stranger),
        )
        assert too_short.status_code == 422
        done = await stranger.post(
            "/api/password/reset",
            json={"token": token, "password": "a brand new password"},
            headers=await csrf_headers(stranger),
        )
        assert done.status_code == 200, done.text
        assert done.json()["username"] == "jack"
        assert (await stranger.get("/api/me")).status_code == 200

        again = await stranger.post(
            "/api/password/reset",
            json={"token": token, "password": "yet another password"},
            headers=await csrf_headers(stranger),
        )
        assert again.status_code == 400
        assert again.json()["error"] == "bad_token"

    # The session from before the reset is gone; the old password no longer works.
    app_client.cookies.set("junto_session", old_cookie)
    assert (await app_client.get("/api/me")).status_code == 401
    app_client.cookies.delete("junto_session")
    r = await app_client.post(
        "/api/signin",
        json={"username": "jack", "password": PASSWORD},
        headers=await csrf_headers(app_client),
    )
    assert r.status_code == 401
    assert (await signin(app_client, "jack", "a brand new password"))["username"] == "jack"


async def test_signin_attempts_are_rate_limited(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "kim")
    headers = await csrf_headers(app_client)
    statuses = []
    for _ in range(12):
        r = await app_client.post(
            "/api/signin", json={"username": "kim", "password": "guessing!"}, headers=headers
        )
        statuses.append(r.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"] == "rate_limited"
    # Even the right password waits: the limit is per address and username.
    right = await app_client.post(
        "/api/signin", json={"username": "kim", "password": PASSWORD}, headers=headers
    )
    assert right.status_code == 429


async def test_password_spraying_across_usernames_is_rate_limited(
    app_client: httpx.AsyncClient,
) -> None:
    await signup(app_client, "lee")
    headers = await csrf_headers(app_client)
    statuses = []
    started = time.monotonic()
    # One guess per username, never tripping a per-username limit: the per-address one stops it
    # after its burst of 60, refilling one attempt per 5 s while the guesses go on.
    for n in range(75):
        r = await app_client.post(
            "/api/signin",
            json={"username": f"member_{n}", "password": "Summer2026!"},
            headers=headers,
        )
        statuses.append(r.status_code)
    refilled = (time.monotonic() - started) / 5
    assert statuses[:60] == [401] * 60
    assert 429 in statuses
    assert statuses.count(401) <= 60 + refilled + 1
    assert set(statuses) == {401, 429}


async def test_reset_links_never_come_from_the_request_host(
    app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await signup(app_client, "max")
    with caplog.at_level(logging.WARNING, logger="junto.accounts"):
        r = await app_client.post(
            "/api/password/forgot",
            json={"username": "max"},
            headers={**await csrf_headers(app_client), "Host": "attacker.example"},
        )
    assert r.status_code == 202
    (link,) = [m for m in caplog.messages if "reset-password?token=" in m]
    assert "attacker.example" not in link
    # The node's configured public URL (the fixture's JUNTO_PUBLIC_URL), never the Host header.
    assert "http://testserver/reset-password?token=" in link


async def test_guest_creation_is_rate_limited(app_client: httpx.AsyncClient) -> None:
    statuses = []
    for i in range(11):
        async with httpx.AsyncClient(
            transport=app_client._transport, base_url="http://testserver"
        ) as c:
            r = await c.post(
                "/api/guest", json={"display_name": f"g{i}"}, headers=await csrf_headers(c)
            )
            statuses.append(r.status_code)
    assert statuses == [201] * 10 + [429]


async def test_hostile_display_name_is_stored_as_text(app_client: httpx.AsyncClient) -> None:
    payload = "<script>alert(1)</script>"
    me = await signup(app_client, "lee", display_name=payload)
    assert me["name"] == payload
    page = await app_client.get("/profile")
    assert page.status_code == 200
    assert payload not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_security_headers(app_client: httpx.AsyncClient) -> None:
    page = await app_client.get("/signin")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    csrf = next(c for c in app_client.cookies.jar if c.name == "junto_csrf")
    assert not csrf.has_nonstandard_attr("HttpOnly")
    assert f'<meta name="csrf-token" content="{csrf.value}">' in page.text
    static = await app_client.get("/static/css/junto.css")
    assert static.status_code == 200
    assert static.headers["x-content-type-options"] == "nosniff"


async def test_dead_session_cookie_is_cleared_but_static_files_skip_the_lookup(
    app_client: httpx.AsyncClient,
) -> None:
    app_client.cookies.set("junto_session", "not-a-real-session")
    api = await app_client.get("/api/me")
    assert api.status_code == 401
    assert any(
        v.startswith("junto_session=") and "Max-Age=0" in v
        for v in api.headers.get_list("set-cookie")
    )
    app_client.cookies.set("junto_session", "not-a-real-session")
    static = await app_client.get("/static/css/junto.css")
    # No user lookup for static files (no DB query), hence no verdict on the cookie either.
    assert not any(v.startswith("junto_session=") for v in static.headers.get_list("set-cookie"))


async def test_old_password_hashes_are_upgraded_on_signin(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import select, update

    from junto.storage.engine import make_engine
    from junto.storage.tables import User

    await signup(app_client, "mona")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    engine = make_engine(settings.effective_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(User).where(User.username == "mona").values(password_hash=weak)
            )
        await app_client.post("/api/signout", headers=await csrf_headers(app_client))
        await signin(app_client, "mona")
        async with engine.connect() as conn:
            stored = (
                await conn.execute(select(User.password_hash).where(User.username == "mona"))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert stored is not None and stored != weak
    assert not PasswordHasher().check_needs_rehash(stored)


async def test_signing_in_over_an_expired_session_cookie(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "nell")
    await app_client.post("/api/signout", headers=await csrf_headers(app_client))
    # Where the node's own cookie would sit in httpx's jar, so the new one replaces it.
    app_client.cookies.set("junto_session", "expired-or-revoked-token", "testserver.local")
    r = await app_client.post(
        "/api/signin",
        json={"username": "nell", "password": PASSWORD},
        headers=await csrf_headers(app_client),
    )
    # Browsers apply Set-Cookie headers in order: clearing the dead cookie after setting the new
    # one would sign the person straight out again. Only the new session cookie may be sent.
    sessions = [c for c in r.headers.get_list("set-cookie") if c.startswith("junto_session=")]
    assert len(sessions) == 1 and "Max-Age=2592000" in sessions[0]
    assert (await app_client.get("/api/me")).json()["username"] == "nell"
