"""A piece is transcribed while it is recorded, so that after the end only its last words wait.

The piece here is a real journal (espeak-ng speech as browser-like Opus packets, with RTP
times and arrival clocks) that is still RECORDING: the speaker has said one sentence, paused,
and is in the middle of the next. `transcript.ahead` must transcribe the first sentence (and
not the words still being said), keep it as the piece's draft, and `transcript.track` must,
once the piece is finished, hear only what follows the draft and store both together.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
from caption_support import encode_opus, wav_samples
from sqlalchemy import select, update
from transcripts_support import World, need_tools, world_fixture  # noqa: F401

from junto.enums import RecordingState
from junto.jobs.queue import enqueue
from junto.recording.journal import JournalMeta, JournalWriter
from junto.recording.webm import journal_to_webm
from junto.storage.tables import Job, Recording, TrackTranscript
from junto.storage.types import utcnow
from junto.transcripts import ahead
from speech_scoring import normalize

# Two sentences with a short pause between them (the final pass hears them as one stretch),
# over 20 s of speech together: enough to be transcribed ahead.
FIRST = (
    "The city approved four thousand dollars for the main stage this summer, which is less "
    "than last year, so we have to choose carefully where the money goes."
)
FIRST_MORE = (
    "The volunteers asked for shorter shifts this year, three hours each instead of five, "
    "and the food stalls want the same hours as the music."
)
SECOND = "We drop the second tent and put that money into sound, and the posters wait a week."
WALL0 = 1_790_000_000.0


def speech_48k(folder: Path, text: str) -> Path:
    need_tools()
    raw, out = folder / "raw.wav", folder / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "125", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-b", "16", "-c", "1", str(out), "rate", "48000"], check=True)
    return out


def write_journal(path: Path, meta: JournalMeta, packets: list[bytes]) -> None:
    writer = JournalWriter(path, meta)
    for i, data in enumerate(packets):
        writer.append("audio", data, 5000 + i * 960, Fraction(1, 48000), False, WALL0 + i * 0.02)
    writer.close()


async def recording_piece(world: World, slug: str, host_id: int) -> tuple[int, str, JournalMeta]:
    """A RECORDING piece of `host_id` in the live conversation `slug`, its `transcript.ahead`
    queued as the recorder queues it: (recording id, journal path, journal header)."""
    conv = await world.conversation(slug)
    async with world.node.db() as db:
        rec = Recording(
            conversation_id=conv.id,
            user_id=host_id,
            source="camera",
            state=RecordingState.RECORDING,
            journal_path="",
            started_at=utcnow(),
            heartbeat_at=utcnow(),
            has_audio=False,
            has_video=False,
            bytes=0,
        )
        db.add(rec)
        await db.flush()
        rec.journal_path = f"recordings/{conv.id}/{rec.id}.journal"
        recording_id, journal_rel = rec.id, rec.journal_path
        await enqueue(db, ahead.AHEAD_KIND, {"recording_id": rec.id}, conversation_id=conv.id)
        await db.commit()
    (world.settings.data_dir / journal_rel).parent.mkdir(parents=True, exist_ok=True)
    meta = JournalMeta(recording_id, conv.id, host_id, "camera", "2026-12-07T00:00:00+00:00")
    return recording_id, journal_rel, meta


async def piece_ends(
    world: World, recording_id: int, journal_rel: str, meta: JournalMeta, packets: list[bytes]
) -> None:
    """The piece ends with `packets` recorded: finalized as the recorder does, its track job
    queued, its ahead job due."""
    journal = world.settings.data_dir / journal_rel
    journal.unlink()  # the recorder's journal, grown to its end
    write_journal(journal, meta, packets)
    webm_rel = journal_rel.removesuffix(".journal") + ".webm"
    info = journal_to_webm(journal, world.settings.data_dir / webm_rel)
    async with world.node.db() as db:
        await db.execute(
            update(Recording)
            .where(Recording.id == recording_id)
            .values(
                state=RecordingState.READY,
                path=webm_rel,
                has_audio=True,
                duration_s=info.duration_s,
                ended_at=utcnow(),
            )
        )
        await enqueue(db, "transcript.track", {"recording_id": recording_id})
        await db.execute(update(Job).where(Job.kind == ahead.AHEAD_KIND).values(run_after=utcnow()))
        await db.commit()


async def stored_words(world: World, recording_id: int) -> list[tuple[float, str]]:
    """The piece's stored words as (start_s, text)."""
    async with world.node.db() as db:
        stored = await db.scalar(
            select(TrackTranscript.words).where(TrackTranscript.recording_id == recording_id)
        )
    return [(float(w[0]), str(w[2])) for w in json.loads(stored or "[]")]


