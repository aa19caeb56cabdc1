"""Review: an invite link (or the roles API) never puts a blocked person back on stage."""

from __future__ import annotations

from conv_support import world_fixture  # noqa: F401 - fixture

from helpers import World
from junto import conversations
from junto.enums import Role
from junto.room.actions import dispatch
from junto.storage.tables import Participant, User


async def _block(world: World, slug: str, host_id: int, user_id: int) -> None:
    async with world.node.db() as db:
        conv = await conversations.get_by_slug(db, slug)
        host = await db.get(User, host_id)
    assert conv is not None and host is not None
    event = await dispatch(
        world.node, conv, host, {"type": "participant.block", "user_id": user_id}
    )
    assert event is not None


async def _row(world: World, slug: str, user_id: int) -> Participant | None:
    async with world.node.db() as db:
        conv = await conversations.get_by_slug(db, slug)
        assert conv is not None
        return await db.get(Participant, (conv.id, user_id))


async def test_a_blocked_person_cannot_use_an_invite_to_get_on_stage(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create())["slug"]
    made = (await ana.post(f"/api/conversations/{slug}/invites", {"max_uses": 5})).json()
    await _block(world, slug, ana.me["id"], bob.me["id"])

    response = await bob.post("/api/invites/accept", {"token": made["token"]})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "blocked"
    row = await _row(world, slug, bob.me["id"])
    assert row is not None and row.blocked and row.role == Role.AUDIENCE
    listed = (await ana.client.get(f"/api/conversations/{slug}/invites")).json()
    assert listed[0]["uses"] == 0, "a refused acceptance must not spend a use"


async def test_the_roles_api_refuses_to_raise_a_blocked_person(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create())["slug"]
    await _block(world, slug, ana.me["id"], bob.me["id"])
    async with world.node.db() as db:
        conv = await conversations.get_by_slug(db, slug)
        host = await db.get(User, ana.me["id"])
        assert conv is not None and host is not None
        try:
            await conversations.set_role(db, conv, host, bob.me["id"], Role.SPEAKER)
        except conversations.ConversationError as exc:
            assert exc.status == 409 and exc.code == "invalid_state"
        else:
            raise AssertionError("a blocked person was made a speaker")
    row = await _row(world, slug, bob.me["id"])
    assert row is not None and row.blocked and row.role == Role.AUDIENCE
