"""The create/edit forms, host controls and invite page, used as a browser without JavaScript."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from conv_support import world_fixture  # noqa: F401 - fixture

from helpers import Person, World

NEXT_WEEK = (datetime.now(UTC) + timedelta(days=7)).replace(second=0, microsecond=0)


def form_fields(**overrides: str) -> dict[str, str]:
    return {
        "title": "From the form",
        "description": "Plain text",
        "tags": "alpha, Beta Gamma",
        "language": "fr",
        "visibility": "public",
        "scheduled_at": NEXT_WEEK.strftime("%Y-%m-%dT%H:%M"),
        "scheduled_at_utc": "",
        **overrides,
    }


async def create_by_form(ana: Person, **overrides: str) -> str:
    response = await ana.form("/conversations/new", form_fields(**overrides))
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/c/([A-Za-z0-9]{10})/edit\?created=1", response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


async def test_new_form_needs_a_member(world: World) -> None:
    anonymous = world.anonymous()
    response = await anonymous.client.get("/conversations/new")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fconversations%2Fnew"
    visitor = await world.guest("Visitor")
    assert (await visitor.client.get("/conversations/new")).status_code == 303

    ana = await world.member("ana")
    page = await ana.client.get("/conversations/new")
    assert page.status_code == 200
    for name in ("title", "description", "tags", "language", "scheduled_at"):
        assert f'<label for="{name}">' in page.text
        assert f'id="{name}-hint"' in page.text
    assert 'name="csrf_token"' in page.text


async def test_create_by_form_without_javascript(world: World) -> None:
    ana = await world.member("ana")
    slug = await create_by_form(ana)
    got = (await ana.client.get(f"/api/conversations/{slug}")).json()
    assert got["title"] == "From the form" and got["tags"] == ["alpha", "beta-gamma"]
    assert got["language"] == "fr"
    # Without JS the time is read as UTC, as the form's hint says.
    assert datetime.fromisoformat(got["scheduled_at"]) == NEXT_WEEK

    page = await ana.client.get(f"/c/{slug}/edit?created=1")
    assert page.status_code == 200
    assert "Your conversation is created" in page.text
    assert f'value="{NEXT_WEEK.strftime("%Y-%m-%dT%H:%M")}"' in page.text


async def test_js_supplied_utc_instant_wins(world: World) -> None:
    ana = await world.member("ana")
    # A reader in UTC+2 typed 20:00; the page's script sent the exact instant.
    local = (NEXT_WEEK + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    utc = NEXT_WEEK.isoformat().replace("+00:00", "Z")
    slug = await create_by_form(ana, scheduled_at=local, scheduled_at_utc=utc)
    got = (await ana.client.get(f"/api/conversations/{slug}")).json()
    assert datetime.fromisoformat(got["scheduled_at"]) == NEXT_WEEK


async def test_form_errors_are_shown_next_to_the_input_that_is_kept(world: World) -> None:
    ana = await world.member("ana")
    response = await ana.form(
        "/conversations/new",
        form_fields(title="", description="Keep me <b>", tags="ok, not ok!", language="?"),
    )
    assert response.status_code == 422
    html = response.text
    assert 'id="title-error"' in html and 'aria-invalid="true"' in html
    assert "Please fill this in." in html and "String should" not in html
    assert 'id="tags-error"' in html and "tag 2:" in html
    assert 'id="language-error"' in html
    assert ">Keep me &lt;b&gt;</textarea>" in html
    assert 'value="ok, not ok!"' in html
    assert 'href="#title"' in html  # the error summary links to the field
    assert (await ana.client.get("/api/conversations")).json()["conversations"] == []

    past = await ana.form("/conversations/new", form_fields(scheduled_at="2001-01-01T10:00"))
    assert past.status_code == 422 and 'id="scheduled_at-error"' in past.text
    assert "must be in the future" in past.text


async def test_form_errors_speak_plainly_about_lengths(world: World) -> None:
    ana = await world.member("ana")
    response = await ana.form(
        "/conversations/new",
        form_fields(title="x" * 201, tags=", ".join(f"t{n}" for n in range(11))),
    )
    assert response.status_code == 422
    assert "Please keep it to 200 characters or fewer." in response.text
    assert "Please use at most 10 tags." in response.text
    assert "String should" not in response.text and "List should" not in response.text


async def test_forms_without_the_csrf_token_are_refused(world: World) -> None:
    ana = await world.member("ana")
    response = await ana.client.post("/conversations/new", data=form_fields())
    assert response.status_code == 403
    assert (await ana.client.get("/api/conversations")).json()["conversations"] == []


async def test_edit_page_saves_and_controls_the_lifecycle(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = await create_by_form(ana)

    refused = await bob.client.get(f"/c/{slug}/edit")
    assert refused.status_code == 403 and "Only hosts can change this conversation" in refused.text
    assert (await bob.form(f"/c/{slug}/start", {})).status_code == 403
    anonymous = await world.anonymous().client.get(f"/c/{slug}/edit")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")

    saved = await ana.form(f"/c/{slug}/edit", form_fields(title="Edited title"))
    assert saved.status_code == 303 and saved.headers["location"].endswith("notice=saved")
    page = (await ana.client.get(saved.headers["location"])).text
    assert "Changes saved." in page and 'value="Edited title"' in page
    assert f'action="/c/{slug}/start"' in page

    started = await ana.form(f"/c/{slug}/start", {})
    assert started.status_code == 303 and started.headers["location"] == f"/c/{slug}"
    again = await ana.form(f"/c/{slug}/start", {})
    assert again.status_code == 303
    page = (await ana.client.get(again.headers["location"])).text
    assert "cannot start: expected scheduled, got live" in page
    assert f'action="/c/{slug}/end"' in page and "Starts at" not in page

    ended = await ana.form(f"/c/{slug}/end", {})
    assert ended.status_code == 303
    assert (await ana.client.get(f"/api/conversations/{slug}")).json()["state"] == "ended"


async def test_invites_from_the_edit_page_and_a_guest_accepting_without_javascript(
    world: World,
) -> None:
    ana = await world.member("ana")
    slug = await create_by_form(ana, visibility="invite_only", title="Private salon")
    made = await ana.form(
        f"/c/{slug}/invites", {"role": "speaker", "max_uses": "3", "ttl_days": "2"}
    )
    assert made.status_code == 303
    page = (await ana.client.get(made.headers["location"])).text
    (url,) = re.findall(r'value="(http://testserver/invite/[^"]+)"', page)
    path = url.removeprefix("http://testserver")
    assert "used 0 of 3" in page

    visitor = world.anonymous()
    invitation = await visitor.client.get(path)
    assert invitation.status_code == 200
    assert "Private salon" in invitation.text and "speaker" in invitation.text
    assert 'name="display_name"' in invitation.text
    assert "/signin?next=" in invitation.text

    # An empty name is refused and nothing is spent.
    refused = await visitor.form(path, {"display_name": "  "})
    assert refused.status_code == 400 and "display name" in refused.text

    accepted = await visitor.form(path, {"display_name": "Zoë"})
    assert accepted.status_code == 303 and accepted.headers["location"] == f"/c/{slug}"
    me = (await visitor.client.get("/api/me")).json()
    assert me["name"] == "Zoë" and me["is_guest"] is True
    got = (await visitor.client.get(f"/api/conversations/{slug}")).json()
    assert got["your_role"] == "speaker"
    assert "used 1 of 3" in (await ana.client.get(f"/c/{slug}/edit")).text

    # A signed-in member just presses Accept.
    bob = await world.member("bob")
    assert "Accept and join" in (await bob.client.get(path)).text
    assert (await bob.form(path, {})).status_code == 303

    # Revoking from the page kills the link.
    invite_id = re.search(rf"/c/{slug}/invites/(\d+)/revoke", page)
    assert invite_id
    await ana.form(f"/c/{slug}/invites/{invite_id.group(1)}/revoke", {})
    late = world.anonymous()
    gone = await late.client.get(path)
    assert gone.status_code == 410 and "This invite link does not work" in gone.text
    # Accepting a dead link does not leave a guest account behind.
    refused = await late.form(path, {"display_name": "Too late"})
    assert refused.status_code == 410 and "revoked" in refused.text
    assert (await late.client.get("/api/me")).status_code == 401


async def test_absurd_invite_lifetimes_get_a_clear_error(world: World) -> None:
    ana = await world.member("ana")
    slug = await create_by_form(ana, title="Numbers")
    for days in ("1000000000000", "-99999999999", "91"):
        made = await ana.form(
            f"/c/{slug}/invites", {"role": "speaker", "max_uses": "1", "ttl_days": days}
        )
        assert made.status_code == 303, (days, made.text)
        page = (await ana.client.get(made.headers["location"])).text
        assert "between 1 minute and 90 days" in page
        assert "No invite links are open" in page


async def test_cohost_invite_pages_ask_for_an_account(world: World) -> None:
    ana = await world.member("ana")
    slug = await create_by_form(ana, title="Co-hosted")
    made = await ana.form(
        f"/c/{slug}/invites", {"role": "cohost", "max_uses": "1", "ttl_days": "1"}
    )
    page = (await ana.client.get(made.headers["location"])).text
    (url,) = re.findall(r'value="(http://testserver/invite/[^"]+)"', page)
    path = url.removeprefix("http://testserver")

    visitor = world.anonymous()
    invitation = (await visitor.client.get(path)).text
    assert 'name="display_name"' not in invitation and "/signup?next=" in invitation
    # Posting a name anyway creates no guest and spends nothing.
    await visitor.form(path, {"display_name": "Sneaky"})
    assert (await visitor.client.get("/api/me")).status_code == 401

    guest = await world.guest("Gus")
    shown = (await guest.client.get(path)).text
    assert "Co-hosts need an account" in shown and "Accept and join" not in shown
    assert "used 0 of 1" in (await ana.client.get(f"/c/{slug}/edit")).text


async def test_bad_invite_links_get_a_clear_page(world: World) -> None:
    anonymous = world.anonymous()
    garbage = await anonymous.client.get("/invite/garbage")
    assert garbage.status_code == 400 and "not a Junto invite link" in garbage.text
    forged = await anonymous.client.get("/invite/AAAAAAAAAAAAAAAAAAAAAA.AAAA")
    assert forged.status_code == 403 and "altered" in forged.text


async def test_host_sets_roles_from_the_edit_page(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = await create_by_form(ana)
    await ana.put(
        f"/api/conversations/{slug}/participants/{bob.me['id']}/role", {"role": "speaker"}
    )
    page = (await ana.client.get(f"/c/{slug}/edit")).text
    assert f'action="/c/{slug}/participants/{bob.me["id"]}/role"' in page
    changed = await ana.form(f"/c/{slug}/participants/{bob.me['id']}/role", {"role": "cohost"})
    assert changed.status_code == 303
    assert (await bob.client.get(f"/api/conversations/{slug}")).json()["your_role"] == "cohost"
    # Bob, now co-host, may edit but sees no role controls.
    page = (await bob.client.get(f"/c/{slug}/edit")).text
    assert "/participants/" not in page
