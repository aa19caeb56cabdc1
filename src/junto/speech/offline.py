"""Offline transcription of a whole recorded file into words with timings (the final pass).

The live captions (junto.speech.live) must keep up, so they decode greedily in short pieces; the
final transcript can afford to read each speaker's recording once, in full, with the model and
beam configured for it (`transcript_model`, `transcript_beam`). It is blocking CPU work: callers
run it in a worker process's thread (`asyncio.to_thread`), never on a web or realtime loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from junto.config import Settings
from junto.speech.models import is_english_only, load_model
from junto.speech.words import from_piece


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
) -> list[Word]:
    """Every word spoken in the audio of `path` (any format ffmpeg/PyAV reads, e.g. WebM).

    `progress(fraction)` is called from this thread as segments are decoded (0..1 of the file's
    duration). Silence is skipped by the VAD, so cost follows speech, not length. `language`
    (e.g. the conversation's, "de") guides multilingual models; None lets them detect it.
    `hotwords` (junto.speech.vocabulary) are names and terms the speakers are likely to say.
    """
    # Loaded once per process (junto.speech.models): a worker transcribes track after track.
    model = load_model(model_name_or_path, settings)
    # ".en" models know only English; telling them skips language detection on the first 30 s.
    if is_english_only(model_name_or_path):
        language = "en"
    elif language not in model.supported_languages:
        language = None  # a tag Whisper does not know: let it detect the language instead
    segments, info = model.transcribe(
        str(path),
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
        for w in segment.words or ():
            text, joins = from_piece(w.word, first=not words)
            if not text:
                continue
            start = max(0.0, float(w.start))
            end = max(start, float(w.end))
            if duration > 0:
                start, end = min(start, duration), min(end, duration)
            words.append(Word(start, end, text, float(w.probability), joins))
        if progress is not None and duration > 0:
            progress(min(1.0, float(segment.end) / duration))
    if progress is not None:
        progress(1.0)
    return words
