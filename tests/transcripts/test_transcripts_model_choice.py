"""Which model made a transcript, and a language it does not know: the review page says so,
and an English-only model never writes invented English for a German conversation."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from transcripts_support import World, speak, to_webm, world_fixture  # noqa: F401

from junto import cli
from junto.enums import JobState
from junto.speech import models
from junto.storage.tables import Job, TrackTranscript, TranscriptSegment

GERMAN = "Guten Morgen. Heute sprechen wir über den Haushalt und die neuen Brücken der Stadt."


def review_note(html: str) -> str:
    found = re.search(r'<p class="transcript-model">(.*?)</p>', html, re.S)
    assert found, "no note on the review page about the transcript's model"
    return found.group(1)


async def segments_text(world: World) -> str:
    async with world.node.db() as db:
        return " ".join(s.text for s in (await db.scalars(select(TranscriptSegment))).all())


async def test_the_review_page_says_which_model_made_the_transcript(
    world: World, tmp_path: Path
) -> None:
    ana = await world.member("ana", "Ana")
    conv = await world.ended_conversation(ana)
    relative = f"recordings/{conv.id}/{ana.id}.webm"
    to_webm(speak(tmp_path / "a.wav", "Welcome to the stage."), world.settings.data_dir / relative)
    await world.add_piece(conv, ana, 0.0, None, path=relative)
    await world.run_jobs("transcript.build")  # asks for the track's words, then waits
    assert await world.run_jobs("transcript.track") == 1
    assert await world.run_jobs("transcript.build") == 1
    page = await ana.client.get(f"/c/{conv.slug}")
    assert page.status_code == 200
    assert review_note(page.text) == f"Transcribed with {world.settings.transcript_model}."


async def test_an_english_only_model_writes_nothing_for_a_german_conversation_and_says_why(
    world: World, tmp_path: Path
) -> None:
    assert models.is_english_only(world.settings.transcript_model)
    ana = await world.member("ana", "Ana")
    conv = await world.ended_conversation(ana, language="de")
    assert conv.language == "de"
    relative = f"recordings/{conv.id}/{ana.id}.webm"
    wav = speak(tmp_path / "de.wav", GERMAN, voice="de")
    to_webm(wav, world.settings.data_dir / relative)
    await world.add_piece(conv, ana, 0.0, None, path=relative)
    await world.run_jobs("transcript.build")  # asks for the track's words, then waits
    assert await world.run_jobs("transcript.track") == 1
    assert await world.run_jobs("transcript.build") == 1

    (track,) = await world.jobs("transcript.track")
    assert track.state == JobState.SUCCEEDED
    assert "English only" in track.progress_note and "German" in track.progress_note
    async with world.node.db() as db:
        (stored,) = (await db.scalars(select(TrackTranscript))).all()
    assert stored.words == "[]"  # no invented English words
    assert await segments_text(world) == ""
    page = await ana.client.get(f"/c/{conv.slug}")
    assert review_note(page.text) == (
        "The transcript model knows English only; this conversation is in German: set "
        "JUNTO_TRANSCRIPT_MODEL to a multilingual model (such as small)."
    )


async def test_a_silent_track_gives_an_empty_transcript_without_error(
    world: World, tmp_path: Path
) -> None:
    ana = await world.member("ana", "Ana")
    conv = await world.ended_conversation(ana)
    silence = tmp_path / "silence.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(silence), "trim", "0", "5"], check=True
    )
    relative = f"recordings/{conv.id}/{ana.id}.webm"
    to_webm(silence, world.settings.data_dir / relative)
    await world.add_piece(conv, ana, 0.0, None, path=relative)
    await world.run_jobs("transcript.build")  # asks for the track's words, then waits
    assert await world.run_jobs("transcript.track") == 1
    assert await world.run_jobs("transcript.build") == 1
    async with world.node.db() as db:
        jobs = (await db.scalars(select(Job).where(Job.kind.like("transcript.%")))).all()
    assert {j.kind: j.state for j in jobs} == {
        "transcript.track": JobState.SUCCEEDED,
        "transcript.build": JobState.SUCCEEDED,
    }
    assert await segments_text(world) == ""


def test_junto_models_says_which_model_each_pass_uses_and_what_the_machine_could_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUNTO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("JUNTO_CAPTION_MODEL", "tiny.en")
    monkeypatch.setenv("JUNTO_TRANSCRIPT_MODEL", "base.en")
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "Live captions:    tiny.en (JUNTO_CAPTION_MODEL), on this machine" in out
    assert (
        "Final transcript: base.en (JUNTO_TRANSCRIPT_MODEL), not on this machine: "
        "downloaded on first use"
    ) in out

    small, big = models.Machine(2, 3.8), models.Machine(8, 16.0)
    assert models.suggested_transcript_model("tiny.en", small) == "base.en"
    assert models.suggested_transcript_model("tiny.en", big) == "small.en"
    assert models.suggested_transcript_model("tiny", big) == "small"  # stays multilingual
    assert models.suggested_transcript_model("small.en", big) is None
    assert models.suggested_transcript_model("tiny.en", models.Machine(1, 1.0)) is None
    assert models.suggested_transcript_model("/opt/weights", big) is None
