"""Amounts read right end to end: real tiny.en on espeak-ng speech of an amount and a percentage,
through the track and build jobs, into the stored transcript, its downloads, the conversation
page's word spans and a live caption, with no "4 ,500" or "12 %" anywhere."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
from faster_whisper.audio import decode_audio
from sqlalchemy import select
from transcripts_support import World, speak, to_webm, world_fixture  # noqa: F401

from junto.enums import JobState
from junto.speech.models import resolve_model
from junto.speech.recognizer import Recognizer
from junto.storage.tables import TranscriptSegment

SAID = "It costs four thousand five hundred dollars, about twelve percent more."
# A space before a piece that continues a word: what joining Whisper's pieces with " " did.
STRAY = re.compile(r"\d \d|\d [,.%]\d?|\$ \d| [,%]")


def strays(text: str) -> list[str]:
    return STRAY.findall(text)


async def test_an_amount_reads_right_in_the_transcript_downloads_page_and_captions(
    world: World, tmp_path: Path
) -> None:
    ana = await world.member("ana", "Ana")
    conv = await world.ended_conversation(ana)
    wav = speak(tmp_path / "amount.wav", SAID)
    relative = f"recordings/{conv.id}/{ana.id}.webm"
    to_webm(wav, world.settings.data_dir / relative)
    await world.add_piece(conv, ana, 0.0, None, path=relative)
    await world.run_jobs("transcript.build")  # asks for the track's words, then waits
    assert await world.run_jobs("transcript.track") == 1
    # The last track woke the build it was waiting for: it runs now, not in WAIT_FOR_TRACKS_S.
    assert await world.run_jobs("transcript.build") == 1
    assert [j.state for j in await world.jobs("transcript.build")] == [JobState.SUCCEEDED]

    async with world.node.db() as db:
        stored = [s.text for s in (await db.execute(select(TranscriptSegment))).scalars()]
    text = " ".join(stored)
    print("stored:", text)
    # tiny.en writes the amount in digits ("4,500", "12%"), which is what this test is about.
    assert re.search(r"\d,\d{3}", text) and "%" in text, text
    assert strays(text) == [], text

    for fmt in ("vtt", "srt", "txt", "json"):
        answer = await ana.client.get(f"/c/{conv.slug}/transcript.{fmt}")
        assert answer.status_code == 200, answer.text
        body = (
            answer.text
            if fmt != "json"
            else " ".join(s["text"] for s in json.loads(answer.text)["segments"])
        )
        assert strays(body) == [], (fmt, body)

    page = await ana.client.get(f"/c/{conv.slug}")
    assert page.status_code == 200
    shown = re.findall(r'<p class="seg"[^>]*>(.*?)</p>', page.text, re.S)
    assert shown, page.text
    # What a reader sees: the word spans' text with the spaces between them.
    seen = html.unescape(re.sub(r"<[^>]+>", "", " ".join(shown)))
    assert strays(seen) == [] and re.search(r"\d,\d{3}", seen), seen

    # The live caption of the same utterance.
    model = resolve_model("tiny.en", world.settings)
    audio = np.asarray(decode_audio(str(wav), sampling_rate=16_000), dtype=np.float32)
    for short_window in (True, False):  # the fast path, and faster-whisper's own as fallback
        caption = Recognizer(model, english_only=True, short_window=short_window)(audio)
        assert strays(caption.text) == [], caption.text
        assert re.search(r"\d,\d{3}", caption.text), caption.text
