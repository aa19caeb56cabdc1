"""The live captioner in a real node: tap packets in, stored captions and room events out,
served as WebVTT and JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from caption_support import (
    ANA,
    MONOLOGUE,
    feed_camera,
    opus_packets,
    silence_packets,
    speak,
)
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from conftest import free_port
from helpers import csrf_headers, eventually, in_process_node, signup
from junto.app import build_app
from junto.config import Settings
from junto.conversations import get_by_slug
from junto.events.log import events_after
from junto.media.base import Publication
from junto.node import Node
from junto.storage.tables import Caption
from speech_scoring import normalize, wer


@pytest.fixture
async def node_and_client(settings: Settings) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    async with in_process_node(settings.with_overrides(recording=False, captions=True)) as running:
        yield running


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

    await feed_camera(node, conv.id, me["id"], packets, with_video=True)
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
    # A revision (when a pause split a sentence) stands in place of what it replaces.
    assert as_read([{"id": e.id, "data": e.data} for e in events]) == [c.text for c in rows]
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

    await eventually(ready, 60)
    assert node.on_air.on_air_now(conv.id) == set()  # warm, but nothing is captioned yet


@contextlib.asynccontextmanager
async def served_node(settings: Settings) -> AsyncIterator[tuple[Node, httpx.AsyncClient, str]]:
    """A node in this process (so the test can feed its caption taps) served on a real port
    (so listeners use real WebSockets), and an HTTP client for it."""
    app = build_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:

        def started() -> bool:
            if serving.done():
                pytest.fail("the node stopped while starting")
            return server.started

        await eventually(started, 60, what="the node to start")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app.state.node, client, f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def listen(ws_base: str, slug: str, resume_from: int | None) -> ClientConnection:
    ws = await connect(f"{ws_base}/ws/conversations/{slug}", open_timeout=10)
    await ws.send(json.dumps({"type": "hello", "protocol": 1, "resume_from": resume_from}))
    return ws


async def caption_frames_until(ws: ClientConnection, last_id: int) -> list[dict[str, Any]]:
    """The `caption` room events this listener receives, up to and including `last_id`."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("stream") == "room" and frame.get("type") == "caption":
                frames.append(frame)
            if frame.get("stream") == "room" and frame.get("id", 0) >= last_id:
                return frames


def as_read(frames: list[dict[str, Any]]) -> list[str]:
    """What a client following docs/protocol.md shows: a revision in place of what it replaces."""
    shown: dict[int, tuple[int, str]] = {}
    for frame in frames:
        data = frame["data"]
        for replaced in data.get("replaces", ()):
            shown.pop(replaced, None)
        shown[frame["id"]] = (data["start_ms"], data["text"])
    return [text for _, text in sorted(shown.values())]


