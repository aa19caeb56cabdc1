"""The account pages as a browser without JavaScript uses them: plain form posts."""

from __future__ import annotations

import html
import logging
import re

import httpx
import pytest

from helpers import DEFAULT_PASSWORD, signup


async def _csrf_from_page(client: httpx.AsyncClient, path: str) -> tuple[str, str]:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "form has no csrf_token field"
    return match.group(1), page.text


def _input_value(page: str, name: str) -> str | None:
    match = re.search(rf'<input id="{name}" name="{name}"[^>]*?value="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


async def test_signup_form_signs_in_and_returns_to_next(app_client: httpx.AsyncClient) -> None:
    token, page = await _csrf_from_page(app_client, "/signup?next=/c/abc%3Fx%3D1")
    assert 'autocomplete="new-password"' in page and 'for="username"' in page
    r = await app_client.post(
        "/signup",
        data={
            "csrf_token": token,
            "username": "Nora",
            "display_name": "Nora N.",
            "password": DEFAULT_PASSWORD,
            "next": "/c/abc?x=1",
        },
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/c/abc?x=1"
    me = (await app_client.get("/api/me")).json()
    assert me["username"] == "nora" and me["name"] == "Nora N."
    # Signed-in members who open the sign-in page go straight on.
    again = await app_client.get("/signin?next=/profile")
    assert again.status_code == 303 and again.headers["location"] == "/profile"


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
async def test_next_never_leaves_the_site(app_client: httpx.AsyncClient, target: str) -> None:
    await signup(app_client, "oscar")
    await app_client.post(
        "/api/signout", headers={"X-CSRF-Token": app_client.cookies["junto_csrf"]}
    )
    token, _ = await _csrf_from_page(app_client, "/signin")
    r = await app_client.post(
        "/signin",
        data={"csrf_token": token, "username": "oscar", "password": DEFAULT_PASSWORD,
              "next": target},
    )  # fmt: skip
    assert r.status_code == 303
    assert r.headers["location"] == "/"


async def test_signin_error_keeps_username_not_password(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "pia")
    await app_client.post("/signout", data={"csrf_token": app_client.cookies["junto_csrf"]})
    token, _ = await _csrf_from_page(app_client, "/signin")
    r = await app_client.post(
        "/signin", data={"csrf_token": token, "username": "pia", "password": "wrong password!"}
    )
    assert r.status_code == 401
    assert "wrong username or password" in r.text
    assert 'role="alert"' in r.text
    assert _input_value(r.text, "username") == "pia"
    assert "wrong password!" not in r.text
    # The password field is the one marked invalid and linked to the message.
    password_input = re.search(r'<input id="password"[^>]*>', r.text)
    assert password_input and 'aria-invalid="true"' in password_input.group(0)
    assert "form-error" in password_input.group(0)


async def test_signup_error_rerenders_with_input(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "quinn")
    async with httpx.AsyncClient(
        transport=app_client._transport, base_url="http://testserver"
    ) as other:
        token, _ = await _csrf_from_page(other, "/signup")
        r = await other.post(
            "/signup",
            data={"csrf_token": token, "username": "quinn", "display_name": "Q <b>",
                  "password": DEFAULT_PASSWORD},
        )  # fmt: skip
        assert r.status_code == 409
        assert "username &#39;quinn&#39; is taken" in r.text
        assert _input_value(r.text, "display_name") == "Q <b>"
        assert "Q <b>" not in r.text  # escaped, not markup
        assert DEFAULT_PASSWORD not in r.text


async def test_form_post_without_csrf_token_is_refused(app_client: httpx.AsyncClient) -> None:
    await app_client.get("/signup")
    r = await app_client.post(
        "/signup", data={"username": "ruth", "password": DEFAULT_PASSWORD, "display_name": "R"}
    )
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    # Nothing was created.
    token, _ = await _csrf_from_page(app_client, "/signup")
    ok = await app_client.post(
        "/signup", data={"csrf_token": token, "username": "ruth", "password": DEFAULT_PASSWORD}
    )
    assert ok.status_code == 303


async def test_profile_page_edits_and_validates(app_client: httpx.AsyncClient) -> None:
    anonymous = await app_client.get("/profile")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/signin?next=%2Fprofile"

    await signup(app_client, "sam", display_name="Sam")
    token, page = await _csrf_from_page(app_client, "/profile")
    assert 'type="color"' in page and 'src="/static/js/profile.js"' in page

    bad = await app_client.post(
        "/profile",
        data={"csrf_token": token, "display_name": "Samuel", "colour": "#ffee00", "bio": "hi"},
    )
    assert bad.status_code == 400
    assert "contrast" in bad.text
    assert _input_value(bad.text, "display_name") == "Samuel"
    colour_input = re.search(r'<input id="colour"[^>]*>', bad.text)
    assert colour_input and 'aria-invalid="true"' in colour_input.group(0)
    assert (await app_client.get("/api/me")).json()["name"] == "Sam"  # nothing applied

    good = await app_client.post(
        "/profile",
        data={"csrf_token": token, "display_name": "Samuel", "colour": "#3949AB",
              "bio": "Likes <em>tags</em>"},
    )  # fmt: skip
    assert good.status_code == 303 and good.headers["location"] == "/profile?done=saved"
    saved = await app_client.get("/profile?done=saved")
    assert "Profile saved." in saved.text
    assert "Likes &lt;em&gt;tags&lt;/em&gt;" in saved.text
    me = (await app_client.get("/api/me")).json()
    assert (me["name"], me["colour"], me["bio"]) == ("Samuel", "#3949ab", "Likes <em>tags</em>")


async def test_hostile_name_is_escaped_in_every_page(app_client: httpx.AsyncClient) -> None:
    payload = '"><script>alert(1)</script>'
    await signup(app_client, "tara", display_name=payload)
    for path in ("/", "/profile", "/forgot-password"):
        page = await app_client.get(path)
        assert page.status_code == 200, path
        assert "<script>alert(1)" not in page.text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (await app_client.get("/profile")).text


async def test_sign_out_form(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "uma")
    r = await app_client.post("/signout", data={"csrf_token": app_client.cookies["junto_csrf"]})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert (await app_client.get("/api/me")).status_code == 401


async def test_forgot_and_reset_password_pages(
    app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await signup(app_client, "vera")
    await app_client.post("/signout", data={"csrf_token": app_client.cookies["junto_csrf"]})

    answers = []
    with caplog.at_level(logging.WARNING, logger="junto.accounts"):
        for name in ("vera", "not_a_member"):
            token, _ = await _csrf_from_page(app_client, "/forgot-password")
            r = await app_client.post(
                "/forgot-password", data={"csrf_token": token, "username": name}
            )
            assert r.status_code == 200
            answers.append(re.search(r'role="status">(.*?)</div>', r.text, re.S))
    assert answers[0] and answers[1] and answers[0].group(1) == answers[1].group(1)
    link = next(m for m in caplog.messages if "reset-password?token=" in m)
    reset_token = link.split("token=")[1].split()[0]

    csrf, page = await _csrf_from_page(app_client, f"/reset-password?token={reset_token}")
    assert 'autocomplete="new-password"' in page
    short = await app_client.post(
        "/reset-password", data={"csrf_token": csrf, "token": reset_token, "password": "short"}
    )
    assert short.status_code == 400 and "at least 8 characters" in short.text
    assert reset_token in short.text  # the link still works after a typo
    done = await app_client.post(
        "/reset-password",
        data={"csrf_token": csrf, "token": reset_token, "password": "fresh password 1"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/profile?done=password"
    assert "Your new password is set." in (await app_client.get("/profile?done=password")).text

    reused = await app_client.post(
        "/reset-password",
        data={"csrf_token": csrf, "token": reset_token, "password": "another password"},
    )
    assert reused.status_code == 400
    assert "invalid, expired or already used" in reused.text
