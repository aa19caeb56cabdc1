"""One caption's audio to text: the short window and the full `transcribe` agree, and Whisper's
inventions on near-silence are dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from caption_support import ANA, MONOLOGUE, pcm16k, speak

from junto.config import Settings
from junto.speech.models import resolve_model
from junto.speech.recognizer import (
    Recognised,
    Recognizer,
    plausible,
    repeats_itself,
    without_repeats,
)
from speech_scoring import normalize, wer


def test_short_window_and_full_transcribe_both_read_the_speaker(tmp_path: Path) -> None:
    model = resolve_model("tiny.en", Settings(data_dir=tmp_path))
    audio = pcm16k(speak(tmp_path, "ana", *ANA))
    short = Recognizer(model, english_only=True)(audio)
    full = Recognizer(model, english_only=True, short_window=False)(audio)
    assert short.fast and not full.fast
    assert wer(ANA[1], short.text) <= 0.2 and wer(ANA[1], full.text) <= 0.2
    assert short.no_speech_prob < 0.5 and short.avg_logprob > -1.0
    quiet = Recognizer(model, english_only=True)(np.zeros(16_000, dtype=np.float32))
    assert not plausible(quiet, 0.0)


def test_whispers_inventions_on_near_silence_are_not_captions() -> None:
    def said(text: str, logprob: float = -0.3, no_speech: float = 0.05) -> Recognised:
        return Recognised(text, logprob, no_speech, fast=True)

    assert plausible(said("Rivers shaped the city."), 2.0)
    assert plausible(said("Thank you."), 1.2)  # said, clearly, long enough
    assert not plausible(said("Thank you."), 0.3)  # a breath does not say thank you
    assert not plausible(said("Thank you.", logprob=-1.4), 1.5)
    assert not plausible(said(""), 1.0)
    assert not plausible(said(" ... "), 1.0)
    assert not plausible(said("(music)"), 3.0)
    assert not plausible(said("[BLANK_AUDIO]"), 3.0)
    assert not plausible(said("Some words", logprob=-0.9, no_speech=0.8), 2.0)
    assert plausible(said("Some words", logprob=-0.2, no_speech=0.8), 2.0)  # confident speech
    # Whisper unsure, the VAD sure somebody spoke (measured on a lone "Okay." and "Thank you."):
    assert plausible(said("Okay", logprob=-1.07, no_speech=0.22), 0.7, voiced=0.9)
    assert plausible(said("Thank You", logprob=-0.77, no_speech=0.71), 0.9, voiced=0.94)
    assert not plausible(said("Thank You", logprob=-0.77, no_speech=0.71), 0.9, voiced=0.6)
    assert not plausible(said("(music)"), 3.0, voiced=0.99)


def test_a_long_dense_utterance_is_decoded_to_its_last_word(tmp_path: Path) -> None:
    """18 s of speech without a pause (what a revision decodes): the short window used to stop
    at half its token budget without noticing, and the caption ended "...nowhere to play in"."""
    model = resolve_model("tiny.en", Settings(data_dir=tmp_path))
    audio = pcm16k(speak(tmp_path, "monologue", *MONOLOGUE))
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    audio = audio[loud[0] - 3200 : loud[-1] + 1600]  # as the VAD cuts it: 0.2 s before, 0.1 after
    found = Recognizer(model, english_only=True)(audio)
    assert wer(MONOLOGUE[1], found.text) <= 0.1, found.text
    assert normalize(found.text).endswith("summer months"), found.text


def test_a_looping_caption_is_caught_and_said_once() -> None:
    # Seen through a real browser: tiny.en on a 1.5 s utterance looped "Welcome to the stage."
    loop = "Welcome to the stage. Welcome to the stage. Welcome to"
    assert repeats_itself(loop)
    assert without_repeats("Welcome to the stage. Welcome to the stage.") == "Welcome to the stage."
    # A turn re-heard as one (CI): its last sentence said again after the pause, ten words long.
    once = "Next year the council will raise the walls along the bank"
    said = f"The river flooded the old market twice this spring {once} {once}"
    assert repeats_itself(said)
    assert normalize(without_repeats(said)) == normalize(
        "The river flooded the old market twice this spring Next year the council will raise "
        "the walls along the bank"
    )
    for fine in ("Water brought trade, and trade brought people.", "very very good", "that that"):
        assert not repeats_itself(fine)
        assert without_repeats(fine) == fine
