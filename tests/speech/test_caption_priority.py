"""A final caption never waits behind work that can wait (a partial caption, a revision).

With four speakers, a final queued behind a partial of someone's long turn arrived 2-4 s late
(bench/pipeline.py). The worker now runs finals on a thread of their own. Here the background
thread's recogniser is held for as long as the test likes (a machine too busy to finish a
partial): the other speaker's final must still arrive. The VAD and the Opus path are real; only
the recognisers' text is made up, since what is tested is who waits for whom.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from caption_support import ANA, BEN, Inbox, opus_packets, silence_packets, speak

from junto.speech.caption_worker import CaptionWorker, WorkerConfig
from junto.speech.recognizer import Recognised, Recognizer

SPEAKER_A = (1, 1)
SPEAKER_B = (1, 2)


class HeldRecognizer(Recognizer):
    """Says `text` for any audio; the second one made (the background thread's) first waits
    until `release` is set, as a partial on an overloaded machine would. A Recognizer to the
    worker, which only calls it; it loads no model (Recognizer.__init__ is not called)."""

    made: list[HeldRecognizer] = []

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.held = len(HeldRecognizer.made) == 1
        HeldRecognizer.made.append(self)

    def __call__(
        self, audio: npt.NDArray[np.float32], hotwords: str = "", *, beam: int | None = None
    ) -> Recognised:
        self.calls += 1
        if self.held and len(audio) > 8000:  # the warm-up's half second passes
            self.release.wait(60)
        return Recognised("words people said", -0.1, 0.0, fast=True)


def test_a_final_caption_does_not_wait_behind_a_slow_partial(tmp_path: Path) -> None:
    HeldRecognizer.made.clear()
    inbox = Inbox()
    worker = CaptionWorker(
        WorkerConfig(model="unused", partial_every_s=0.5, revisions=False),
        inbox,
        recognizer=HeldRecognizer,
    )
    worker.start()
    try:
        ana = opus_packets(speak(tmp_path, "ana", *ANA, lead_s=0.2))
        ben = opus_packets(speak(tmp_path, "ben", *BEN, lead_s=0.2))
        t0 = time.time()
        # A is mid-sentence (no pause yet): the background thread takes a partial of it, and
        # is held there.
        for i, packet in enumerate(ana[: len(ana) // 2]):
            worker.packet(SPEAKER_A, t0 + (i + 1) * 0.02, packet)
        background = HeldRecognizer.made

        def partial_started() -> bool:
            return len(background) == 2 and background[1].calls >= 1

        deadline = time.monotonic() + 30
        while not partial_started():
            assert time.monotonic() < deadline, "no partial of the ongoing turn was started"
            time.sleep(0.02)
        # B says a whole utterance and stops.
        for i, packet in enumerate(ben + silence_packets(1.5)):
            worker.packet(SPEAKER_B, t0 + (i + 1) * 0.02, packet)
        final = inbox.wait_for(
            lambda m: m["type"] == "final" and m["user_id"] == SPEAKER_B[1], timeout=20
        )
        assert final["text"] == "words people said"
        assert not background[1].release.is_set(), "the partial was still being worked on"
    finally:
        for made in HeldRecognizer.made:
            made.release.set()
        worker.stop()


def test_two_captions_with_the_words_of_their_revision_still_become_one() -> None:
    """A revision that ran before a sentence's last piece joined (a stream that stalled) and
    that piece's own caption are two captions; heard again whole, the same words must come
    out as one caption, not stay two (the CI run of stop 12 showed two)."""
    import numpy as np

    from junto.speech.caption_worker import _Group, _Job, _Piece
    from junto.speech.vad import Utterance

    inbox = Inbox()
    worker = CaptionWorker(WorkerConfig(model="unused"), inbox, recognizer=HeldRecognizer)

    def piece(seq: int, start: int, text: str) -> _Piece:
        audio = np.full(16_000, 0.1, dtype=np.float32)
        utterance = Utterance(start, start + 16_000, start + 15_000, audio, voiced=0.95)
        return _Piece(seq, _Job(SPEAKER_A, 1, utterance, 1.0, 2.0, 2.0), text)

    first, second = piece(7, 0, "words people"), piece(8, 16_000, "said")
    group = _Group(SPEAKER_A, 1, [first, second], [7, 8], ["words people", "said"])
    HeldRecognizer.made.clear()
    worker._revise(HeldRecognizer(), group, group.pieces, [7, 8], ["words people", "said"])
    [revised] = [m for m in inbox.messages if m["type"] == "revised"]
    assert revised["replaces"] == [7, 8] and revised["text"] == "words people said"
    assert group.shown == [revised["seq"]]
