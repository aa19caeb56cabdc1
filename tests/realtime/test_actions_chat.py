"""Chat and backchannel actions through `dispatch`, on SQLite and PostgreSQL, with a real node."""

from __future__ import annotations

import asyncio
import unicodedata
from typing import Any

import pytest
from room_support import Room, open_room, room_fixture  # noqa: F401 - the `room` fixture

from junto.config import Settings
from junto.enums import ConversationState, Role
from junto.events.log import StoredEvent
from junto.room.actions import ActionError, snapshot
from junto.storage.tables import User

SCRIPT = '<script>alert("pwned")</script><img src=x onerror="alert(1)">'


async def refused(room: Room, actor: User | None, code: str, **frame: object) -> ActionError:
    """Dispatch `frame` expecting refusal with `code`, and check nothing was stored."""
    before = await room.last_seq()
    with pytest.raises(ActionError) as caught:
        await room.act(actor, **frame)
    assert caught.value.code == code, caught.value.message
    assert await room.last_seq() == before, "a refused action must store no event"
    return caught.value


async def test_chat_message_is_stored_announced_and_in_the_snapshot(room: Room) -> None:
    ana = await room.member("ana")
    event = await room.act(ana, type="chat.send", body="Hello, room!")
    assert event is not None and event.type == "chat.message" and event.id == await room.last_seq()
    message = event.data["message"]
    assert message["body"] == "Hello, room!"
    assert message["author"] == {
        "id": ana.id,
        "name": "Ana",
        "colour": ana.colour,
        "is_guest": False,
    }
    assert message["edited_at"] is None and message["created_at"].endswith("Z")
    # The first action makes the person an audience participant.
    row = await room.participant(ana)
    assert row is not None and row.role == Role.AUDIENCE
    snap = await snapshot(room.node, room.conv, None)
    assert snap["last_id"] == event.id
    assert [m["body"] for m in snap["chat"]] == ["Hello, room!"]
    assert snap["chat"][0] == message


async def test_anonymous_watchers_cannot_post(room: Room) -> None:
    error = await refused(room, None, "not_signed_in", type="chat.send", body="hi")
    assert "guest" in error.message
    await refused(room, None, "not_signed_in", type="backchannel.post", body="hi")
    assert await room.count_chat() == 0


async def test_malformed_frames_name_the_field(room: Room) -> None:
    ana = await room.member("ana")
    error = await refused(room, ana, "bad_message", type="chat.send")
    assert "body" in error.message
    error = await refused(room, ana, "bad_message", type="chat.edit", message_id="7", body="x")
    assert "message_id" in error.message
    error = await refused(room, ana, "bad_message", type="chat.shout", body="x")
    assert "chat.shout" in error.message
    error = await refused(room, ana, "bad_message", type="chat.send", body="hi", colour="red")
    assert "colour" in error.message
    error = await refused(room, ana, "bad_message", type="hello", protocol=1)
    assert "room action" in error.message


async def test_size_limits_and_empty_text(room: Room) -> None:
    ana = await room.member("ana")
    error = await refused(room, ana, "too_large", type="chat.send", body="x" * 2001)
    assert "2000" in error.message and "2001" in error.message
    assert await room.act(ana, type="chat.send", body="x" * 2000) is not None
    await refused(room, ana, "too_large", type="backchannel.post", body="y" * 281)
    assert await room.act(ana, type="backchannel.post", body="y" * 280) is not None
    error = await refused(room, ana, "bad_message", type="chat.send", body=" \n\t \u0007 ")
    assert "body" in error.message


async def test_text_is_cleaned_and_normalised(room: Room) -> None:
    ana = await room.member("ana")
    decomposed = "cafe\u0301"
    event = await room.act(ana, type="chat.send", body=f"  {decomposed}\x00\x1b[31m\r\nbye  ")
    assert event is not None
    body = event.data["message"]["body"]
    assert body == "caf\u00e9[31m\nbye"
    assert unicodedata.is_normalized("NFC", body)


async def test_script_payload_is_stored_verbatim_as_text(room: Room) -> None:
    ana = await room.member("ana")
    chat = await room.act(ana, type="chat.send", body=SCRIPT)
    post = await room.act(ana, type="backchannel.post", body=SCRIPT[:280])
    assert chat is not None and post is not None
    assert (await room.chat_row(chat.data["message"]["id"])).body == SCRIPT
    assert (await room.post_row(post.data["post"]["id"])).body == SCRIPT[:280]
    snap = await snapshot(room.node, room.conv, ana)
    assert snap["chat"][0]["body"] == SCRIPT
    assert snap["backchannel"][0]["body"] == SCRIPT[:280]


async def test_guests_are_rate_limited_more_strictly_than_members(room: Room) -> None:
    limits = room.node.settings.limits
    assert limits.guest_burst < limits.member_burst
    gus = await room.guest("Gus")
    for i in range(limits.guest_burst):
        assert await room.act(gus, type="chat.send", body=f"guest {i}") is not None
    error = await refused(room, gus, "rate_limited", type="chat.send", body="one too many")
    assert error.retry_after is not None and error.retry_after > 0
    ana = await room.member("ana")
    for i in range(limits.guest_burst + 1):
        assert await room.act(ana, type="chat.send", body=f"member {i}") is not None
    for _ in range(limits.member_burst - limits.guest_burst - 1):
        await room.act(ana, type="chat.send", body="still fine")
    await refused(room, ana, "rate_limited", type="backchannel.post", body="now too many")


