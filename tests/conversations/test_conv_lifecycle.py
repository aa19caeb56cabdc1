"""The conversation lifecycle over the JSON API: scheduled → live → ended, checked transitions,
who may do what, and the room events every change leaves behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from conv_support import world_fixture  # noqa: F401 - fixture

from helpers import World
from junto.events.log import events_after
from junto.storage.tables import Conversation


async def room_events(world: World, slug: str) -> list[tuple[str, dict[str, object]]]:
    async with world.node.db() as db:
        conv = (
            await db.execute(Conversation.__table__.select().where(Conversation.slug == slug))
        ).one()
        return [(e.type, e.data) for e in await events_after(db, conv.id, 0, 100)]


async def test_create_start_end_happy_path(world: World) -> None:
    ana = await world.member("ana")
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    created = await ana.create(
        title="  Cities after cars  ",
        description="Who gets the street?",
        tags=["Urbanism", "#Climate Change", "urbanism"],
        language="EN-gb",
        scheduled_at=when.isoformat(),
    )
    slug = created["slug"]
    assert len(slug) == 10 and slug.isalnum()
    assert created["title"] == "Cities after cars"
    assert created["tags"] == ["climate-change", "urbanism"]
    assert created["language"] == "en-GB"
    assert created["state"] == "scheduled"
    assert datetime.fromisoformat(created["scheduled_at"]) == when
    assert created["your_role"] == "host" and created["can_manage"] is True
    assert created["url"].endswith(f"/c/{slug}")

    started = await ana.post(f"/api/conversations/{slug}/start")
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "live"
    started_at = datetime.fromisoformat(started.json()["started_at"])
    assert abs(datetime.now(UTC) - started_at) < timedelta(minutes=1)

    ended = await ana.post(f"/api/conversations/{slug}/end")
    assert ended.status_code == 200, ended.text
    body = ended.json()
    assert body["state"] == "ended"
    assert datetime.fromisoformat(body["ended_at"]) >= started_at
    assert datetime.fromisoformat(body["started_at"]) == started_at

    # Each transition left a durable room event, numbered in order (docs/protocol.md).
    events = await room_events(world, slug)
    assert [(t, d["state"]) for t, d in events] == [
        ("conversation.state", "live"),
        ("conversation.state", "ended"),
    ]
    event_ended = datetime.fromisoformat(str(events[1][1]["ended_at"]))
    assert abs(event_ended - datetime.fromisoformat(body["ended_at"])) < timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("steps", "action", "expected", "got"),
    [
        ([], "end", "live", "scheduled"),
        (["start"], "start", "scheduled", "live"),
        (["start", "end"], "start", "scheduled", "ended"),
        (["start", "end"], "end", "live", "ended"),
    ],
)
async def test_illegal_transitions_are_409_and_change_nothing(
    world: World, steps: list[str], action: str, expected: str, got: str
) -> None:
    ana = await world.member("ana")
    slug = (await ana.create())["slug"]
    for step in steps:
        assert (await ana.post(f"/api/conversations/{slug}/{step}")).status_code == 200
    before = (await ana.client.get(f"/api/conversations/{slug}")).json()

    response = await ana.post(f"/api/conversations/{slug}/{action}")

    assert response.status_code == 409
    assert response.json()["error"] == "invalid_state"
    assert response.json()["message"] == f"cannot {action}: expected {expected}, got {got}"
    assert (await ana.client.get(f"/api/conversations/{slug}")).json() == before
    assert len(await room_events(world, slug)) == len(steps)


async def test_edit_changes_only_given_fields_and_announces_it(world: World) -> None:
    ana = await world.member("ana")
    slug = (await ana.create(description="first", tags=["a", "b"]))["slug"]

    response = await ana.patch(
        f"/api/conversations/{slug}", {"title": "Renamed", "tags": ["c"], "visibility": "unlisted"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], body["description"], body["tags"], body["visibility"]) == (
        "Renamed", "first", ["c"], "unlisted",
    )  # fmt: skip
    events = await room_events(world, slug)
    assert [t for t, _ in events] == ["conversation.updated"]
    assert events[0][1]["title"] == "Renamed" and events[0][1]["tags"] == ["c"]

    # Saving the same values again is not a change: no new event.
    again = await ana.patch(f"/api/conversations/{slug}", {"title": "Renamed"})
    assert again.status_code == 200
    assert len(await room_events(world, slug)) == 1


async def test_reschedule_only_before_start(world: World) -> None:
    ana = await world.member("ana")
    slug = (await ana.create())["slug"]
    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    ok = await ana.patch(f"/api/conversations/{slug}", {"scheduled_at": later})
    assert ok.status_code == 200
    unschedule = await ana.patch(f"/api/conversations/{slug}", {"scheduled_at": None})
    assert unschedule.status_code == 200 and unschedule.json()["scheduled_at"] is None

    await ana.post(f"/api/conversations/{slug}/start")
    late = await ana.patch(f"/api/conversations/{slug}", {"scheduled_at": later})
    assert late.status_code == 409
    assert late.json()["message"] == "cannot reschedule: expected scheduled, got live"
    # Metadata can still be corrected while live.
    assert (
        await ana.patch(f"/api/conversations/{slug}", {"title": "Typo fixed"})
    ).status_code == 200


async def test_non_hosts_cannot_edit_start_or_end(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    visitor = await world.guest("Visitor")
    anonymous = world.anonymous()
    slug = (await ana.create(title="Ana's talk"))["slug"]
    before = (await ana.client.get(f"/api/conversations/{slug}")).json()

    for person, status in ((bob, 403), (visitor, 403), (anonymous, 401)):
        edit = await person.patch(f"/api/conversations/{slug}", {"title": "Hijacked"})
        start = await person.post(f"/api/conversations/{slug}/start")
        invite = await person.post(f"/api/conversations/{slug}/invites", {})
        assert (edit.status_code, start.status_code, invite.status_code) == (status,) * 3
        if status == 403:
            assert edit.json()["error"] == "forbidden"

    await ana.post(f"/api/conversations/{slug}/start")
    assert (await bob.post(f"/api/conversations/{slug}/end")).status_code == 403
    after = (await ana.client.get(f"/api/conversations/{slug}")).json()
    assert after["title"] == before["title"] == "Ana's talk"
    assert after["state"] == "live"
    assert [t for t, _ in await room_events(world, slug)] == ["conversation.state"]


async def test_guests_cannot_create_but_admins_can_manage_anything(world: World) -> None:
    ana = await world.member("ana")
    root = await world.member("root", admin=True)
    visitor = await world.guest("Visitor")
    refused = await visitor.post("/api/conversations", {"title": "Mine"})
    assert refused.status_code == 401
    slug = (await ana.create())["slug"]

    assert (
        await root.patch(f"/api/conversations/{slug}", {"title": "Moderated"})
    ).status_code == 200
    assert (await root.post(f"/api/conversations/{slug}/start")).status_code == 200
    assert (await root.post(f"/api/conversations/{slug}/end")).status_code == 200


async def test_host_promotes_a_cohost_who_may_then_manage(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    cleo = await world.member("cleo")
    slug = (await ana.create())["slug"]
    url = f"/api/conversations/{slug}/participants"

    promoted = await ana.put(f"{url}/{bob.me['id']}/role", {"role": "cohost"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "cohost" and promoted.json()["name"] == "bob"

    # A co-host may edit and start, but not hand out roles.
    assert (
        await bob.patch(f"/api/conversations/{slug}", {"title": "Co-hosted"})
    ).status_code == 200
    assert (await bob.put(f"{url}/{cleo.me['id']}/role", {"role": "speaker"})).status_code == 403
    assert (await bob.post(f"/api/conversations/{slug}/start")).status_code == 200

    # Nobody changes the host's role; "host" is not a role one can give.
    demote = await ana.put(f"{url}/{ana.me['id']}/role", {"role": "audience"})
    assert demote.status_code == 409
    assert (await ana.put(f"{url}/{cleo.me['id']}/role", {"role": "host"})).status_code == 422
    assert (await ana.put(f"{url}/999999/role", {"role": "speaker"})).status_code == 404

    people = (await world.anonymous().client.get(url)).json()
    assert [(p["name"], p["role"]) for p in people] == [("ana", "host"), ("bob", "cohost")]
    assert [t for t, _ in await room_events(world, slug)][:2] == [
        "stage.role",
        "conversation.updated",
    ]


async def test_unknown_conversation_is_404(world: World) -> None:
    ana = await world.member("ana")
    assert (await ana.client.get("/api/conversations/nosuchslug")).status_code == 404
    assert (await ana.post("/api/conversations/nosuchslug/start")).status_code == 404
    assert (await ana.patch("/api/conversations/x", {"title": "y"})).status_code == 404


async def test_two_hosts_starting_at_once_start_it_once(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create())["slug"]
    await ana.put(f"/api/conversations/{slug}/participants/{bob.me['id']}/role", {"role": "cohost"})

    results = await asyncio.gather(
        ana.post(f"/api/conversations/{slug}/start"), bob.post(f"/api/conversations/{slug}/start")
    )

    assert sorted(r.status_code for r in results) == [200, 409]
    states = [d["state"] for t, d in await room_events(world, slug) if t == "conversation.state"]
    assert states == ["live"]
