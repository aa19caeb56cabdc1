"""Publishing an ended conversation: who may, from which state, the room event, who sees the page.

Runs on SQLite and PostgreSQL (the `settings` fixture): the transition is a conditional UPDATE.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlalchemy import select

sys.path.append(str(Path(__file__).resolve().parents[1] / "transcripts"))
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.enums import Role
from junto.storage.tables import Conversation, RoomEvent


async def _state_events(world: World, conv_id: int) -> list[dict[str, object]]:
    async with world.node.db() as db:
        rows = await db.execute(
            select(RoomEvent)
            .where(RoomEvent.conversation_id == conv_id, RoomEvent.type == "conversation.state")
            .order_by(RoomEvent.seq)
        )
        return [json.loads(e.payload) for e in rows.scalars()]


async def test_only_hosts_publish_an_ended_conversation_and_the_page_opens_up(world: World) -> None:
    ana = await world.member("ana_host", "Ana Host")
    ben = await world.member("ben_speaker", "Ben Speaker")
    cy = await world.member("cy_listener", "Cy Listener")
    anonymous = world.anonymous()
    conv = await world.ended_conversation(ana, visibility="public")
    await world.add_participant(conv, ben, Role.SPEAKER)
    slug = conv.slug

    # Under review: hosts and speakers see the page, everyone else "not published yet".
    assert (await ana.client.get(f"/c/{slug}")).status_code == 200
    review = await ben.client.get(f"/c/{slug}")
    assert review.status_code == 200 and "In review" in review.text
    for outsider in (cy, anonymous):
        page = await outsider.client.get(f"/c/{slug}")
        assert page.status_code == 404 and "Not published yet" in page.text

    # A speaker is not a host: 403 with the JSON error shape, nothing changes.
    refused = await ben.post(f"/api/conversations/{slug}/publish")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "forbidden"
    assert (await anonymous.post(f"/api/conversations/{slug}/publish")).status_code in (401, 403)

    published = await ana.post(f"/api/conversations/{slug}/publish")
    assert published.status_code == 200, published.text
    assert published.json()["state"] == "published"
    async with world.node.db() as db:
        stored = await db.get(Conversation, conv.id)
        assert stored is not None and stored.published_at is not None
    events = await _state_events(world, conv.id)
    assert events[-1]["state"] == "published" and events[-1]["published_at"]

    # Twice is a state error, as is unpublishing something that is not published.
    again = await ana.post(f"/api/conversations/{slug}/publish")
    assert again.status_code == 409
    assert again.json()["error"] == "invalid_state"
    assert "expected ended, got published" in again.json()["message"]

    for outsider in (cy, anonymous):
        page = await outsider.client.get(f"/c/{slug}")
        assert page.status_code == 200 and "Published" in page.text
        assert 'action="/c/' not in page.text  # no host controls

    assert (await ben.post(f"/api/conversations/{slug}/unpublish")).status_code == 403
    back = await ana.post(f"/api/conversations/{slug}/unpublish")
    assert back.status_code == 200 and back.json()["state"] == "ended"
    async with world.node.db() as db:
        stored = await db.get(Conversation, conv.id)
        assert stored is not None and stored.published_at is None
    assert (await _state_events(world, conv.id))[-1] == {
        "state": "ended",
        "started_at": events[-1]["started_at"],
        "ended_at": events[-1]["ended_at"],
        "published_at": None,
    }
    assert (await anonymous.client.get(f"/c/{slug}")).status_code == 404
    again = await ana.post(f"/api/conversations/{slug}/unpublish")
    assert again.status_code == 409


async def test_a_live_conversation_cannot_be_published_and_the_form_works(world: World) -> None:
    ana = await world.member("ana_host", "Ana Host")
    created = await ana.post("/api/conversations", {"title": "Still going"})
    slug = created.json()["slug"]
    assert (await ana.post(f"/api/conversations/{slug}/start")).status_code == 200
    live = await ana.post(f"/api/conversations/{slug}/publish")
    assert live.status_code == 409
    assert "expected ended, got live" in live.json()["message"]
    # While live, /c/{slug} is still the room.
    assert 'id="room-state"' in (await ana.client.get(f"/c/{slug}")).text
    assert (await ana.post(f"/api/conversations/{slug}/end")).status_code == 200

    # The page's form (no JavaScript): POST, then back to the page, now published.
    page = await ana.client.get(f"/c/{slug}")
    assert f'action="/c/{slug}/publish"' in page.text
    token = ana.client.cookies.get("junto_csrf")
    posted = await ana.client.post(f"/c/{slug}/publish", data={"csrf_token": token})
    assert posted.status_code == 303, posted.text
    page = await ana.client.get(posted.headers["location"])
    assert page.status_code == 200 and f'action="/c/{slug}/unpublish"' in page.text
    refused = await ana.client.post(f"/c/{slug}/publish", data={"csrf_token": token})
    assert refused.status_code == 409 and "expected ended, got published" in refused.text
