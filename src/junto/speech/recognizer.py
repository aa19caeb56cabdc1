"""Whisper for short utterances: one caption's audio to text, cheaply, with its quality.

faster-whisper's `transcribe` pads every input to Whisper's 30 s window, so the encoder costs
the same for a 2 s caption as for 30 s of audio (about 0.3 CPU-seconds with tiny.en int8 on two
threads): most of a live caption's cost, paid again for every partial. CTranslate2's encoder
accepts shorter inputs, so for a language-known (".en") model we encode the utterance plus
`pad_s` of silence (3 s) and decode greedily from that. Measured on espeak-ng speech
(bench/README.md): the same or better WER than the 30 s window at a third of the CPU; without
the silence after the words (pad 0-1 s) Whisper loops, repeating the sentence. Any sign of
trouble (a repetitive text, a decoder that ran to its length limit, an unexpected error) falls
back to the full `transcribe`, so a caption is never worse than faster-whisper's own.

This reaches into faster-whisper internals (the feature extractor, `encode`, `get_prompt`, the
CTranslate2 `generate` call): they are those of faster-whisper 1.2.x, and a mismatch only
costs the fast path (the fallback is the public API).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from junto.speech.words import join_pieces

log = logging.getLogger("junto.speech.worker")

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100  # Whisper's mel frames (10 ms hop)
FULL_WINDOW_FRAMES = 3000  # 30 s
# Whisper's own thresholds (openai/whisper transcribe.py): above this a text repeats itself.
COMPRESSION_RATIO_MAX = 2.4
# Speech runs at about 3 tokens a second; twice that plus some is a safe ceiling, and a decoder
# that reaches it is looping.
TOKENS_PER_SECOND_MAX = 6

# Whisper's favourite inventions on breath noise and near-silence (the "thank you" of the
# subtitles it was trained on): dropped when the audio holds too little speech to have said it.
_HALLUCINATIONS = frozenset(
    {"thank you", "thanks for watching", "thank you for watching", "you", "bye", "so", "okay"}
)


@dataclass(frozen=True)
class Recognised:
    text: str
    avg_logprob: float
    no_speech_prob: float
    fast: bool  # decoded from the short window (False: faster-whisper's full transcribe)


class Recognizer:
    """One loaded model and how captions use it (greedy or `beam`, no timestamps)."""

    def __init__(
        self,
        model_path: str,
        *,
        english_only: bool,
        beam: int = 1,
        cpu_threads: int = 2,
        pad_s: float = 3.0,
        short_window: bool = True,
    ) -> None:
        from faster_whisper import WhisperModel

        # str(): WhisperModel tells names from folders by isinstance(str); int8 on the CPU.
        self.model = WhisperModel(
            str(model_path), device="cpu", compute_type="int8", cpu_threads=cpu_threads
        )
        self.english_only = english_only
        self.beam = max(1, beam)
        self.pad_frames = int(pad_s * FRAMES_PER_SECOND)
        self._fast: tuple[Any, list[int], list[int] | None] | None = None
        # The decoder prompt for each conversation's hotwords (a handful of conversations at
        # once; tokenizing the same text for every caption would be wasted work).
        self._prompts: dict[str, list[int]] = {}
        if short_window and english_only:
            try:
                self._fast = self._prepare_fast()
            except Exception:
                log.warning("short-window decoding unavailable; using transcribe", exc_info=True)

    def _prepare_fast(self) -> tuple[Any, list[int], list[int] | None]:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self.model
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en"
        )
        prompt = model.get_prompt(tokenizer, [], without_timestamps=True)
        return tokenizer, prompt, get_suppressed_tokens(tokenizer, (-1,))

    def _prompt(self, hotwords: str) -> list[int]:
        assert self._fast is not None
        tokenizer, prompt, _ = self._fast
        if not hotwords:
            return prompt
        cached = self._prompts.get(hotwords)
        if cached is None:
            if len(self._prompts) >= 64:
                self._prompts.clear()  # conversations long over; rebuilt on demand
            cached = self._prompts[hotwords] = self.model.get_prompt(
                tokenizer, [], without_timestamps=True, hotwords=hotwords
            )
        return cached

    def __call__(
        self, audio: npt.NDArray[np.float32], hotwords: str = "", *, beam: int | None = None
    ) -> Recognised:
        """`audio`'s text; `hotwords` (names, terms: junto.speech.vocabulary) bias its
        spelling the way the final transcript's do; `beam` instead of the recognizer's own
        (a revision, which can wait, searches wider than a first caption)."""
        width = max(1, beam) if beam is not None else self.beam
        if self._fast is not None and len(audio):
            try:
                fast = self._short_window(audio, hotwords, width)
                if fast is not None:
                    return fast
            except Exception:
                log.warning("short-window decoding failed; using transcribe", exc_info=True)
        return self._full(audio, hotwords, width)

    def _short_window(
        self, audio: npt.NDArray[np.float32], hotwords: str, beam: int
    ) -> Recognised | None:
        from faster_whisper.transcribe import get_compression_ratio

        assert self._fast is not None
        tokenizer, _, suppress = self._fast
        prompt = self._prompt(hotwords)
        model = self.model
        features = model.feature_extractor(audio)
        frames = features.shape[-1]
        target = min(FULL_WINDOW_FRAMES, frames + self.pad_frames)
        target -= target % 2  # the encoder's convolution halves the frames
        if frames < target:
            features = np.pad(features, ((0, 0), (0, target - frames)))
        else:
            features = features[:, :target]
        encoded = model.encode(features)
        budget = int(len(audio) / SAMPLE_RATE * TOKENS_PER_SECOND_MAX) + 12
        # CTranslate2's Whisper `generate` stops after max_length / 2 new tokens (measured with
        # 4.x: 40 -> 20, 122 -> 61), so asking for `budget` silently cut every caption denser
        # than about 3 tokens a second before its last words ("...nowhere to play in"): ask for
        # twice, and hold the decoder to `budget` ourselves.
        max_length = min(model.max_length, len(prompt) + 2 * budget)
        result = model.model.generate(
            encoded,
            [prompt],
            beam_size=beam,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppress,
        )[0]
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        if (
            len(tokens) >= min(budget, (max_length - len(prompt)) // 2)
            or (text and get_compression_ratio(text) > COMPRESSION_RATIO_MAX)
            or repeats_itself(text)
        ):
            return None  # looping: let the full window try
        # faster-whisper's average log probability (length penalty 1).
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else -math.inf
        return Recognised(text, float(avg_logprob), float(result.no_speech_prob), fast=True)

    def _full(self, audio: npt.NDArray[np.float32], hotwords: str, beam: int) -> Recognised:
        segments, _info = self.model.transcribe(
            audio,
            language="en" if self.english_only else None,
            beam_size=beam,
            # The VAD already cut this utterance; its own pass would only cost time.
            vad_filter=False,
            # Each caption stands alone: a misheard one must not steer the next.
            condition_on_previous_text=False,
            without_timestamps=True,
            # One pass: the temperature fallback re-decodes unclear audio up to five times,
            # which a live caption cannot wait for (the final transcript can).
            temperature=0.0,
            hotwords=hotwords or None,
        )
        texts: list[str] = []
        logprobs: list[float] = []
        no_speech = 0.0
        for segment in segments:
            no_speech = max(no_speech, float(segment.no_speech_prob))
            texts.append(segment.text)  # with Whisper's leading space (junto.speech.words)
            logprobs.append(float(segment.avg_logprob))
        text = without_repeats(join_pieces(texts))
        return Recognised(text, min(logprobs) if logprobs else -math.inf, no_speech, fast=False)


def _repeat_at(words: list[str], longest: int | None) -> tuple[int, int] | None:
    keys = ["".join(ch for ch in w.lower() if ch.isalnum()) for w in words]
    most = len(keys) // 2 if longest is None else min(longest, len(keys) // 2)
    for n in range(2, most + 1):
        for i in range(len(keys) - 2 * n + 1):
            if all(keys[i : i + n]) and keys[i : i + n] == keys[i + n : i + 2 * n]:
                return i, n
    return None


def repeats_itself(text: str, longest: int | None = None) -> bool:
    """True when a phrase of two or more words (of any length, or up to `longest`) comes
    twice in a row ("welcome to the stage. welcome to the stage. welcome to"): Whisper looping
    on a short input, or saying a turn's last sentence again after its pause. A caption is too
    short for the compression-ratio test to notice, and people rarely repeat a whole phrase
    back to back ("very very" is one word repeated, and allowed)."""
    return _repeat_at(text.split(), longest) is not None


def without_repeats(text: str, longest: int | None = None) -> str:
    """`text` with phrases repeated back to back said once (the last resort against a loop
    when even the full window repeats itself)."""
    words = text.split()
    while (found := _repeat_at(words, longest)) is not None:
        i, n = found
        del words[i + n : i + 2 * n]
    return " ".join(words)


# Mean speech probability (vad.Utterance.voiced) above which the VAD is sure somebody spoke.
# Measured on espeak-ng: lone "Okay.", "Thank you.", "Bye." score 0.89-0.95, sentences
# 0.94-0.98; white noise never reaches the VAD's threshold (0.5) at all.
VOICED_SURE = 0.85


def same_words(a: str, b: str) -> bool:
    """Whether two texts say the same words (case, punctuation and spacing aside)."""

    def words(text: str) -> list[str]:
        return "".join(ch if ch.isalnum() or ch == "'" else " " for ch in text.lower()).split()

    return words(a) == words(b)


def plausible(found: Recognised, speech_s: float, voiced: float = 0.0) -> bool:
    """False for Whisper's inventions on near-silence and noise. `voiced` is the VAD's
    confidence in the audio: when it is sure somebody spoke, a short "Okay." or "Thank you."
    that Whisper itself is unsure of is what they said (measured: both used to be dropped)."""
    words = "".join(ch for ch in found.text.lower() if ch.isalnum() or ch in " '").strip()
    if not words:
        return False  # empty, punctuation only
    stripped = found.text.strip()
    if stripped.startswith(("[", "(", "*")) and stripped.endswith(("]", ")", "*")):
        return False  # "(music)", "[BLANK_AUDIO]", "*sighs*": not words anybody said
    if voiced >= VOICED_SURE:
        return True
    if found.no_speech_prob > 0.6 and found.avg_logprob < -0.5:
        return False  # the model itself thinks nobody spoke
    return not (words in _HALLUCINATIONS and (speech_s < 0.6 or found.avg_logprob < -1.0))
