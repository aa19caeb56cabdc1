"""The final pass: a recorded file → words with timings (real tiny.en), and the track job."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update
from transcripts_support import (
    SCRIPT,
    World,
    join_with_silence,
    speak,
    to_webm,
    wav_seconds,
    world_fixture,  # noqa: F401
)

from junto.config import Settings
from junto.enums import JobState, Role
from junto.jobs import queue
from junto.speech.offline import transcribe_file, without_invented_tail
from junto.storage.tables import Job, TrackTranscript
from junto.storage.types import utcnow
from speech_scoring import wer


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak(tmp_path_factory.mktemp("speech") / "script.wav", SCRIPT)


def test_a_file_becomes_timed_words(speech: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    seen: list[float] = []
    began = time.perf_counter()
    words = transcribe_file(speech, "tiny.en", 5, settings, seen.append)
    took = time.perf_counter() - began
    duration = wav_seconds(speech)

    error = wer(SCRIPT, [w.text for w in words])
    print(
        f"tiny.en beam 5: WER {error:.1%}, {took:.2f} s for {duration:.1f} s "
        f"(RTF {took / duration:.3f})"
    )
    assert error <= 0.12, [w.text for w in words]
    starts = [w.start_s for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w.start_s <= w.end_s <= duration + 0.05 for w in words)
    assert words[0].start_s < 1.5 and words[-1].end_s > duration - 2.5  # covers the speech
    assert all(0 < w.probability <= 1 for w in words)
    assert seen == sorted(seen) and seen[-1] == 1.0


ANA_FIRST = "Welcome to the stage. Today we talk about rivers and the cities built beside them."
BEN = "Thank you for having me. I grew up on a houseboat, so this is personal."
ANA_SECOND = "Tell us more about the houseboat and the people who lived on the water."


async def test_two_speakers_are_transcribed_and_merged_in_turn(
    world: World, tmp_path: Path
) -> None:
    """Each speaker's own recording (as the recorder writes them), the track jobs, the build."""
    ana = await world.member("ana", "Ana")
    ben = await world.member("ben", "Ben")
    conv = await world.ended_conversation(ana)
    await world.add_participant(conv, ben, Role.SPEAKER)
    first = speak(tmp_path / "a1.wav", ANA_FIRST)
    ben_wav = speak(tmp_path / "b.wav", BEN, voice="en-gb+f3")
    second = speak(tmp_path / "a2.wav", ANA_SECOND)
    # Ana pauses while Ben talks: her file holds silence there; Ben's piece starts later.
    ben_offset = wav_seconds(first) + 0.3
    ana_wav = join_with_silence(tmp_path / "ana.wav", first, wav_seconds(ben_wav) + 0.6, second)
    pieces = {}
    for person, wav, offset in ((ana, ana_wav, 0.0), (ben, ben_wav, ben_offset)):
        relative = f"recordings/{conv.id}/{person.id}.webm"
        to_webm(wav, world.settings.data_dir / relative)
        pieces[person.id] = await world.add_piece(conv, person, offset, None, path=relative)

    # The build waits for the words, asking for them itself; then the worker makes them.
    assert await world.run_jobs("transcript.build") == 1
    assert await world.run_jobs("transcript.track") == 2
    tracks = await world.jobs("transcript.track")
    assert [j.state for j in tracks] == [JobState.SUCCEEDED] * 2, [j.error for j in tracks]
    assert all(j.progress == 1.0 and j.progress_note.endswith(" words") for j in tracks)
    async with world.node.db() as db:
        stored = (await db.execute(select(TrackTranscript))).scalars().all()
    assert {t.recording_id for t in stored} == set(pieces.values())
    assert {t.model for t in stored} == {"tiny.en"}
    async with world.node.db() as db:  # the build was postponed: make it due now
        await db.execute(
            update(Job).where(Job.kind == "transcript.build").values(run_after=utcnow())
        )
        await db.commit()
    assert await world.run_jobs("transcript.build") == 1

    body = (await ana.client.get(f"/api/conversations/{conv.slug}/transcript")).json()
    assert body["status"] == "ready"
    turns = [s["speaker"]["name"] for s in body["segments"]]
    assert [name for i, name in enumerate(turns) if i == 0 or turns[i - 1] != name] == [
        "Ana",
        "Ben",
        "Ana",
    ]
    said = {
        name: [s["text"] for s in body["segments"] if s["speaker"]["name"] == name]
        for name in ("Ana", "Ben")
    }
    # The bar for the final transcript (all words, in order), and each speaker's words
    # attributed to them (a short turn's one misheard compound already costs 13 %).
    everything = [s["text"] for s in body["segments"]]
    assert wer([ANA_FIRST, BEN, ANA_SECOND], everything) <= 0.12, everything
    assert wer(f"{ANA_FIRST} {ANA_SECOND}", said["Ana"]) <= 0.2, said["Ana"]
    assert wer(BEN, said["Ben"]) <= 0.2, said["Ben"]
    ben_start = next(s["start_ms"] for s in body["segments"] if s["speaker"]["name"] == "Ben")
    assert ben_offset * 1000 <= ben_start < ben_offset * 1000 + 1500


async def test_a_missing_file_fails_the_track_job_with_a_reason(world: World) -> None:
    ana = await world.member("ana", "Ana")
    conv = await world.ended_conversation(ana)
    rec = await world.add_piece(conv, ana, 0.0, None, path="../../etc/passwd")
    async with world.node.db() as db:
        await queue.enqueue(db, "transcript.track", {"recording_id": rec}, conversation_id=conv.id)
        await db.commit()
    await world.run_jobs("transcript.track")
    (job,) = await world.jobs("transcript.track")
    assert job.state == JobState.FAILED
    assert job.error is not None and "outside the data directory" in job.error


def test_a_word_whisper_barely_believed_in_at_a_segments_end_is_dropped() -> None:
    # As the pipeline benchmark's recordings gave it: "... before Friday. today." (0.002).
    said = [
        SimpleNamespace(word=" before", probability=0.968),
        SimpleNamespace(word=" Friday.", probability=0.792),
        SimpleNamespace(word=" today.", probability=0.002),
    ]
    assert [w.word for w in without_invented_tail(said)] == [" before", " Friday."]
    # A doubtful word inside the segment, or a misheard one at its end, stays.
    doubtful = [
        SimpleNamespace(word=" them", probability=0.005),
        SimpleNamespace(word=" Wakeen", probability=0.21),
    ]
    assert without_invented_tail(doubtful) == doubtful
    assert without_invented_tail([]) == []