async def test_slow_mode_spaces_out_each_persons_messages_but_not_hosts(room: Room) -> None:
    ana = await room.member("ana")
    bob = await room.member("bob")
    settings = await room.act(room.host, type="room.settings", slow_mode_seconds=30)
    assert settings is not None and settings.data == {
        "slow_mode_seconds": 30,
        "stage_locked": False,
    }
    assert await room.act(ana, type="chat.send", body="first") is not None
    error = await refused(room, ana, "slow_mode", type="chat.send", body="second")
    assert error.retry_after is not None and 28 < error.retry_after <= 30
    assert "30 s" in error.message or "29 s" in error.message
    # Per person: Bob is not held back by Ana's message; the backchannel is not slowed.
    assert await room.act(bob, type="chat.send", body="mine") is not None
    assert await room.act(ana, type="backchannel.post", body="meanwhile #here") is not None
    # Hosts and co-hosts are exempt.
    for text in ("host one", "host two"):
        assert await room.act(room.host, type="chat.send", body=text) is not None
    await room.act(room.host, type="role.set", user_id=bob.id, role="cohost")
    assert await room.act(bob, type="chat.send", body="cohost again") is not None
    # Turning slow mode off lets Ana speak again at once.
    await room.act(room.host, type="room.settings", slow_mode_seconds=0)
    assert await room.act(ana, type="chat.send", body="second, later") is not None


async def test_only_the_author_edits_and_edits_show_in_the_snapshot(room: Room) -> None:
    ana = await room.member("ana")
    bob = await room.member("bob")
    sent = await room.act(ana, type="chat.send", body="helo")
    assert sent is not None
    message_id = sent.data["message"]["id"]
    await refused(room, bob, "forbidden", type="chat.edit", message_id=message_id, body="hacked")
    # Not even the host may put words in someone's mouth.
    await refused(room, room.host, "forbidden", type="chat.edit", message_id=message_id, body="x")
    edited = await room.act(ana, type="chat.edit", message_id=message_id, body="hello")
    assert edited is not None and edited.type == "chat.edited"
    assert edited.data["message_id"] == message_id and edited.data["body"] == "hello"
    assert edited.data["edited_at"]
    snap = await snapshot(room.node, room.conv, None)
    assert snap["chat"][0]["body"] == "hello"
    assert snap["chat"][0]["edited_at"] == edited.data["edited_at"]
    await refused(room, ana, "not_found", type="chat.edit", message_id=999_999, body="x")


async def test_host_deletes_a_message_which_leaves_snapshots_but_stays_stored(room: Room) -> None:
    ana = await room.member("ana")
    bob = await room.member("bob")
    bad = await room.act(ana, type="chat.send", body="something rude")
    good = await room.act(ana, type="chat.send", body="something kind")
    assert bad is not None and good is not None
    bad_id = bad.data["message"]["id"]
    await refused(room, bob, "forbidden", type="chat.delete", message_id=bad_id)
    deleted = await room.act(room.host, type="chat.delete", message_id=bad_id)
    assert deleted is not None and deleted.type == "chat.deleted"
    assert deleted.data == {"message_id": bad_id, "by": room.host.id}
    snap = await snapshot(room.node, room.conv, None)
    assert [m["body"] for m in snap["chat"]] == ["something kind"]
    row = await room.chat_row(bad_id)
    assert row.body == "something rude" and row.deleted_at is not None
    assert row.deleted_by == room.host.id
    # Deleting twice, or editing the deleted message, finds nothing.
    await refused(room, room.host, "not_found", type="chat.delete", message_id=bad_id)
    await refused(room, ana, "not_found", type="chat.edit", message_id=bad_id, body="x")
    # Authors may delete their own.
    own = await room.act(ana, type="chat.delete", message_id=good.data["message"]["id"])
    assert own is not None and own.data["by"] == ana.id


async def test_backchannel_post_has_hashtags_and_offset_from_going_live(room: Room) -> None:
    await room.set_state(ConversationState.LIVE, started_ago=90)
    ana = await room.member("ana")
    event = await room.act(
        ana, type="backchannel.post", body="Trees cool streets #UrbanHeat #trees #urbanheat"
    )
    assert event is not None and event.type == "backchannel.post"
    post = event.data["post"]
    assert post["hashtags"] == ["urbanheat", "trees"]
    assert 90_000 <= post["offset_ms"] < 95_000
    assert post["reactions"] == {} and post["author"]["id"] == ana.id
    snap = await snapshot(room.node, room.conv, None)
    assert snap["backchannel"][0]["hashtags"] == ["urbanheat", "trees"]
    assert snap["backchannel"][0]["offset_ms"] == post["offset_ms"]


