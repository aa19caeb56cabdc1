"""Transcribing a speaker's piece while they are still talking, so that the transcript is
ready moments after the conversation ends instead of a Whisper pass over every track later.

`transcript.ahead` {"recording_id"} is queued when a piece starts recording. While the piece is
still RECORDING, each run (every 10 s) takes a snapshot of its journal (audio only, the same
timing as the final file: junto.recording.webm), finds the last pause of 2 s or more that the
speaker has surely finished (junto.speech.offline.settled_until), and once at least 20 s of
speech lie between the previous cut and that pause, transcribes them with the final pass's
model, beam, language and hotwords, and adds the words to the piece's *draft*
(`recordings/<conversation>/<recording>.draft.json`, written atomically). Then it postpones
itself (`NotReady`, not an attempt) and looks again later. Once the piece has left RECORDING
the job ends; `transcript.track` then transcribes only what comes after the draft's cut and
stores draft + rest as the piece's words.

The final pass reads the file with `condition_on_previous_text=False`, joining the speech its
VAD finds across pauses shorter than 2 s into 30 s windows: a cut in a longer pause, with 20 s
of speech or more on each side, leaves Whisper about the context it would have had. A draft
made with other settings (the host changed the model, the title's hotwords changed) is not
used: the track is transcribed whole, as before. A missing or damaged draft only costs time.

Priority and CPU: live work (forwarding media, captions) comes first. The job runs at a lower
queue priority than the transcript's own jobs, and its Whisper runs on a thread of its own at
a lower OS priority with a model instance created on that thread (CTranslate2's compute
threads inherit the priority of the thread that creates them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from junto.enums import RecordingState
from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.recording.webm import NothingRecorded, journal_to_webm
from junto.speech.models import resolve_model, unsupported_language
from junto.speech.offline import (
    SAMPLE_RATE,
    Word,
    decode_16k,
    settled_until,
    transcribe_audio,
)
from junto.speech.vocabulary import conversation_vocabulary
from junto.storage.tables import Conversation, Recording, TrackTranscript
from junto.transcripts import store

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from sqlalchemy.ext.asyncio import AsyncSession

    from junto.config import Settings

log = logging.getLogger("junto.transcripts")

AHEAD_KIND = "transcript.ahead"  # queued by junto.recording.recorder, first look after 20 s
# The time between looks while the piece is recorded.
EVERY_S = 10.0
# Speech is transcribed in stretches of at least this much (cut in pauses of 2 s, where the
# final pass's own VAD cuts too): Whisper reads each stretch with what was said around it in
# its 30 s window, as the final pass over the whole file would. Cut after every sentence, one
# voice's final transcript was 20 % WER instead of 4 % (bench/pipeline.py). Cut also at the end
# of each speaker's turn (5 s of silence after 4 or 10 s of speech), the transcript was ready
# 9.6-14.9 s after the end instead of 19.4 s, but its WER was 12.5-15.8 % instead of 8.8 %
# (the baseline's): short stretches lose Whisper's context and invite words into the silence.
MIN_SPEECH_S = 20.0
# A silent stretch at least this long is skipped (marked done) without Whisper.
MIN_SILENCE_S = 10.0
# How far below the node's other threads the ahead transcription runs.
NICE = 10


@dataclass
class Draft:
    """What was transcribed of a piece while it was recorded, and with which settings."""

    model: str
    beam: int
    language: str | None
    hotwords: str
    upto_s: float = 0.0
    # [start_s, end_s, text, probability, joins] per word, times from the piece's start.
    words: list[list[Any]] = field(default_factory=list)

    def made_like(self, other: Draft) -> bool:
        return (self.model, self.beam, self.language, self.hotwords) == (
            other.model,
            other.beam,
            other.language,
            other.hotwords,
        )

    def word_list(self) -> list[Word]:
        return [Word(float(s), float(e), str(t), float(p), bool(j)) for s, e, t, p, j in self.words]


def draft_path(data_dir: Path, journal_relpath: str) -> Path:
    """The draft beside the piece's journal (`<recording>.journal` → `<recording>.draft.json`)."""
    journal = store.inside_data_dir(data_dir, journal_relpath)
    return journal.with_name(journal.name.removesuffix(".journal") + ".draft.json")


def read_draft(path: Path) -> Draft | None:
    """The draft at `path`, or None if there is none or it is not one (damaged: ignored)."""
    try:
        data = json.loads(path.read_text())
        draft = Draft(**data)
        draft.word_list()  # every word well-formed
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring the unreadable transcript draft %s: %s", path, exc)
        return None
    return draft


def write_draft(path: Path, draft: Draft) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(draft), separators=(",", ":")))
    os.replace(tmp, path)


def usable_draft(path: Path, wanted: Draft) -> Draft | None:
    """The piece's draft if it was made with the settings `wanted` names."""
    draft = read_draft(path)
    return draft if draft is not None and draft.made_like(wanted) else None


# ---- the low-priority transcription thread -----------------------------------------------------

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_models: dict[str, WhisperModel] = {}
_executor_lock = threading.Lock()


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + NICE)


def _ahead_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="transcript-ahead", initializer=_lower_priority
            )
        return _executor


