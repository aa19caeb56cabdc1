"""The transcript follows the work it waits for at once, not after a postponement (issue 13):
a job that said "not ready yet" is made due by the work that it waited for."""

from __future__ import annotations

from transcripts_support import World, words_at, world_fixture  # noqa: F401

from junto.enums import JobState, RecordingState
from junto.jobs.queue import enqueue


async def test_the_last_piece_finalized_without_a_track_wakes_the_build(world: World) -> None:
    ana = await world.member("ana", "Ana")
    ben = await world.member("ben", "Ben")
    conv = await world.ended_conversation(ana)
    await world.add_piece(conv, ana, 0.0, words_at(0.0, "Hello there."))
    # Ben's piece is still being finalized, and its journal is gone: finalizing fails it, so
    # there will be no track to wait for.
    ben_piece = await world.add_piece(conv, ben, 2.0, None, state=RecordingState.FINALIZING)
    assert await world.run_jobs("transcript.build") == 1  # waits for Ben's piece
    (build,) = await world.jobs("transcript.build")
    assert build.state == JobState.QUEUED and "finalized" in build.progress_note

    async with world.node.db() as db:
        await enqueue(db, "recording.finalize", {"recording_id": ben_piece},
                      conversation_id=conv.id)  # fmt: skip
        await db.commit()
    assert await world.run_jobs("recording.finalize") == 1
    # Right after the finalize, not WAIT_FOR_PIECES_S later, the build runs and succeeds.
    assert await world.run_jobs("transcript.build") == 1
    (build,) = await world.jobs("transcript.build")
    assert build.state == JobState.SUCCEEDED
    body = (await ana.client.get(f"/api/conversations/{conv.slug}/transcript")).json()
    assert body["status"] == "ready"
    assert [s["text"] for s in body["segments"]] == ["Hello there."]