async def test_a_revision_replaces_the_pieces_for_listeners_late_joiners_and_the_files(
    settings: Settings, tmp_path: Path
) -> None:
    """A monologue longer than the VAD's 12 s limit is captioned in pieces as it is spoken,
    then revised whole: someone listening live, someone replaying the log later, the captions
    file and the captions JSON all end with one caption holding the whole sentence."""
    packets = opus_packets(speak(tmp_path, "monologue", *MONOLOGUE)) + silence_packets(1.0)
    overrides = {"recording": False, "captions": True}
    async with served_node(settings.with_overrides(**overrides)) as (node, client, ws_base):
        assert node.captioner is not None and node.on_air is not None and node.media is not None
        me = await signup(client, "talker", display_name="Talker")
        headers = await csrf_headers(client)
        r = await client.post("/api/conversations", json={"title": "Budgets"}, headers=headers)
        slug = r.json()["slug"]
        assert (await client.post(f"/api/conversations/{slug}/start", headers=headers)).is_success
        async with node.db() as db:
            conv = await get_by_slug(db, slug)
        assert conv is not None
        live = await listen(ws_base, slug, None)
        try:
            node.on_air.publications_changed(conv.id, [Publication(me["id"], "camera", True, True)])

            await feed_camera(node, conv.id, me["id"], packets)
            node.on_air.publications_changed(conv.id, [])
            async with asyncio.timeout(90):
                await node.captioner.drain()

            async with node.db() as db:
                stored = await events_after(db, conv.id, 0, 1000)
                events = [e for e in stored if e.type == "caption"]
                rows = (await db.execute(select(Caption))).scalars().all()
            revisions = [e for e in events if e.data.get("replaces")]
            assert len(events) >= 3 and revisions  # pieces, then the whole
            assert events[-1] == revisions[-1]
            watched = as_read(await caption_frames_until(live, revisions[-1].id))
        finally:
            await live.close()
        late = await listen(ws_base, slug, 0)
        try:
            replayed = as_read(await caption_frames_until(late, revisions[-1].id))
        finally:
            await late.close()

        last_words = " ".join(normalize(MONOLOGUE[1]).split()[-2:])
        assert len(watched) == 1 and wer(MONOLOGUE[1], watched) <= 0.1, watched
        assert normalize(watched[0]).endswith(last_words)
        assert replayed == watched
        assert [c.text for c in rows] == watched  # one row, the revised text
        assert rows[0].start_ms == events[0].data["start_ms"]
        assert rows[0].end_ms == max(e.data["end_ms"] for e in events)
        vtt = (await client.get(f"/c/{slug}/captions.vtt")).text
        assert vtt.count(" --> ") == 1 and watched[0] in vtt
        listing = (await client.get(f"/api/conversations/{slug}/captions")).json()["captions"]
        assert [c["text"] for c in listing] == watched
        assert node.captioner.health()["revisions"] == len(revisions)


async def test_the_last_words_before_the_node_stops_are_still_captioned(
    settings: Settings, tmp_path: Path
) -> None:
    """A speaker still talking when the node shuts down: their stream ends with the node, and
    the caption of what they said up to then is stored, not dropped with the worker."""
    packets = opus_packets(speak(tmp_path, "ana", *ANA))  # no silence after the last word
    live_settings = settings.with_overrides(recording=False, captions=True)
    async with in_process_node(live_settings) as (node, client):
        assert node.captioner is not None and node.on_air is not None and node.media is not None
        process = node.captioner.process
        assert process is not None
        me = await signup(client, "ana", display_name="Ana")
        headers = await csrf_headers(client)
        r = await client.post("/api/conversations", json={"title": "Late"}, headers=headers)
        slug = r.json()["slug"]
        assert (await client.post(f"/api/conversations/{slug}/start", headers=headers)).is_success
        async with node.db() as db:
            conv = await get_by_slug(db, slug)
        assert conv is not None
        node.on_air.publications_changed(conv.id, [Publication(me["id"], "camera", True, True)])

        async def ready() -> bool:
            return process.ready

        await eventually(ready, 60)
        await feed_camera(node, conv.id, me["id"], packets)
        # The node stops right after her last word.

    async with in_process_node(settings.with_overrides(recording=False, captions=False)) as (
        node,
        client,
    ):
        listing = (await client.get(f"/api/conversations/{slug}/captions")).json()["captions"]
    said = [c["text"] for c in listing]
    assert wer(ANA[1], said) <= 0.2, said
    assert normalize(" ".join(said)).endswith("people")  # her last word


def test_a_late_caption_is_logged_with_where_its_time_went(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator (and bench/pipeline.py) can tell a caption late because the finals queue was
    long from one late because decoding was slow."""
    import logging
    import time

    from junto.speech import live

    spoken_end = time.time() - 3.0
    message: dict[str, Any] = {
        "user_id": 7,
        "queued_at": spoken_end + 0.4,
        "decode_started_at": spoken_end + 2.4,
        "emitted_at": spoken_end + 2.9,
    }
    with caplog.at_level(logging.INFO, logger="junto.speech"):
        live._log_timing(message, spoken_end)
        live._log_timing({**message, "user_id": 8}, time.time() - 0.5)  # on time: not logged
    [record] = [r for r in caplog.records if "caption timing" in r.getMessage()]
    text = record.getMessage()
    assert "user 7" in text and " 400 cut, 2000 queued, 500 decoding" in text, text
