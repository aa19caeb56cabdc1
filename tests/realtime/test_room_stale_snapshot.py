"""For every room action that changes the room: a client that holds a snapshot from before and
applies the events the hub sends it ends up with what a fresh snapshot says. If an event left
out something the snapshot shows (a time, a flag, a removal), a page that stays open would drift
from one that was just loaded; this finds it for each action without a test of its own.

One room per database for the whole module (a node start per action would cost a minute): each
case acts with people of its own, so the cases do not depend on one another.
"""

from __future__ import annotations

import copy
import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
import pytest_asyncio
from room_support import Room, open_room

from conftest import _pg_create, _pg_drop, need_service
from helpers import eventually
from junto import conversations
from junto.config import Settings
from junto.conversation_fields import ConversationPatch
from junto.events.log import events_after
from junto.realtime.connection import Connection
from junto.room.protocol import RoomAction
from junto.room.views import snapshot
from junto.storage.tables import Conversation, User

_names = itertools.count(1)


# ---- the room and a client's connection to it ------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def shared_room(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Room]:
    folder = tmp_path_factory.mktemp("stale-snapshot")
    admin, name = "", ""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'junto.sqlite3'}"
    else:
        admin = need_service("JUNTO_TEST_POSTGRES_URL", "PostgreSQL")
        name = "junto_test_" + secrets.token_hex(6)
        await _pg_create(admin, name)
        url = admin.rsplit("/", 1)[0] + "/" + name
    settings = Settings(
        data_dir=Path(folder) / "data",
        database_url=url,
        secret_key="test-secret",
        workers=0,
        captions=False,
        public_url="http://testserver",
    )
    try:
        async for room in open_room(settings):
            yield room
    finally:
        if admin:
            await _pg_drop(admin, name)


class Sink:
    """The sending half of a WebSocket: keeps the room-stream frames it is handed."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        frame = orjson.loads(message["text"])
        if frame.get("stream") == "room":
            self.events.append(frame)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


async def watch(room: Room) -> tuple[Connection, Sink, dict[str, Any]]:
    """Join the room as an anonymous watcher does (join, snapshot, then events after it)."""
    assert room.node.hub is not None
    sink = Sink()
    conn = Connection(sink, max_queue=room.node.settings.limits.send_queue_max)  # type: ignore[arg-type]
    await room.node.hub.join(room.conv.id, conn, None)
    stale = await snapshot(room.node, room.conv, None)
    conn.skip_upto = stale["last_id"]
    conn.start_writer()
    return conn, sink, stale


# ---- what a client does with an event (docs/protocol.md, "The room stream") -------------------


def apply(state: dict[str, Any], event: dict[str, Any]) -> None:
    kind, data = event["type"], event["data"]
    APPLY[kind](state, data, event)
    state["last_id"] = event["id"]


def _by_id(items: list[dict[str, Any]], item_id: int) -> dict[str, Any]:
    return next(item for item in items if item["id"] == item_id)


def _chat_message(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    state["chat"].append(data["message"])


def _chat_edited(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    message = _by_id(state["chat"], data["message_id"])
    message.update(body=data["body"], edited_at=data["edited_at"])


def _chat_deleted(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    state["chat"] = [m for m in state["chat"] if m["id"] != data["message_id"]]


def _post(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    state["backchannel"].append(data["post"])


def _post_deleted(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    state["backchannel"] = [p for p in state["backchannel"] if p["id"] != data["post_id"]]


def _reactions(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    _by_id(state["backchannel"], data["post_id"])["reactions"] = data["reactions"]


def _stage_entry(state: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The user's stage entry, added as an audience member if the client had none."""
    for entry in state["stage"]["participants"]:
        if entry["id"] == user["id"]:
            return entry  # type: ignore[no-any-return]
    entry = {**user, "role": "audience", "hand_raised": False, "hand_raised_at": None}
    entry["consented"] = user["id"] in state.setdefault("_consented", set())
    state["stage"]["participants"].append(entry)
    return entry


def _drop_audience(state: dict[str, Any]) -> None:
    """The stage lists everyone above the audience or with a raised hand."""
    state["stage"]["participants"] = [
        e for e in state["stage"]["participants"] if e["role"] != "audience" or e["hand_raised"]
    ]


