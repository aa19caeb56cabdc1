"""Hands, the stage, roles, blocks and room settings through `dispatch`, on both databases."""

from __future__ import annotations

import pytest
from room_support import Room, open_room, room_fixture  # noqa: F401 - the `room` fixture

from junto.config import Settings
from junto.enums import ConversationState, Role, Visibility
from junto.room.actions import ActionError, snapshot, viewer_info
from junto.storage.tables import User


async def refused(room: Room, actor: User | None, code: str, **frame: object) -> ActionError:
    before = await room.last_seq()
    with pytest.raises(ActionError) as caught:
        await room.act(actor, **frame)
    assert caught.value.code == code, caught.value.message
    assert await room.last_seq() == before, "a refused action must store no event"
    return caught.value


async def stage_of(room: Room) -> dict[int, tuple[str, bool]]:
    snap = await snapshot(room.node, room.conv, None)
    return {p["id"]: (p["role"], p["hand_raised"]) for p in snap["stage"]["participants"]}


async def test_guest_raises_hand_and_host_brings_them_on_stage(room: Room) -> None:
    gus = await room.guest("Gus")
    raised = await room.act(gus, type="hand.raise")
    assert raised is not None and raised.type == "stage.hand"
    assert raised.data == {
        "user": {"id": gus.id, "name": "Gus", "colour": gus.colour, "is_guest": True},
        "raised": True,
    }
    assert (await stage_of(room))[gus.id] == ("audience", True)
    assert await room.act(gus, type="hand.raise") is None  # already raised
    invited = await room.act(room.host, type="stage.invite", user_id=gus.id)
    assert invited is not None and invited.type == "stage.role"
    assert invited.data["role"] == "speaker" and invited.data["by"] == room.host.id
    assert invited.data["user"]["id"] == gus.id
    stage = await stage_of(room)
    assert stage[gus.id] == ("speaker", False)
    assert stage[room.host.id] == ("host", False)
    # A speaker steps back down; their hand is not raised any more.
    left = await room.act(gus, type="stage.leave")
    assert left is not None and left.data["role"] == "audience"
    assert gus.id not in await stage_of(room)
    await refused(room, gus, "invalid_state", type="stage.leave")


async def test_non_host_cannot_bring_anyone_on_stage(room: Room) -> None:
    ana = await room.member("ana")
    gus = await room.guest("Gus")
    await room.act(gus, type="hand.raise")
    error = await refused(room, ana, "forbidden", type="stage.invite", user_id=gus.id)
    assert error.message == "only hosts and co-hosts can bring someone on stage"
    assert (await room.participant(gus)).role == Role.AUDIENCE  # type: ignore[union-attr]
    # ... and a refused action leaves no trace, not even the actor's participant row.
    assert await room.participant(ana) is None
    await refused(room, gus, "forbidden", type="stage.invite", user_id=gus.id)
    await refused(room, ana, "forbidden", type="stage.remove", user_id=room.host.id)
    await refused(room, ana, "forbidden", type="role.set", user_id=gus.id, role="speaker")
    await refused(room, ana, "forbidden", type="room.settings", stage_locked=True)
    await refused(room, ana, "forbidden", type="participant.block", user_id=gus.id)


async def test_host_removes_speaker_and_declines_hands(room: Room) -> None:
    ana = await room.member("ana")
    gus = await room.guest("Gus")
    await room.act(room.host, type="stage.invite", user_id=ana.id)
    removed = await room.act(room.host, type="stage.remove", user_id=ana.id)
    assert removed is not None and removed.data["role"] == "audience"
    await room.act(gus, type="hand.raise")
    declined = await room.act(room.host, type="stage.remove", user_id=gus.id)
    assert declined is not None and declined.type == "stage.hand"
    assert declined.data["raised"] is False
    assert await room.act(room.host, type="stage.remove", user_id=gus.id) is None
    await refused(room, room.host, "not_found", type="stage.invite", user_id=987_654)


async def test_locked_stage_refuses_raised_hands(room: Room) -> None:
    gus = await room.guest("Gus")
    locked = await room.act(room.host, type="room.settings", stage_locked=True)
    assert locked is not None and locked.data == {"slow_mode_seconds": 0, "stage_locked": True}
    error = await refused(room, gus, "forbidden", type="hand.raise")
    assert "locked" in error.message
    assert await room.act(room.host, type="room.settings", stage_locked=True) is None
    await room.act(room.host, type="room.settings", stage_locked=False)
    assert await room.act(gus, type="hand.raise") is not None
    snap = await snapshot(room.node, room.conv, None)
    assert snap["settings"] == {"slow_mode_seconds": 0, "stage_locked": False}


async def test_cohosts_cannot_remove_or_block_a_host(room: Room) -> None:
    carla = await room.member("carla")
    await room.act(room.host, type="role.set", user_id=carla.id, role="cohost")
    error = await refused(room, carla, "forbidden", type="participant.block", user_id=room.host.id)
    assert "host" in error.message
    await refused(room, carla, "forbidden", type="stage.remove", user_id=room.host.id)
    await refused(room, carla, "forbidden", type="role.set", user_id=room.host.id, role="audience")
    host_row = await room.participant(room.host)
    assert host_row is not None and host_row.role == Role.HOST and not host_row.blocked
    # Co-hosts may moderate speakers and the audience.
    dan = await room.member("dan")
    assert await room.act(carla, type="stage.invite", user_id=dan.id) is not None
    assert await room.act(carla, type="stage.remove", user_id=dan.id) is not None