def _model(name: str, settings: Settings) -> WhisperModel:
    """This thread's own instance of `name` (created here, so its threads run as low)."""
    from faster_whisper import WhisperModel

    resolved = str(resolve_model(name, settings))
    if resolved not in _models:
        # The same threads as the final pass (junto.speech.models.load_model): the same words.
        _models[resolved] = WhisperModel(resolved, device="cpu", compute_type="int8", cpu_threads=0)
    return _models[resolved]


def _step(journal: Path, draft: Draft, settings: Settings) -> Draft | None:
    """One look at a piece being recorded: `draft` with the newly settled speech added, or None
    if too little was settled since the last look (runs on the ahead thread)."""
    with tempfile.TemporaryDirectory(prefix="ahead-", dir=settings.data_dir) as folder:
        snapshot = Path(folder) / "snapshot.webm"
        try:
            info = journal_to_webm(journal, snapshot, audio_only=True)
        except NothingRecorded:
            return None
        if not info.has_audio:
            return None
        audio = decode_16k(snapshot)
    # At most about one Whisper window per look: a look is never long, so a piece that ends
    # waits little for the look under way (the finalize and the track jobs queue behind it).
    settled = settled_until(audio, draft.upto_s, enough_s=MIN_SPEECH_S)
    if settled is None:
        return None
    cut = settled.until_s
    if settled.speech_s == 0.0 and cut - draft.upto_s >= MIN_SILENCE_S:
        return replace(draft, upto_s=round(cut, 3))  # nothing said: the next look starts here
    if settled.speech_s < MIN_SPEECH_S:
        return None
    begin, end = int(draft.upto_s * SAMPLE_RATE), int(cut * SAMPLE_RATE)
    words = transcribe_audio(
        audio[begin:end],
        draft.model,
        draft.beam,
        settings,
        language=draft.language,
        hotwords=draft.hotwords,
        offset_s=draft.upto_s,
        model=_model(draft.model, settings),
    )
    added = [
        [round(w.start_s, 3), round(w.end_s, 3), w.text, round(w.probability, 3), w.joins]
        for w in words
    ]
    return Draft(
        draft.model,
        draft.beam,
        draft.language,
        draft.hotwords,
        upto_s=round(cut, 3),
        words=draft.words + added,
    )


# ---- the job -----------------------------------------------------------------------------------


def whisper_language(tag: str) -> str | None:
    """Whisper's code for a conversation's language tag ("en-GB" → "en"), if it looks like one."""
    code = tag.split("-")[0].strip().lower()
    return code if 2 <= len(code) <= 3 and code.isalpha() else None


async def wanted_draft(db: AsyncSession, settings: Settings, rec: Recording) -> Draft:
    """The settings a draft of `rec` must have been made with to stand in the transcript: the
    final pass's model and beam, the conversation's language and vocabulary."""
    conv = await db.get(Conversation, rec.conversation_id)
    language = whisper_language(conv.language if conv is not None else "")
    hotwords = await conversation_vocabulary(db, rec.conversation_id)
    return Draft(settings.transcript_model, settings.transcript_beam, language, hotwords)


async def transcribe_ahead(ctx: JobContext) -> None:
    """Handler of `transcript.ahead`: transcribe what a piece being recorded has settled."""
    recording_id = ctx.payload.get("recording_id")
    if not isinstance(recording_id, int) or isinstance(recording_id, bool):
        raise JobFailed(f"expected an integer recording_id, got {recording_id!r}")
    async with ctx.db() as db:
        rec = await db.get(Recording, recording_id)
        if rec is None or rec.state != RecordingState.RECORDING or not rec.journal_path:
            await ctx.progress(1.0, "the piece is no longer being recorded")
            return
        wanted = await wanted_draft(db, ctx.settings, rec)
        journal_rel = rec.journal_path
    if unsupported_language(wanted.model, wanted.language or "", "JUNTO_TRANSCRIPT_MODEL"):
        await ctx.progress(1.0, "the transcript model does not know this language")
        return
    try:
        path = draft_path(ctx.settings.data_dir, journal_rel)
        journal = store.inside_data_dir(ctx.settings.data_dir, journal_rel)
    except ValueError as exc:
        raise JobFailed(str(exc)) from exc
    draft = await asyncio.to_thread(usable_draft, path, wanted) or wanted
    loop = asyncio.get_running_loop()
    try:
        step = await loop.run_in_executor(_ahead_executor(), _step, journal, draft, ctx.settings)
    except Exception as exc:  # a torn journal, a decoding error: the final pass will do it all
        log.warning("transcribing recording %s ahead failed: %s", recording_id, exc)
        step = None
    async with ctx.db() as db:
        rec = await db.get(Recording, recording_id)
        still = rec is not None and rec.state == RecordingState.RECORDING
        # The piece may have ended during this look: its words still count, unless the track
        # job already stored the piece's words (a draft now would only be left behind).
        heard = await db.scalar(
            select(TrackTranscript.recording_id).where(TrackTranscript.recording_id == recording_id)
        )
        wanted_still = rec is not None and rec.state != RecordingState.FAILED and heard is None
    if step is not None and wanted_still:
        await asyncio.to_thread(write_draft, path, step)
        draft = step
    if not still:
        await ctx.progress(1.0, f"transcribed {draft.upto_s:.0f} s while it was recorded")
        return
    raise NotReady(EVERY_S, f"transcribed {draft.upto_s:.0f} s while it is recorded")