def _hand(state: dict[str, Any], data: dict[str, Any], event: dict[str, Any]) -> None:
    entry = _stage_entry(state, data["user"])
    entry["hand_raised"] = data["raised"]
    entry["hand_raised_at"] = event["ts"] if data["raised"] else None
    _drop_audience(state)


def _role(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    entry = _stage_entry(state, data["user"])
    entry.update(role=data["role"], hand_raised=False, hand_raised_at=None)  # it lowers the hand
    _drop_audience(state)


def _consent(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    state.setdefault("_consented", set()).add(data["user"]["id"])
    for entry in state["stage"]["participants"]:
        if entry["id"] == data["user"]["id"]:
            entry["consented"] = True


def _blocked(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    pass  # the snapshot shows no block; what a block changes on stage comes as stage events


def _settings(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    state["settings"] = data


def _conversation(state: dict[str, Any], data: dict[str, Any], _: dict[str, Any]) -> None:
    state["conversation"] = data


APPLY: dict[str, Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]] = {
    "chat.message": _chat_message,
    "chat.edited": _chat_edited,
    "chat.deleted": _chat_deleted,
    "backchannel.post": _post,
    "backchannel.deleted": _post_deleted,
    "backchannel.reactions": _reactions,
    "stage.hand": _hand,
    "stage.role": _role,
    "stage.consent": _consent,
    "participant.blocked": _blocked,
    "room.settings": _settings,
    "conversation.updated": _conversation,
}


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the client's own bookkeeping; the stage as a set (its order for
    people of one role with no hand up follows when they joined, which no event says)."""
    out = {k: v for k, v in state.items() if not k.startswith("_")}
    out["stage"] = {"participants": sorted(out["stage"]["participants"], key=lambda e: e["id"])}
    return out


# ---- the actions ---------------------------------------------------------------------------------


@dataclass
class People:
    room: Room
    host: User
    ana: User  # a member
    ben: User  # a member who goes on stage when a case needs a speaker
    gus: User  # a guest

    async def act(self, actor: User, **frame: Any) -> int:
        event = await self.room.act(actor, **frame)
        assert event is not None, frame
        return int(event.id)


async def people(room: Room) -> People:
    n = next(_names)
    return People(
        room,
        room.host,
        await room.member(f"ana{n}"),
        await room.member(f"ben{n}"),
        await room.guest(f"Gus {n}"),
    )


Case = Callable[[People], Awaitable[None]]


async def chat_send(p: People) -> None:
    await p.act(p.ana, type="chat.send", body="the river is back")


async def chat_edit(p: People) -> None:
    sent = await p.act(p.ana, type="chat.send", body="teh river")
    await p.act(p.ana, type="chat.edit", message_id=await message_id(p, sent), body="the river")


async def chat_delete(p: People) -> None:
    sent = await p.act(p.ana, type="chat.send", body="off topic")
    await p.act(p.host, type="chat.delete", message_id=await message_id(p, sent))


async def backchannel_post(p: People) -> None:
    await p.act(p.gus, type="backchannel.post", body="good point #rivers")


async def backchannel_delete(p: People) -> None:
    posted = await p.act(p.ana, type="backchannel.post", body="never mind")
    await p.act(p.ana, type="backchannel.delete", post_id=await post_id(p, posted))


async def backchannel_react(p: People) -> None:
    post = await post_id(p, await p.act(p.ana, type="backchannel.post", body="#bridges later"))
    await p.act(p.gus, type="backchannel.react", post_id=post, kind="insight", on=True)
    await p.act(p.ben, type="backchannel.react", post_id=post, kind="insight", on=True)
    await p.act(p.ben, type="backchannel.react", post_id=post, kind="agree", on=True)
    await p.act(p.gus, type="backchannel.react", post_id=post, kind="insight", on=False)


async def hand_raise(p: People) -> None:
    await p.act(p.gus, type="hand.raise")


async def hand_lower(p: People) -> None:
    await p.act(p.ana, type="hand.raise")
    await p.act(p.ana, type="hand.lower")


async def stage_invite(p: People) -> None:
    await p.act(p.gus, type="hand.raise")
    await p.act(p.host, type="stage.invite", user_id=p.gus.id)


async def stage_remove(p: People) -> None:
    await p.act(p.host, type="stage.invite", user_id=p.ben.id)
    await p.act(p.host, type="stage.remove", user_id=p.ben.id)


async def stage_leave(p: People) -> None:
    await p.act(p.host, type="stage.invite", user_id=p.ben.id)
    await p.act(p.ben, type="stage.leave")


async def role_set(p: People) -> None:
    await p.act(p.host, type="role.set", user_id=p.ben.id, role="cohost")
    await p.act(p.host, type="role.set", user_id=p.ana.id, role="speaker")


async def participant_block(p: People) -> None:
    await p.act(p.host, type="stage.invite", user_id=p.ben.id)
    await p.act(p.gus, type="hand.raise")
    await p.act(p.host, type="participant.block", user_id=p.ben.id)
    await p.act(p.host, type="participant.block", user_id=p.gus.id)


async def participant_unblock(p: People) -> None:
    await p.act(p.host, type="participant.block", user_id=p.ana.id)
    await p.act(p.host, type="participant.unblock", user_id=p.ana.id)


async def room_settings(p: People) -> None:
    await p.act(p.host, type="room.settings", slow_mode_seconds=30, stage_locked=True)
    # Back to open, so that the other cases' people may post and raise hands.
    await p.act(p.host, type="room.settings", slow_mode_seconds=0, stage_locked=False)


async def media_consent(p: People) -> None:
    await p.act(p.host, type="stage.invite", user_id=p.ben.id)
    await p.act(p.ben, type="media.consent")


async def conversation_edit(p: People) -> None:
    """Not a frame but the host's edit over HTTP; its event reaches the same clients."""
    n = next(_names)
    changes = ConversationPatch(title=f"How cities breathe, part {n}", tags=["cities", f"t{n}"])
    async with p.room.node.db() as db:
        conv = await db.get(Conversation, p.room.conv.id)
        assert conv is not None
        assert await conversations.edit(db, conv, changes, p.host, p.room.node)


CASES: dict[str, Case] = {
    "chat.send": chat_send,
    "chat.edit": chat_edit,
    "chat.delete": chat_delete,
    "backchannel.post": backchannel_post,
    "backchannel.delete": backchannel_delete,
    "backchannel.react": backchannel_react,
    "hand.raise": hand_raise,
    "hand.lower": hand_lower,
    "stage.invite": stage_invite,
    "stage.remove": stage_remove,
    "stage.leave": stage_leave,
    "role.set": role_set,
    "participant.block": participant_block,
    "participant.unblock": participant_unblock,
    "room.settings": room_settings,
    "media.consent": media_consent,
    "conversation.edit": conversation_edit,
}


async def message_id(p: People, event_id: int) -> int:
    return int((await event_data(p.room, event_id))["message"]["id"])


async def post_id(p: People, event_id: int) -> int:
    return int((await event_data(p.room, event_id))["post"]["id"])


async def event_data(room: Room, event_id: int) -> dict[str, Any]:
    async with room.node.db() as db:
        (event,) = await events_after(db, room.conv.id, event_id - 1, 1)
    return dict(event.data)


# ---- the check -----------------------------------------------------------------------------------


def test_every_room_action_has_a_case() -> None:
    actions = {get_args(model.model_fields["type"].annotation)[0] for model in get_args(RoomAction)}
    assert actions <= set(CASES), "a new room action needs its case here"


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("action", list(CASES))
async def test_a_stale_snapshot_plus_the_events_equals_a_fresh_snapshot(
    shared_room: Room, action: str
) -> None:
    conn, sink, stale = await watch(shared_room)
    try:
        await CASES[action](await people(shared_room))
        last = await shared_room.last_seq()
        await eventually(lambda: sink.events and sink.events[-1]["id"] == last, 5)
    finally:
        conn.close(1000)
    state = copy.deepcopy(stale)
    for event in sink.events:
        apply(state, event)
    fresh = await snapshot(shared_room.node, shared_room.conv, None)
    assert comparable(state) == comparable(fresh)