async def test_nobody_blocks_themselves(room: Room) -> None:
    error = await refused(
        room, room.host, "forbidden", type="participant.block", user_id=room.host.id
    )
    assert "yourself" in error.message


async def test_blocked_people_cannot_post_and_leave_the_stage(room: Room) -> None:
    ana = await room.member("ana")
    await room.act(room.host, type="stage.invite", user_id=ana.id)
    sent = await room.act(ana, type="chat.send", body="before the block")
    assert sent is not None
    blocked = await room.act(room.host, type="participant.block", user_id=ana.id)
    assert blocked is not None and blocked.type == "participant.blocked"
    assert blocked.data == {"user_id": ana.id, "blocked": True, "by": room.host.id}
    # The block was preceded by taking her off the stage, announced as a role change.
    assert (await room.event_ids())[-2:] == [blocked.id - 1, blocked.id]
    assert ana.id not in await stage_of(room)
    error = await refused(room, ana, "blocked", type="chat.send", body="let me speak")
    assert "blocked" in error.message
    await refused(room, ana, "blocked", type="backchannel.post", body="or here")
    await refused(room, ana, "blocked", type="hand.raise")
    await refused(
        room, ana, "blocked", type="chat.edit", message_id=sent.data["message"]["id"], body="x"
    )
    await refused(room, room.host, "invalid_state", type="stage.invite", user_id=ana.id)
    async with room.node.db() as db:
        you = await viewer_info(db, room.conv, ana)
    assert you["can_post"] is False
    unblocked = await room.act(room.host, type="participant.unblock", user_id=ana.id)
    assert unblocked is not None and unblocked.data["blocked"] is False
    assert await room.act(ana, type="chat.send", body="thank you") is not None


async def test_only_hosts_set_roles_and_the_last_host_stays(room: Room) -> None:
    carla = await room.member("carla")
    ana = await room.member("ana")
    made = await room.act(room.host, type="role.set", user_id=carla.id, role="cohost")
    assert made is not None and made.data["role"] == "cohost"
    # Co-hosts do not mint co-hosts.
    await refused(room, carla, "forbidden", type="role.set", user_id=ana.id, role="cohost")
    error = await refused(room, room.host, "invalid_state", type="stage.leave")
    assert "host" in error.message
    await refused(
        room, room.host, "invalid_state", type="role.set", user_id=room.host.id, role="audience"
    )
    await room.set_role(carla, Role.HOST)
    demoted = await room.act(room.host, type="role.set", user_id=room.host.id, role="cohost")
    assert demoted is not None and demoted.data["role"] == "cohost"
    await refused(room, room.host, "forbidden", type="role.set", user_id=carla.id, role="audience")
    assert await room.act(carla, type="role.set", user_id=ana.id, role="speaker") is not None
    await refused(room, carla, "bad_message", type="role.set", user_id=ana.id, role="host")


async def test_viewer_info_for_welcome(room: Room) -> None:
    ana = await room.member("ana")
    gus = await room.guest("Gus")
    async with room.node.db() as db:
        host = await viewer_info(db, room.conv, room.host)
        member = await viewer_info(db, room.conv, ana)
        guest = await viewer_info(db, room.conv, gus)
        watcher = await viewer_info(db, room.conv, None)
    assert host == {
        "user_id": room.host.id,
        "name": "Hana",
        "colour": room.host.colour,
        "role": "host",
        "is_guest": False,
        "can_post": True,
        "can_moderate": True,
    }
    assert member["role"] == "audience" and member["can_post"] and not member["can_moderate"]
    assert guest["is_guest"] and guest["can_post"]
    assert watcher["user_id"] is None and not watcher["can_post"]


async def test_node_admins_moderate_any_conversation(room: Room) -> None:
    admin = await room.member("root_admin", admin=True)
    ana = await room.member("ana")
    assert await room.act(admin, type="stage.invite", user_id=ana.id) is not None
    assert await room.act(admin, type="participant.block", user_id=ana.id) is not None


async def test_outsiders_cannot_act_in_invite_only_conversations(settings: Settings) -> None:
    async for private in open_room(settings, visibility=Visibility.INVITE_ONLY):
        eve = await private.member("eve")
        await refused(private, eve, "not_found", type="chat.send", body="let me in")
        assert await private.participant(eve) is None
        await private.set_role(eve, Role.AUDIENCE)
        assert await private.act(eve, type="chat.send", body="invited") is not None


async def test_stage_actions_need_an_open_conversation(room: Room) -> None:
    ana = await room.member("ana")
    await room.set_state(ConversationState.ENDED)
    await refused(room, room.host, "invalid_state", type="stage.invite", user_id=ana.id)
    await refused(room, room.host, "invalid_state", type="room.settings", slow_mode_seconds=5)
