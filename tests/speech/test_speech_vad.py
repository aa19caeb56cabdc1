"""The streaming VAD finds real speech, and only speech: silence and noise make no utterances."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from caption_support import ANA, BEN, pcm16k, speak

from junto.speech.vad import SAMPLE_RATE, StreamingVad, Utterance, VadConfig


def run(vad: StreamingVad, audio: np.ndarray, chunk: int = 320) -> list[Utterance]:
    """Feed in 20 ms chunks (what one Opus packet decodes to), then end the stream."""
    found: list[Utterance] = []
    for start in range(0, len(audio), chunk):
        found += vad.feed(audio[start : start + chunk])
    return found + vad.flush()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    folder: Path = tmp_path_factory.mktemp("vad")
    return (
        pcm16k(speak(folder, "ana", *ANA, lead_s=0.0)),
        pcm16k(speak(folder, "ben", *BEN, lead_s=0.0)),
    )


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def white_noise(seconds: float, level: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * level).astype(np.float32)


def speech_span(audio: np.ndarray) -> tuple[float, float]:
    """Where the samples are not (nearly) silent, in seconds."""
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return loud[0] / SAMPLE_RATE, loud[-1] / SAMPLE_RATE


def trimmed(audio: np.ndarray) -> np.ndarray:
    start, end = speech_span(audio)
    return audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]


def test_speech_between_silences_is_one_utterance_each(speech: tuple[np.ndarray, ...]) -> None:
    ana, ben = speech
    audio = np.concatenate([silence(1.0), ana, silence(2.0), ben, silence(1.5)])
    found = run(StreamingVad(), audio, chunk=317)  # odd chunks: windows must line up anyway
    ana_start, ana_end = speech_span(ana)
    ben_start, ben_end = speech_span(ben)
    expected = [
        (1.0 + ana_start, 1.0 + ana_end),
        (3.0 + len(ana) / SAMPLE_RATE + ben_start, 3.0 + len(ana) / SAMPLE_RATE + ben_end),
    ]
    # espeak pauses between sentences are shorter than 400 ms: one utterance per speaker turn,
    # each covering its speech within 0.3 s at both ends.
    assert len(found) == 2, [(u.start / SAMPLE_RATE, u.end / SAMPLE_RATE) for u in found]
    for utterance, (start, end) in zip(found, expected, strict=True):
        assert abs(utterance.start / SAMPLE_RATE - start) < 0.3
        assert abs(utterance.end / SAMPLE_RATE - end) < 0.3
        assert len(utterance.audio) == utterance.end - utterance.start
        assert not utterance.cut


def test_silence_and_white_noise_make_no_utterances() -> None:
    # Loud and quiet white noise, several seeds: at most one false utterance in all of it.
    false = 0
    for seed, level in enumerate((0.005, 0.05, 0.2, 0.5)):
        vad = StreamingVad()
        false += len(run(vad, np.concatenate([silence(2), white_noise(8, level, seed)])))
    assert false <= 1
    assert run(StreamingVad(), silence(10)) == []


def test_speech_in_noise_is_still_found(speech: tuple[np.ndarray, ...]) -> None:
    ana, _ = speech
    noisy = np.concatenate([silence(1), ana, silence(1)])
    noisy = noisy + white_noise(len(noisy) / SAMPLE_RATE, 0.01, 11)
    found = run(StreamingVad(), noisy)
    assert len(found) == 1
    assert found[0].end - found[0].start > 0.8 * len(ana)


def test_a_long_monologue_is_cut_into_pieces_no_longer_than_the_limit(
    speech: tuple[np.ndarray, ...],
) -> None:
    ana, ben = speech
    spoken = [trimmed(ana), trimmed(ben), trimmed(ana)]
    monologue = np.concatenate(spoken)  # about 25 s without a 400 ms pause
    config = VadConfig(max_utterance_s=8.0)
    found = run(StreamingVad(config), np.concatenate([silence(0.5), monologue, silence(1)]))
    assert len(found) >= 3
    assert all(u.end - u.start <= 8.0 * SAMPLE_RATE for u in found)
    assert sum(u.cut for u in found) >= 2
    # A piece cut by the limit is followed at once by the next: no speech falls between.
    for before, after in itertools.pairwise(found):
        if before.cut:
            assert after.start == before.end


def test_speech_still_going_when_the_stream_ends_is_flushed(
    speech: tuple[np.ndarray, ...],
) -> None:
    ana, _ = speech
    vad = StreamingVad()
    assert vad.feed(np.concatenate([silence(0.5), ana[: len(ana) // 2]])) == []
    assert vad.in_speech and vad.ongoing() is not None
    flushed = vad.flush()
    assert len(flushed) == 1
    assert not vad.in_speech
