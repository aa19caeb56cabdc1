"""Invite links: signed, expiring, counted, revocable, and never a way to lose a role."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from conv_support import world_fixture  # noqa: F401 - fixture
from sqlalchemy import update

from helpers import Person, World
from junto import invites
from junto.storage.tables import Invite


async def invite(host: Person, slug: str, **body: Any) -> dict[str, Any]:
    response = await host.post(f"/api/conversations/{slug}/invites", body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def accept(person: Person, token: str) -> Any:
    return await person.post("/api/invites/accept", {"token": token})


async def role_of(person: Person, slug: str) -> str | None:
    role: str | None = (await person.client.get(f"/api/conversations/{slug}")).json()["your_role"]
    return role


async def test_valid_invite_makes_a_member_and_a_guest_speakers(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    visitor = await world.guest("Visitor")
    slug = (await ana.create(visibility="invite_only"))["slug"]
    made = await invite(ana, slug, max_uses=2)
    assert made["role"] == "speaker" and made["uses"] == 0 and made["max_uses"] == 2
    assert made["url"] == f"http://testserver/invite/{made['token']}"
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    # Before accepting, the invite-only conversation does not exist for them.
    assert (await bob.client.get(f"/api/conversations/{slug}")).status_code == 404
    for person in (bob, visitor):
        response = await accept(person, made["token"])
        assert response.status_code == 200, response.text
        assert response.json()["role"] == "speaker"
        assert response.json()["conversation"]["slug"] == slug
        assert await role_of(person, slug) == "speaker"

    listed = (await ana.client.get(f"/api/conversations/{slug}/invites")).json()
    assert listed == []  # both uses spent: the link no longer works, so it is not listed


async def test_cohost_invites_need_an_account(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    visitor = await world.guest("Visitor")
    slug = (await ana.create())["slug"]
    made = await invite(ana, slug, max_uses=1, role="cohost")
    refused = await accept(visitor, made["token"])
    assert refused.status_code == 403
    assert refused.json()["error"] == "members_only"
    assert "sign up or sign in" in refused.json()["message"]
    assert await role_of(visitor, slug) is None
    # The refusal spent nothing: a member can still use the only use.
    assert (await accept(bob, made["token"])).status_code == 200
    assert await role_of(bob, slug) == "cohost"


async def test_accepting_twice_uses_nothing_and_hosts_are_never_downgraded(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create())["slug"]
    made = await invite(ana, slug, max_uses=2, role="audience")

    own = await accept(ana, made["token"])
    assert own.status_code == 200 and own.json()["role"] == "host"
    assert await role_of(ana, slug) == "host"
    assert (await accept(bob, made["token"])).json()["role"] == "audience"
    assert (await accept(bob, made["token"])).status_code == 200  # already in: no use spent
    (left,) = (await ana.client.get(f"/api/conversations/{slug}/invites")).json()
    assert left["uses"] == 1

    # A speaker invite raises an audience member; an audience invite never lowers a speaker.
    speaker = await invite(ana, slug, role="speaker")
    assert (await accept(bob, speaker["token"])).json()["role"] == "speaker"
    lower = await invite(ana, slug, role="audience")
    assert (await accept(bob, lower["token"])).json()["role"] == "speaker"


def tampered(token: str) -> list[str]:
    payload, mac = token.split(".")
    flipped = ("A" if payload[0] != "A" else "B") + payload[1:]
    other_mac = ("A" if mac[0] != "A" else "B") + mac[1:]
    forged = invites.sign("someone-elses-secret", 1, datetime.now(UTC) + timedelta(days=1))
    return [f"{flipped}.{mac}", f"{payload}.{other_mac}", forged, f"{payload}."]


async def test_tampered_or_malformed_tokens_are_refused(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create(visibility="invite_only"))["slug"]
    made = await invite(ana, slug)
    for token in tampered(made["token"]):
        response = await accept(bob, token)
        assert response.status_code == 403, (token, response.text)
        assert response.json()["error"] == "bad_token"
    for junk in ("garbage", "a.b.c", "%%%.%%%", "AAAA"):
        response = await accept(bob, junk)
        assert response.status_code == 400, (junk, response.text)
    assert (await accept(bob, "")).status_code == 422
    assert (await bob.client.get(f"/api/conversations/{slug}")).status_code == 404
    # The genuine link still works afterwards.
    assert (await accept(bob, made["token"])).status_code == 200


async def test_expired_exhausted_and_revoked_invites_are_gone(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    cleo = await world.member("cleo")
    slug = (await ana.create(visibility="invite_only"))["slug"]

    # Expired: a genuine signature over a time that has passed.
    old = await invite(ana, slug)
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    async with world.node.db() as db:
        await db.execute(update(Invite).where(Invite.id == old["id"]).values(expires_at=past))
        await db.commit()
    expired_token = invites.sign(world.node.settings.secret_key, old["id"], past)
    response = await accept(bob, expired_token)
    assert (response.status_code, response.json()["error"]) == (410, "invite_expired")

    # Exhausted.
    once = await invite(ana, slug, max_uses=1)
    assert (await accept(bob, once["token"])).status_code == 200
    response = await accept(cleo, once["token"])
    assert (response.status_code, response.json()["error"]) == (410, "invite_used_up")

    # Revoked.
    revoked = await invite(ana, slug)
    assert (
        await ana.delete(f"/api/conversations/{slug}/invites/{revoked['id']}")
    ).status_code == 204
    response = await accept(cleo, revoked["token"])
    assert (response.status_code, response.json()["error"]) == (410, "invite_revoked")
    assert (
        await ana.delete(f"/api/conversations/{slug}/invites/{revoked['id']}")
    ).status_code == 404
    assert (await cleo.client.get(f"/api/conversations/{slug}")).status_code == 404


async def test_who_may_invite_and_with_what(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create())["slug"]
    url = f"/api/conversations/{slug}/invites"
    assert (await bob.post(url, {})).status_code == 403
    await ana.put(f"/api/conversations/{slug}/participants/{bob.me['id']}/role", {"role": "cohost"})
    assert (await bob.post(url, {"role": "speaker"})).status_code == 201
    # Co-hosts may not mint co-hosts; hosts may.
    assert (await bob.post(url, {"role": "cohost"})).status_code == 403
    assert (await ana.post(url, {"role": "cohost"})).status_code == 201
    for bad in ({"role": "host"}, {"max_uses": 0}, {"ttl_seconds": 10}, {"ttl_seconds": 10**9}):
        assert (await ana.post(url, bad)).status_code == 422, bad
    # Revoking needs a host too.
    made = await invite(ana, slug)
    outsider = await world.member("eve")
    assert (await outsider.delete(f"{url}/{made['id']}")).status_code == 403


async def test_cannot_join_an_ended_conversation(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create())["slug"]
    made = await invite(ana, slug)
    await ana.post(f"/api/conversations/{slug}/start")
    await ana.post(f"/api/conversations/{slug}/end")
    response = await accept(bob, made["token"])
    assert response.status_code == 409
    assert response.json()["message"] == "cannot join: expected scheduled or live, got ended"


async def test_accepting_needs_an_identity(world: World) -> None:
    ana = await world.member("ana")
    slug = (await ana.create())["slug"]
    made = await invite(ana, slug)
    assert (await accept(world.anonymous(), made["token"])).status_code == 401


async def test_two_people_racing_for_the_last_use_cannot_both_win(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    cleo = await world.member("cleo")
    slug = (await ana.create(visibility="invite_only"))["slug"]
    made = await invite(ana, slug, max_uses=1)

    results = await asyncio.gather(accept(bob, made["token"]), accept(cleo, made["token"]))

    assert sorted(r.status_code for r in results) == [200, 410]
    roles = [await role_of(p, slug) for p in (bob, cleo) if
             (await p.client.get(f"/api/conversations/{slug}")).status_code == 200]  # fmt: skip
    assert roles == ["speaker"]
