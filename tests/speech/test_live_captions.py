"""The live captioner in a real node: tap packets in, stored captions and room events out,
served as WebVTT and JSON."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import httpx
import pytest
from caption_support import ANA, opus_packets, silence_packets, speak
from sqlalchemy import select

from helpers import csrf_headers, in_process_node, signup
from junto.config import Settings
from junto.conversations import get_by_slug
from junto.media.base import Publication
from junto.node import Node
from junto.realtime.log import events_after
from junto.storage.tables import Caption
from speech_scoring import wer


@pytest.fixture
async def node_and_client(settings: Settings) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    async with in_process_node(settings.with_overrides(recording=False, captions=True)) as running:
        yield running


async def wait_for(check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_a_speakers_words_become_stored_captions_events_and_webvtt(
    node_and_client: tuple[Node, httpx.AsyncClient], tmp_path: Path
) -> None:
    node, client = node_and_client
    assert node.captioner is not None and node.on_air is not None and node.media is not None
    packets = opus_packets(speak(tmp_path, "ana", *ANA)) + silence_packets(1.0)
    me = await signup(client, "ana", display_name="Ana")
    headers = await csrf_headers(client)
    r = await client.post("/api/conversations", json={"title": "Rivers"}, headers=headers)
    slug = r.json()["slug"]
    assert (await client.post(f"/api/conversations/{slug}/start", headers=headers)).is_success
    async with node.db() as db:
        conv = await get_by_slug(db, slug)
    assert conv is not None and conv.started_at is not None

    # Ana publishes her camera in the live conversation: on air, so the captioner taps it.
    node.on_air.publications_changed(conv.id, [Publication(me["id"], "camera", True, True)])

    async def tapped() -> bool:
        room = node.media.rooms.get(conv.id)  # type: ignore[attr-defined]
        return room is not None and bool(room.taps.get((me["id"], "camera")))

    await wait_for(tapped, 10)
    taps = node.media.rooms[conv.id].taps[(me["id"], "camera")]  # type: ignore[attr-defined]
    for packet in packets:
        for tap in taps:
            tap("video", av.Packet(b"\x00" * 10))  # video is not captioned
            tap("audio", av.Packet(packet))
    # She stops: the worker finishes her last utterance.
    node.on_air.publications_changed(conv.id, [])

    async with asyncio.timeout(90):
        await node.captioner.drain()

    async with node.db() as db:
        rows = (await db.execute(select(Caption).order_by(Caption.start_ms))).scalars().all()
        events = [e for e in await events_after(db, conv.id, 0, 1000) if e.type == "caption"]
    assert wer(ANA[1], [c.text for c in rows]) <= 0.2
    assert all(c.user_id == me["id"] and c.conversation_id == conv.id for c in rows)
    assert all(0 <= c.start_ms < c.end_ms for c in rows)
    assert [e.data["text"] for e in events] == [c.text for c in rows]
    assert events[0].data["user"] == {
        "id": me["id"],
        "name": "Ana",
        "colour": me["colour"],
        "is_guest": False,
    }
    assert {"start_ms", "end_ms"} <= set(events[0].data)
    health = node.captioner.health()
    assert health["captions"] == len(rows) and health["latency_ms_p95"] is not None

    vtt = await client.get(f"/c/{slug}/captions.vtt")
    assert vtt.status_code == 200
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT\n") and "<v Ana>" in vtt.text
    listing = await client.get(f"/api/conversations/{slug}/captions")
    assert [c["text"] for c in listing.json()["captions"]] == [c.text for c in rows]


async def test_the_caption_worker_is_warm_before_the_conversation_goes_live(
    node_and_client: tuple[Node, httpx.AsyncClient],
) -> None:
    """Speakers gathering on a scheduled stage start the worker and its model, so the first
    words after "go live" are not spent loading Whisper (issue 13: captions from the first word)."""
    node, client = node_and_client
    assert node.captioner is not None and node.on_air is not None
    process = node.captioner.process
    assert process is not None and not process.ready  # nobody has published yet
    me = await signup(client, "early", display_name="Early")
    headers = await csrf_headers(client)
    r = await client.post("/api/conversations", json={"title": "Soon"}, headers=headers)
    async with node.db() as db:
        conv = await get_by_slug(db, r.json()["slug"])
    assert conv is not None and conv.state == "scheduled"

    node.on_air.publications_changed(conv.id, [Publication(me["id"], "camera", True, True)])

    async def ready() -> bool:
        return process.ready

    await wait_for(ready, 60)
    assert node.on_air.on_air_now(conv.id) == set()  # warm, but nothing is captioned yet
