"""Streaming voice activity detection: cut a speaker's live audio into utterances.

Whisper transcribes a finished piece of audio, so live captions need to know when someone has
stopped talking. This runs the silero VAD that faster-whisper bundles (an ONNX model) one
32 ms window at a time, carrying the model's recurrent state (h, c) and the 64 samples of
context it expects, exactly as `SileroVADModel.__call__` does for a whole file.

Rules (after silero's own `get_speech_timestamps`): speech starts at a window with probability
>= `threshold`; it ends after `min_silence_ms` of windows below `neg_threshold` (windows in
between keep the current state); an utterance gets `pad_before_ms` of audio before the first
speech window and `pad_after_ms` after the last; one with less than `min_speech_ms` of speech
is dropped (a cough, a click). A monologue is cut at `max_utterance_s` so that its captions
still come, at the quietest window of the last `cut_search_s` (a breath between phrases
rather than the middle of a word).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
WINDOW = 512  # samples per VAD step at 16 kHz (32 ms): what the silero model expects
CONTEXT = 64  # samples of the previous window the model sees with each step

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_silence_ms: int = 400
    pad_before_ms: int = 200
    pad_after_ms: int = 100
    min_speech_ms: int = 200
    max_utterance_s: float = 12.0
    cut_search_s: float = 2.0
    # Run the model once per this many windows (96 ms): one call for three windows costs about
    # what one costs, and decisions wait at most two windows longer.
    batch_windows: int = 3


@dataclass(frozen=True)
class Utterance:
    """A finished piece of speech. Sample indexes count from the stream's first sample fed."""

    start: int  # first sample, padding included
    end: int  # one past the last sample, padding included
    speech_end: int  # one past the last speech window (without the padding after)
    audio: Audio
    cut: bool = False  # ended by the length limit, not by a pause: the speaker goes on
    # Mean speech probability of its speech windows (those at or above the threshold): how
    # sure the VAD is that somebody spoke. Whisper's own confidence is low on a lone short word
    # ("Okay.", "Thank you."), the VAD's is not (recognizer.plausible).
    voiced: float = 0.0

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


class _Silero:
    """The bundled silero model, stepped one window at a time with its state kept here."""

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session  # cached by faster-whisper: one per process
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def steps(self, windows: Audio) -> list[float]:
        """Speech probability of each row of `windows` (n, 512), in order. The model carries
        its state from row to row (as silero's batched call over a file does), so one call
        for several windows equals stepping them one by one, for a fraction of the overhead."""
        contexts = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT:]])
        frames = np.concatenate([contexts, windows], axis=1)
        probs, self._h, self._c = self._session.run(
            None, {"input": frames, "h": self._h, "c": self._c}
        )
        self._context = windows[-1, -CONTEXT:].copy()
        return [float(p) for p in np.asarray(probs).reshape(-1)]


