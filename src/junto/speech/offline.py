"""Offline transcription of a whole recorded file into words with timings (the final pass).

The live captions (junto.speech.live) must keep up, so they decode greedily in short pieces; the
final transcript can afford to read each speaker's recording once, in full, with the model and
beam configured for it (`transcript_model`, `transcript_beam`). It is blocking CPU work: callers
run it in a worker process's thread (`asyncio.to_thread`), never on a web or realtime loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from junto.config import Settings
from junto.speech.models import is_english_only, load_model
from junto.speech.words import from_piece

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

SAMPLE_RATE = 16_000


# Whisper sometimes ends a segment with a word nobody said ("... before Friday. today."), the
# decoder going on into the silence after the speech; it gives such a word a probability of a
# few thousandths (bench/pipeline.py: 0.002 and 0.005, where words really said, misheard ones
# included, were above 0.2).
INVENTED_TAIL_PROBABILITY = 0.02


class _Timed(Protocol):
    word: str
    probability: float


_W = TypeVar("_W", bound=_Timed)


def without_invented_tail(words: list[_W]) -> list[_W]:
    """A segment's words without the ones at its end Whisper barely believed in."""
    end = len(words)
    while end and words[end - 1].probability < INVENTED_TAIL_PROBABILITY:
        end -= 1
    return words[:end]


@dataclass(frozen=True)
class Word:
    """One recognised word; times in seconds from the start of the file. `text` has no
    surrounding spaces; `joins` says it continues the word before (",500" after "4", "%" after
    "12": Whisper gave it no leading space), see junto.speech.words."""

    start_s: float
    end_s: float
    text: str
    probability: float
    joins: bool = False


def transcribe_file(
    path: Path | str,
    model_name_or_path: str,
    beam: int,
    settings: Settings,
    progress: Callable[[float], None] | None = None,
    language: str | None = None,
    hotwords: str = "",
    start_s: float = 0.0,
) -> list[Word]:
    """Every word spoken in the audio of `path` (any format ffmpeg/PyAV reads, e.g. WebM), from
    `start_s` on (what came before was transcribed while the piece was recorded:
    junto.transcripts.ahead); times are from the start of the file either way.

    `progress(fraction)` is called from this thread as segments are decoded (0..1 of the file's
    duration). Silence is skipped by the VAD, so cost follows speech, not length. `language`
    (e.g. the conversation's, "de") guides multilingual models; None lets them detect it.
    `hotwords` (junto.speech.vocabulary) are names and terms the speakers are likely to say.
    """
    audio = decode_16k(path)
    return transcribe_audio(
        audio[int(max(0.0, start_s) * SAMPLE_RATE) :],
        model_name_or_path,
        beam,
        settings,
        progress=progress,
        language=language,
        hotwords=hotwords,
        offset_s=max(0.0, start_s),
    )


def decode_16k(path: Path | str) -> npt.NDArray[np.float32]:
    """The audio of `path` as 16 kHz mono float32, as Whisper hears it."""
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE), dtype=np.float32)


def transcribe_audio(
    audio: npt.NDArray[np.float32],
    model_name_or_path: str,
    beam: int,
    settings: Settings,
    *,
    progress: Callable[[float], None] | None = None,
    language: str | None = None,
    hotwords: str = "",
    offset_s: float = 0.0,
    model: WhisperModel | None = None,
) -> list[Word]:
    """The words of `audio` (16 kHz mono) with times `offset_s` later than in it; `model`, if
    given, instead of the process's shared one (junto.transcripts.ahead has its own)."""
    if model is None:
        # Loaded once per process (junto.speech.models): a worker transcribes track after track.
        model = load_model(model_name_or_path, settings)
    # ".en" models know only English; telling them skips language detection on the first 30 s.
    if is_english_only(model_name_or_path):
        language = "en"
    elif language not in model.supported_languages:
        language = None  # a tag Whisper does not know: let it detect the language instead
    segments, info = model.transcribe(
        audio,
        beam_size=max(1, beam),
        language=language,
        word_timestamps=True,
        vad_filter=True,
        # Without the previous text as prompt a misheard sentence cannot derail the next ones
        # (Whisper's known repetition loops on long files).
        condition_on_previous_text=False,
        hotwords=hotwords or None,
    )
    duration = float(info.duration or 0.0)
    words: list[Word] = []
    for segment in segments:
        for w in without_invented_tail(list(segment.words or ())):
            text, joins = from_piece(w.word, first=not words)
            if not text:
                continue
            start = max(0.0, float(w.start))
            end = max(start, float(w.end))
            if duration > 0:
                start, end = min(start, duration), min(end, duration)
            words.append(Word(start + offset_s, end + offset_s, text, float(w.probability), joins))
        if progress is not None and duration > 0:
            progress(min(1.0, float(segment.end) / duration))
    if progress is not None:
        progress(1.0)
    return words


@dataclass(frozen=True)
class Settled:
    """A place where a recording being made may be cut: `until_s`, with `speech_s` seconds of
    speech between where its last cut was and there."""

    until_s: float
    speech_s: float


def settled_until(
    audio: npt.NDArray[np.float32],
    from_s: float,
    *,
    pause_s: float = 2.0,
    keep_s: float = 2.0,
    enough_s: float | None = None,
) -> Settled | None:
    """Where the audio after `from_s` may be cut without cutting what the final pass would
    hear as one: the middle of the last pause of at least `pause_s` (the final pass's own VAD
    joins speech across shorter pauses) that ends `keep_s` before the audio does (the speaker
    may be mid-word at the very end). None if there is no such pause yet. Silence to the end
    is settled up to `keep_s` before the end. With `enough_s`, the first such pause with at
    least that much speech before it (a bounded piece of work) rather than the last."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    begin = int(max(0.0, from_s) * SAMPLE_RATE)
    stretch = audio[begin:]
    limit = len(stretch) - int(keep_s * SAMPLE_RATE)
    if limit <= 0:
        return None
    # No padding: the gaps between the stretches are the pauses themselves.
    options = VadOptions(min_silence_duration_ms=int(pause_s * 1000), speech_pad_ms=0)
    speech = get_speech_timestamps(stretch, options)
    if not speech:
        return Settled((begin + limit) / SAMPLE_RATE, 0.0)
    gap = pause_s * SAMPLE_RATE
    cut: tuple[int, int] | None = None  # (sample, speech samples before it)
    spoken = 0
    for before, after in itertools.pairwise([*speech, {"start": limit + int(gap), "end": 0}]):
        spoken += before["end"] - before["start"]
        gap_end = min(after["start"], limit)
        if gap_end - before["end"] >= gap / 2 and after["start"] - before["end"] >= gap:
            cut = ((before["end"] + gap_end) // 2, spoken)
            if enough_s is not None and spoken >= enough_s * SAMPLE_RATE:
                break  # the first cut with enough speech before it
    if cut is None:
        return None
    return Settled((begin + cut[0]) / SAMPLE_RATE, cut[1] / SAMPLE_RATE)
