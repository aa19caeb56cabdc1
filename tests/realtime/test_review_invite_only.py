"""Review: moderating an outsider must never admit them to an invite-only conversation."""

from __future__ import annotations

import pytest
from room_support import open_room

from junto import conversations
from junto.config import Settings
from junto.enums import Role, Visibility
from junto.room.actions import ActionError


@pytest.mark.parametrize("frame_type", ["participant.block", "participant.unblock", "stage.remove"])
async def test_moderating_an_outsider_does_not_let_them_in(
    settings: Settings, frame_type: str
) -> None:
    async for private in open_room(settings, visibility=Visibility.INVITE_ONLY):
        eve = await private.member("eve")
        before = await private.last_seq()
        with pytest.raises(ActionError) as caught:
            await private.act(private.host, type=frame_type, user_id=eve.id)
        assert caught.value.code == "not_found", caught.value.message
        assert await private.participant(eve) is None
        async with private.node.db() as db:
            assert not await conversations.can_view(db, private.conv, eve)
        assert await private.last_seq() == before


async def test_hosts_still_bring_outsiders_in_on_purpose(settings: Settings) -> None:
    async for private in open_room(settings, visibility=Visibility.INVITE_ONLY):
        eve = await private.member("eve")
        assert await private.act(private.host, type="stage.invite", user_id=eve.id) is not None
        row = await private.participant(eve)
        assert row is not None and row.role == Role.SPEAKER
        # Once a participant, moderation works on them as anywhere else.
        assert await private.act(private.host, type="participant.block", user_id=eve.id)