async def test_a_piece_is_transcribed_while_recorded_and_only_its_rest_after(
    world: World, tmp_path: Path
) -> None:
    host = await world.member("priya", "Priya Nair")
    created = await host.post("/api/conversations", {"title": "Festival budget"})
    slug = created.json()["slug"]
    assert (await host.post(f"/api/conversations/{slug}/start")).status_code == 200

    one, two, second = (wav_samples(speech_48k(tmp_path, t)) for t in (FIRST, FIRST_MORE, SECOND))
    breath = np.zeros(int(0.6 * 48000), dtype=np.int16)
    first = np.concatenate([one, breath, two])
    pause = np.zeros(int(3.0 * 48000), dtype=np.int16)
    lead = np.zeros(int(0.5 * 48000), dtype=np.int16)
    said = np.concatenate([lead, first, pause, second, lead])
    half = len(lead) + len(first) + len(pause) + len(second) * 3 // 4  # SECOND not over yet
    first_end_s = (len(lead) + len(first)) / 48000

    recording_id, journal_rel, meta = await recording_piece(world, slug, host.id)
    journal = world.settings.data_dir / journal_rel
    packets = encode_opus(said)
    write_journal(journal, meta, packets[: half // 960])

    # While recorded: the first sentence is transcribed, the words still being said are not.
    assert await world.run_jobs(ahead.AHEAD_KIND) == 1
    [job] = await world.jobs(ahead.AHEAD_KIND)
    assert job.state == "queued", "it looks again later while the piece is recorded"
    assert "while it is recorded" in (job.progress_note or "")
    draft = ahead.read_draft(ahead.draft_path(world.settings.data_dir, journal_rel))
    assert draft is not None
    assert first_end_s < draft.upto_s < first_end_s + 3.0, "cut in the long pause"
    heard = normalize(" ".join(w[2] for w in draft.words))
    assert "city approved" in heard and "main stage" in heard and "shorter shifts" in heard
    assert "tent" not in heard and "sound" not in heard

    # The piece ends (the whole journal, finalized); the track job hears only the rest.
    await piece_ends(world, recording_id, journal_rel, meta, packets)
    await world.run_jobs("transcript.track", ahead.AHEAD_KIND)
    [track] = await world.jobs("transcript.track")
    assert track.state == "succeeded", track.error
    assert f"({len(draft.words)} transcribed while recorded)" in (track.progress_note or "")
    [job] = await world.jobs(ahead.AHEAD_KIND)
    assert job.state == "succeeded", "the ahead job stops once the piece is no longer recorded"
    words = await stored_words(world, recording_id)
    text = normalize(" ".join(text for _, text in words))
    assert "city approved" in text and "second tent" in text and "into sound" in text
    starts = [w[0] for w in words]
    assert starts == sorted(starts), "the draft's words, then the rest, in time order"
    assert all(w[0] >= draft.upto_s for w in words[len(draft.words) :])
    assert not ahead.draft_path(world.settings.data_dir, journal_rel).exists()


def test_a_draft_made_with_other_settings_is_not_used(tmp_path: Path) -> None:
    made = ahead.Draft(
        "tiny.en", 5, "en", "Priya, Marcus", upto_s=12.0, words=[[0.5, 0.9, "Hi", 0.9, False]]
    )
    path = tmp_path / "1.draft.json"
    ahead.write_draft(path, made)
    assert ahead.usable_draft(path, ahead.Draft("tiny.en", 5, "en", "Priya, Marcus")) == made
    assert ahead.usable_draft(path, ahead.Draft("tiny.en", 1, "en", "Priya, Marcus")) is None
    assert ahead.usable_draft(path, ahead.Draft("tiny.en", 5, "en", "Priya, Lena")) is None
    path.write_text("{not json")
    assert ahead.read_draft(path) is None, "a damaged draft only costs time"