class StreamingVad:
    """Feed 16 kHz mono float32 audio in any chunk sizes; get utterances as they finish."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = c = config or VadConfig()
        self._model = _Silero()
        ms = SAMPLE_RATE // 1000
        self._pad_before = c.pad_before_ms * ms
        self._pad_after = c.pad_after_ms * ms
        self._min_silence = c.min_silence_ms * ms
        self._min_speech = c.min_speech_ms * ms
        self._max_len = int(c.max_utterance_s * SAMPLE_RATE)
        self._cut_search = int(c.cut_search_s * SAMPLE_RATE)
        self._pending = np.zeros(0, dtype=np.float32)  # less than one window, not yet stepped
        self._chunks: list[Audio] = []  # kept audio, starting at sample self._kept_from
        self._kept_from = 0
        self._fed = 0  # samples stepped so far (the next window starts here)
        self._in_speech = False
        self._start = 0  # current utterance's first sample (padding included)
        self._speech_start = 0  # its first speech window
        self._silence_from: int | None = None  # start of the current run of quiet windows
        # Per window since the utterance began: (window start, probability, energy).
        self._windows: list[tuple[int, float, float]] = []
        self._last_end = 0  # the previous utterance's end: padding never reaches back past it

    @property
    def samples_fed(self) -> int:
        return self._fed + len(self._pending)

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def ongoing_start(self) -> int:
        """First sample of the utterance in progress (meaningful while `in_speech`)."""
        return self._start

    def ongoing(self) -> tuple[int, Audio] | None:
        """(start sample, audio so far) of the utterance in progress, for partial captions."""
        if not self._in_speech:
            return None
        return self._start, self._slice(self._start, self._fed)

    def feed(self, audio: Audio) -> list[Utterance]:
        """Step the model over the whole windows now available (once at least `batch_windows`
        are); return the utterances that finished."""
        self._pending = np.concatenate([self._pending, np.asarray(audio, dtype=np.float32)])
        if len(self._pending) < self.config.batch_windows * WINDOW:
            return []
        return self._run_pending()

    def flush(self) -> list[Utterance]:
        """The stream ended: finish the utterance in progress (if it holds enough speech)."""
        done = self._run_pending()
        if self._in_speech:
            speech_end = self._silence_from if self._silence_from is not None else self._fed
            utterance = self._finish(speech_end, min(speech_end + self._pad_after, self._fed))
            if utterance is not None:
                done.append(utterance)
        return done

    def _run_pending(self) -> list[Utterance]:
        whole = len(self._pending) - len(self._pending) % WINDOW
        if not whole:
            return []
        windows = self._pending[:whole].reshape(-1, WINDOW)
        self._pending = self._pending[whole:]
        done: list[Utterance] = []
        for window, prob in zip(windows, self._model.steps(windows), strict=True):
            self._chunks.append(window)
            at = self._fed
            self._fed += WINDOW
            utterance = self._step(at, window, prob)
            if utterance is not None:
                done.append(utterance)
        self._trim()
        return done

    # ---- internals ------------------------------------------------------------------------------

    def _step(self, at: int, window: Audio, prob: float) -> Utterance | None:
        c = self.config
        if not self._in_speech:
            if prob >= c.threshold:
                self._in_speech = True
                self._speech_start = at
                self._start = max(at - self._pad_before, self._last_end, self._kept_from)
                self._silence_from = None
                self._windows = [(at, prob, _energy(window))]
            return None
        self._windows.append((at, prob, _energy(window)))
        if prob >= c.threshold:
            self._silence_from = None
        elif prob < c.neg_threshold and self._silence_from is None:
            self._silence_from = at
        end = at + WINDOW
        if self._silence_from is not None and end - self._silence_from >= self._min_silence:
            speech_end = self._silence_from
            return self._finish(speech_end, min(speech_end + self._pad_after, end))
        if end - self._start >= self._max_len:
            return self._cut(end)
        return None

    def _finish(self, speech_end: int, end: int) -> Utterance | None:
        self._in_speech = False
        self._silence_from = None
        if speech_end - self._speech_start < self._min_speech:
            self._windows = []
            return None  # too short to be words: a click or a cough
        voiced = self._voiced()
        self._windows = []
        self._last_end = end
        return Utterance(self._start, end, speech_end, self._slice(self._start, end), voiced=voiced)

    def _voiced(self) -> float:
        probs = [p for _, p, _ in self._windows if p >= self.config.threshold]
        return float(np.mean(probs)) if probs else 0.0

    def _cut(self, end: int) -> Utterance:
        # The quietest window of the last cut_search_s: lowest speech probability, then lowest
        # energy. The next utterance starts right there, still in speech.
        search_from = end - self._cut_search
        candidates = [w for w in self._windows if w[0] >= search_from] or self._windows[-1:]
        at, _, _ = min(candidates, key=lambda w: (w[1], w[2]))
        cut = at + WINDOW // 2
        utterance = Utterance(
            self._start, cut, cut, self._slice(self._start, cut), cut=True, voiced=self._voiced()
        )
        self._start = self._speech_start = self._last_end = cut
        self._windows = [w for w in self._windows if w[0] >= at]
        if self._silence_from is not None and self._silence_from < cut:
            self._silence_from = cut
        return utterance

    def _slice(self, start: int, end: int) -> Audio:
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        joined = np.concatenate(self._chunks)
        return joined[max(0, start - self._kept_from) : max(0, end - self._kept_from)].copy()

    def _trim(self) -> None:
        # Keep the utterance in progress, or the padding a new one may reach back to.
        keep_from = self._start if self._in_speech else self._fed - self._pad_before
        while self._chunks and self._kept_from + len(self._chunks[0]) <= keep_from:
            self._kept_from += len(self._chunks.pop(0))


def _energy(window: Audio) -> float:
    return float(np.sqrt(np.mean(np.square(window))))