async def test_posts_before_going_live_have_no_offset(settings: Settings) -> None:
    async for scheduled in open_room(settings, state=ConversationState.SCHEDULED):
        ana = await scheduled.member("ana")
        event = await scheduled.act(ana, type="backchannel.post", body="Looking forward!")
        assert event is not None and event.data["post"]["offset_ms"] is None


async def test_reactions_toggle_and_are_counted_from_rows(room: Room) -> None:
    ana = await room.member("ana")
    bob = await room.member("bob")
    posted = await room.act(ana, type="backchannel.post", body="Shade is infrastructure")
    assert posted is not None
    post_id = posted.data["post"]["id"]
    first = await room.act(bob, type="backchannel.react", post_id=post_id, kind="insight", on=True)
    assert first is not None and first.type == "backchannel.reactions"
    assert first.data == {"post_id": post_id, "reactions": {"insight": 1}}
    # Asking for the state you are already in changes nothing and announces nothing.
    assert (
        await room.act(bob, type="backchannel.react", post_id=post_id, kind="insight", on=True)
        is None
    )
    both = await room.act(ana, type="backchannel.react", post_id=post_id, kind="insight", on=True)
    assert both is not None and both.data["reactions"] == {"insight": 2}
    love = await room.act(ana, type="backchannel.react", post_id=post_id, kind="love", on=True)
    assert love is not None and love.data["reactions"] == {"insight": 2, "love": 1}
    off = await room.act(bob, type="backchannel.react", post_id=post_id, kind="insight", on=False)
    assert off is not None and off.data["reactions"] == {"insight": 1, "love": 1}
    snap = await snapshot(room.node, room.conv, ana)
    assert snap["backchannel"][0]["reactions"] == {"insight": 1, "love": 1}
    assert snap["backchannel"][0]["mine"] == ["insight", "love"]
    await refused(
        room, bob, "bad_message", type="backchannel.react", post_id=post_id, kind="meh", on=True
    )
    await refused(
        room,
        bob,
        "not_found",
        type="backchannel.react",
        post_id=post_id + 100,
        kind="love",
        on=True,
    )


async def test_backchannel_delete_by_author_or_moderator(room: Room) -> None:
    ana = await room.member("ana")
    bob = await room.member("bob")
    posted = await room.act(ana, type="backchannel.post", body="#spam buy now")
    assert posted is not None
    post_id = posted.data["post"]["id"]
    await refused(room, bob, "forbidden", type="backchannel.delete", post_id=post_id)
    await room.act(room.host, type="role.set", user_id=bob.id, role="cohost")
    deleted = await room.act(bob, type="backchannel.delete", post_id=post_id)
    assert deleted is not None and deleted.data == {"post_id": post_id, "by": bob.id}
    assert (await snapshot(room.node, room.conv, None))["backchannel"] == []
    assert (await room.post_row(post_id)).deleted_by == bob.id


async def test_ended_conversation_refuses_posts(room: Room) -> None:
    ana = await room.member("ana")
    sent = await room.act(ana, type="chat.send", body="last words")
    assert sent is not None
    await room.set_state(ConversationState.ENDED)
    error = await refused(room, ana, "invalid_state", type="chat.send", body="too late")
    assert error.message == "expected scheduled or live, got ended"
    await refused(room, ana, "invalid_state", type="backchannel.post", body="too late")
    await refused(room, ana, "invalid_state", type="hand.raise")
    # Moderation of the archive still works.
    assert await room.act(room.host, type="chat.delete", message_id=sent.data["message"]["id"])


async def test_concurrent_posts_get_contiguous_event_ids(room: Room) -> None:
    people = [await room.guest(f"Guest {i}") for i in range(10)]
    start = await room.last_seq()
    frames = [
        (people[i % 10], "chat.send" if i % 2 else "backchannel.post", f"post {i} #load")
        for i in range(50)
    ]
    events = await asyncio.gather(
        *(room.act(person, type=kind, body=body) for person, kind, body in frames)
    )
    ids = sorted(e.id for e in events if e is not None)
    assert ids == list(range(start + 1, start + 51))
    assert await room.event_ids() == list(range(1, start + 51))
    snap = await snapshot(room.node, room.conv, None)
    assert snap["last_id"] == start + 50
    assert len(snap["chat"]) + len(snap["backchannel"]) == 50


async def test_snapshots_taken_during_posting_are_consistent_with_last_id(room: Room) -> None:
    """Whatever a snapshot lists is exactly what its `last_id` covers, even mid-stream."""
    people = [await room.guest(f"Guest {i}") for i in range(6)]
    work: list[Any] = []
    for i in range(30):
        work.append(room.act(people[i % 6], type="chat.send", body=f"m{i}"))
        if i % 3 == 0:
            work.append(snapshot(room.node, room.conv, None))
    results = await asyncio.gather(*work)
    snaps = [r for r in results if isinstance(r, dict)]
    event_of = {e.data["message"]["id"]: e.id for e in results if isinstance(e, StoredEvent)}
    assert len(snaps) == 10 and len(event_of) == 30
    for snap in snaps:
        listed = {m["id"] for m in snap["chat"]}
        covered = {mid for mid, eid in event_of.items() if eid <= snap["last_id"]}
        assert listed == covered
