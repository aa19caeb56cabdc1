"""transcript.build: all speakers' words merged into segments in time order; what it waits for."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update
from transcripts_support import World, words_at, world_fixture  # noqa: F401

from junto.enums import JobState, RecordingState, Role
from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.storage.tables import Job, TranscriptSegment, User
from junto.transcripts import jobs, merge, store, vtt

# ---- the merge itself (pure) ----------------------------------------------------------------


def test_an_interjection_splits_the_turn_it_interrupts() -> None:
    ana = merge.Piece(1, 0, words_at(0.0, "rivers shaped the cities that grew beside them"))
    ben = merge.Piece(2, 2000, words_at(0.1, "really"))  # at 2.1 s, inside Ana's sentence
    segs = merge.segments(merge.timeline_words([ana, ben]))
    assert [(s.user_id, s.text) for s in segs] == [
        (1, "rivers shaped the cities that grew"),
        (2, "really"),
        (1, "beside them"),
    ]
    assert [s.start_ms for s in segs] == sorted(s.start_ms for s in segs)


def test_a_pause_of_a_second_starts_a_new_segment_and_long_talk_is_cut() -> None:
    words = words_at(0.0, "one two three") + words_at(2.5, "four five")
    segs = merge.segments(merge.timeline_words([merge.Piece(7, 0, words)]))
    assert [s.text for s in segs] == ["one two three", "four five"]
    monologue = words_at(0.0, " ".join(["word"] * 200))  # 80 s without a pause
    long = merge.segments(merge.timeline_words([merge.Piece(7, 0, monologue)]))
    assert len(long) >= 3
    assert all(s.end_ms - s.start_ms <= merge.MAX_SEGMENT_MS for s in long)
    assert sum(len(s.words) for s in long) == 200


def test_webvtt_escapes_names_and_text() -> None:
    text = store.render_vtt([], {})
    assert text.startswith("WEBVTT")
    seg = TranscriptSegment(
        seq=0, user_id=5, start_ms=1500, end_ms=3000, text="a --> b\n\nc <i>", words="[]"
    )
    person = User(id=5, display_name="<b>Ana</b> & co", colour="#000000")
    text = store.render_vtt([seg], {5: person})
    assert "00:00:01.500 --> 00:00:03.000" in text
    assert "<v &lt;b&gt;Ana&lt;/b&gt; &amp; co>a --&gt; b c &lt;i&gt;" in text
    assert "<b>" not in text and "\n\nc" not in text


# ---- the job, on a real database --------------------------------------------------------------


def ctx_for(world: World, kind: str, payload: dict[str, Any]) -> JobContext:
    # job_id 0 is nobody's job: progress reports are simply not stored.
    return JobContext(
        job_id=0,
        kind=kind,
        payload=payload,
        conversation_id=payload.get("conversation_id"),
        attempt=1,
        settings=world.settings,
        db=world.node.db,
        worker="test",
    )


async def test_build_merges_speakers_in_time_order(world: World) -> None:
    ana = await world.member("ana", "Ana")
    ben = await world.member("ben", "Ben")
    conv = await world.ended_conversation(ana)
    await world.add_participant(conv, ben, Role.SPEAKER)
    await world.add_piece(
        conv,
        ana,
        0.0,
        words_at(0.0, "Welcome to the stage.") + words_at(8.0, "Rivers made cities."),
    )
    await world.add_piece(conv, ben, 3.0, words_at(0.5, "Thank you for having me."))
    await world.add_piece(conv, ana, 20.0, words_at(1.0, "I am back."))  # Ana came back

    assert await world.run_jobs("transcript.build") == 1
    (build,) = await world.jobs("transcript.build")
    assert build.state == JobState.SUCCEEDED, build.error

    answer = await ana.client.get(f"/api/conversations/{conv.slug}/transcript")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    got = [(s["speaker"]["name"], s["text"], s["start_ms"]) for s in body["segments"]]
    assert got == [
        ("Ana", "Welcome to the stage.", 0),
        ("Ben", "Thank you for having me.", 3500),
        ("Ana", "Rivers made cities.", 8000),
        ("Ana", "I am back.", 21000),
    ]
    assert [s["seq"] for s in body["segments"]] == [0, 1, 2, 3]
    ben_words = body["segments"][1]["words"]
    assert ben_words[0] == [3500, 3850, "Thank", False]  # False: a word of its own
    assert [sp["name"] for sp in body["speakers"]] == ["Ana", "Ben"]

    written = vtt.file_path(world.settings.data_dir, conv.id).read_text()
    assert written.startswith("WEBVTT")
    assert "00:00:03.500 --> " in written and "<v Ben>Thank you for having me." in written
    served = await ana.client.get(f"/c/{conv.slug}/transcript.vtt")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/vtt")
    assert served.text == written

    # Running it again (a retry, a second "end") gives the same transcript, not a second copy.
    await jobs.build(ctx_for(world, "transcript.build", {"conversation_id": conv.id}))
    again = (await ana.client.get(f"/api/conversations/{conv.slug}/transcript")).json()
    assert again["segments"] == body["segments"]


async def test_build_waits_for_the_end_and_for_every_piece(world: World) -> None:
    ana = await world.member("ana", "Ana")
    created = await ana.post("/api/conversations", {"title": "Still going"})
    slug = created.json()["slug"]
    assert (await ana.post(f"/api/conversations/{slug}/start")).status_code == 200
    conv = await world.conversation(slug)
    ctx = ctx_for(world, "transcript.build", {"conversation_id": conv.id})
    with pytest.raises(NotReady, match="not ended"):
        await jobs.build(ctx)

    assert (await ana.post(f"/api/conversations/{slug}/end")).status_code == 200
    await world.add_piece(conv, ana, 0.0, None, state=RecordingState.FINALIZING)
    with pytest.raises(NotReady, match="still being finalized"):
        await jobs.build(ctx)
    status = (await ana.client.get(f"/api/conversations/{slug}/transcript")).json()["status"]
    assert status == "processing"


async def test_build_waits_for_tracks_and_names_a_failed_one(world: World) -> None:
    ana = await world.member("ana", "Ana")
    ben = await world.member("ben", "Ben Okafor")
    conv = await world.ended_conversation(ana)
    await world.add_piece(conv, ana, 0.0, words_at(0.0, "Hello there."))
    rec = await world.add_piece(conv, ben, 2.0, None)  # READY with audio, no words yet
    ctx = ctx_for(world, "transcript.build", {"conversation_id": conv.id})

    # No transcript.track job for it (e.g. lost): the build asks for one and waits.
    with pytest.raises(NotReady, match="waiting for 1 track"):
        await jobs.build(ctx)
    (track,) = await world.jobs("transcript.track")
    assert track.state == JobState.QUEUED and f'"recording_id":{rec}' in track.payload
    with pytest.raises(NotReady, match="waiting for 1 track"):
        await jobs.build(ctx)
    assert len(await world.jobs("transcript.track")) == 1  # not queued twice

    async with world.node.db() as db:
        await db.execute(
            update(Job)
            .where(Job.id == track.id)
            .values(state=JobState.FAILED, error="RuntimeError: the file is corrupt")
        )
        await db.commit()
    with pytest.raises(JobFailed) as failed:
        await jobs.build(ctx)
    assert failed.value.message == (
        f"the track of Ben Okafor could not be transcribed (job #{track.id}): "
        "RuntimeError: the file is corrupt; retry it, then retry this job"
    )

    # Through a real worker the build job fails for good with that message, visible to hosts.
    await world.run_jobs("transcript.build")
    (build,) = await world.jobs("transcript.build")
    assert build.state == JobState.FAILED
    assert build.error is not None and "Ben Okafor" in build.error
    assert (await ana.client.get(f"/api/conversations/{conv.slug}/transcript")).json() == {
        "status": "none",
        "model": None,
        "edited": False,
        "segments": [],
        "speakers": [],
    }


async def test_pieces_without_audio_are_not_waited_for(world: World) -> None:
    ana = await world.member("ana", "Ana")
    conv = await world.ended_conversation(ana)
    await world.add_piece(conv, ana, 0.0, None, has_audio=False)  # a screen share, no sound
    await jobs.build(ctx_for(world, "transcript.build", {"conversation_id": conv.id}))
    body = (await ana.client.get(f"/api/conversations/{conv.slug}/transcript")).json()
    assert body["status"] == "ready" and body["segments"] == []
