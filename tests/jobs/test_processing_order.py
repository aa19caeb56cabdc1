"""What the review page and the processing panel say is still coming, after a conversation ends:
the steps in the order the workers run them (transcript, summary, search, video), each saying
truthfully whether it is ready, being made, waiting its turn or failed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sqlalchemy import update

sys.path.append(str(Path(__file__).resolve().parents[1] / "transcripts"))
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.enums import JobState
from junto.jobs import queue
from junto.storage.tables import Job


def checklist(html: str) -> list[str]:
    items = re.findall(r'<ul class="checklist".*?</ul>', html, re.S)
    assert items, "no checklist on the review page"
    lines = re.findall(r"<li[^>]*>.*?</span>\s*(.*?)</li>", items[0], re.S)
    return [" ".join(line.split()) for line in lines]


async def test_the_checklist_and_panel_list_what_is_coming_in_the_order_it_runs(
    world: World,
) -> None:
    ana = await world.member("ana", "Ana")
    conv = await world.ended_conversation(ana)  # ending queued the video and the build
    async with world.node.db() as db:
        track = await queue.enqueue(
            db, "transcript.track", {"recording_id": 1}, conversation_id=conv.id
        )
        await db.commit()

    page = await ana.client.get(f"/c/{conv.slug}")
    assert page.status_code == 200
    # Nothing is done yet; the summary and search are queued only once the transcript is built,
    # but they are coming, not "not available".
    assert checklist(page.text) == [
        "Transcript: waiting its turn",
        "Summary and chapters: waiting its turn",
        "Search: waiting its turn",
        "Video: waiting its turn",
    ]
    jobs = (await ana.client.get(f"/api/conversations/{conv.slug}/jobs")).json()
    # The video was queued first, but the transcript's jobs run before it.
    assert [j["kind"] for j in jobs] == ["transcript.build", "transcript.track", "composite.render"]

    # A worker takes the track; the video keeps waiting; the build waits for the track.
    claimed = await queue.claim(world.node.db, "w1")
    assert claimed is not None and claimed.kind == "transcript.build"
    assert await queue.postpone(world.node.db, claimed.id, "w1", 60, "waiting for 1 track")
    claimed = await queue.claim(world.node.db, "w1")
    assert claimed is not None and claimed.id == track.id
    page = await ana.client.get(f"/c/{conv.slug}")
    assert checklist(page.text)[0] == "Transcript: being made now"
    assert checklist(page.text)[3] == "Video: waiting its turn"
    jobs = (await ana.client.get(f"/api/conversations/{conv.slug}/jobs")).json()
    assert [(j["kind"], j["state"]) for j in jobs] == [
        ("transcript.track", "running"),
        ("transcript.build", "queued"),
        ("composite.render", "queued"),
    ]

    # A failed video says so; nothing is claimed ready that is not.
    async with world.node.db() as db:
        await db.execute(
            update(Job).where(Job.kind == "composite.render").values(state=JobState.FAILED)
        )
        await db.execute(update(Job).where(Job.kind.like("transcript.%")).values(
            state=JobState.FAILED))  # fmt: skip
        await db.commit()
    page = await ana.client.get(f"/c/{conv.slug}")
    assert checklist(page.text) == [
        "Transcript: failed (hosts can retry it under Processing)",
        "Summary and chapters: not available (you may publish anyway)",
        "Search: not available (you may publish anyway)",
        "Video: failed (hosts can retry it under Processing)",
    ]
