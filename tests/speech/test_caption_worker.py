"""The caption worker process: real Opus packets in, captions out, whatever else it is fed.

One worker (real faster-whisper tiny.en) serves the whole module, as it serves every speaker
of a node. Packets carry synthetic wall clocks 20 ms apart and are sent as fast as the pipe
takes them, so the tests run faster than real time with a correct timeline.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from caption_support import (
    ANA,
    BEN,
    MONOLOGUE,
    PAUSED,
    SHORT_WORDS,
    TURN,
    Inbox,
    garbage_packets,
    interleave,
    noise_packets,
    opus_packets,
    script,
    silence_packets,
    speak,
)

from junto.config import Settings
from junto.speech.caption_process import CaptionProcess
from junto.speech.caption_worker import WorkerConfig
from junto.speech.models import resolve_model
from speech_scoring import corpus_wer, normalize, wer


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CaptionProcess, Inbox]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    inbox = Inbox()
    process = CaptionProcess(
        WorkerConfig(model=resolve_model("tiny.en", settings)), inbox, queue_max=100_000
    )
    process.start(spawn_now=True)
    inbox.wait_for(lambda m: m["type"] == "ready", timeout=60)
    yield process, inbox
    process.stop()


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, list[bytes]]]:
    folder: Path = tmp_path_factory.mktemp("voices")
    return {
        "ana": (ANA[1], opus_packets(speak(folder, "ana", *ANA))),
        "ben": (BEN[1], opus_packets(speak(folder, "ben", *BEN))),
    }


def send(process: CaptionProcess, items: list[tuple[tuple[int, int], bytes, int]]) -> float:
    """Send interleaved packets stamped 20 ms apart per stream; returns the first wall clock."""
    t0 = time.time()
    for key, packet, index in items:
        assert process.send_packet(key, t0 + (index + 1) * 0.02, packet)
    return t0


def drained(process: CaptionProcess, inbox: Inbox, token: str) -> None:
    process.drain(token)
    inbox.wait_for(lambda m: m["type"] == "drained" and m["token"] == token, timeout=90)


def test_two_speakers_beside_garbage_noise_and_silence_get_their_own_captions(
    worker: tuple[CaptionProcess, Inbox], voices: dict[str, tuple[str, list[bytes]]]
) -> None:
    process, inbox = worker
    pid = process.pid
    ana_text, ana = voices["ana"]
    ben_text, ben = voices["ben"]
    silence = silence_packets(3.0)
    # Speaker 1 and 2 in conversation 10 talk in turn; in conversation 11 one stream is random
    # bytes, one white noise, one silence, all at the same time.
    ana_key, ben_key = (10, 1), (10, 2)
    garbage_key, noise_key, quiet_key = (11, 3), (11, 4), (11, 5)
    items = interleave(
        [(ana_key, p) for p in ana + silence + silence],
        [(ben_key, p) for p in silence + silence + ben],
        [(garbage_key, p) for p in garbage_packets(len(ana) + 200)],
        [(noise_key, p) for p in noise_packets(len(ana) * 0.02, level=0.3)],
        [(quiet_key, p) for p in silence * 4],
    )
    t0 = send(process, items)
    for key in (ana_key, ben_key, garbage_key, noise_key, quiet_key):
        process.end_stream(key)
    drained(process, inbox, "speakers")

    ana_captions = inbox.finals(1, 10)
    ben_captions = inbox.finals(2, 10)
    ana_said = [m["text"] for m in ana_captions]
    ben_said = [m["text"] for m in ben_captions]
    assert corpus_wer([(ana_text, ana_said), (ben_text, ben_said)]) <= 0.2
    # Each stream's captions are that speaker's words, not the other's.
    assert wer(ben_text, ana_said) - wer(ana_text, ana_said) >= 0.5
    assert wer(ana_text, ben_said) - wer(ben_text, ben_said) >= 0.5
    # On the packets' timeline: Ana from the start, Ben after her and 6 s of his silence.
    assert ana_captions[0]["start"] >= t0 and ana_captions[-1]["end"] <= t0 + len(ana) * 0.02 + 0.5
    assert ben_captions[0]["start"] >= t0 + 6.0
    for m in ana_captions + ben_captions:
        assert m["start"] < m["utterance_end"] <= m["end"]
    # Noise and silence say nothing; the garbage stream did not take the worker down.
    assert inbox.finals(4, 11) == [] and inbox.finals(5, 11) == []
    assert process.pid == pid
    process.request_stats()
    stats = inbox.wait_for(lambda m: m["type"] == "stats")
    assert stats["bad_packets"] > 0


def test_a_killed_worker_is_replaced_and_captions_go_on(
    worker: tuple[CaptionProcess, Inbox], voices: dict[str, tuple[str, list[bytes]]]
) -> None:
    process, inbox = worker
    ana_text, ana = voices["ana"]
    old_pid = process.pid
    assert old_pid is not None
    restarts = process.restarts
    os.kill(old_pid, signal.SIGKILL)
    inbox.wait_for(lambda m: m["type"] == "exited", timeout=10)
    # The next packets start a new worker (the reader asked the writer for one).
    send(process, [((12, 1), p, i) for i, p in enumerate(ana)])
    process.end_stream((12, 1))
    drained(process, inbox, "after-kill")
    assert process.restarts == restarts + 1
    assert process.pid not in (None, old_pid)
    assert wer(ana_text, [m["text"] for m in inbox.finals(1, 12)]) <= 0.2


def test_a_pause_in_arrival_ends_an_utterance_and_lost_packets_do_not(
    worker: tuple[CaptionProcess, Inbox], voices: dict[str, tuple[str, list[bytes]]]
) -> None:
    process, inbox = worker
    ana_text, ana = voices["ana"]
    t0 = time.time()
    paused, lossy = (13, 1), (13, 2)
    # The same speech twice with 3 s in between when nothing arrived (a muted microphone).
    resumed_at = t0 + len(ana) * 0.02 + 3.0
    for i, packet in enumerate(ana):
        process.send_packet(paused, t0 + (i + 1) * 0.02, packet)
    for i, packet in enumerate(ana):
        process.send_packet(paused, resumed_at + (i + 1) * 0.02, packet)
    # Every tenth packet lost on the way: the clock runs on, the speech must not be cut.
    for i, packet in enumerate(ana):
        if i % 10 != 9:
            process.send_packet(lossy, t0 + (i + 1) * 0.02, packet)
    process.end_stream(paused)
    process.end_stream(lossy)
    drained(process, inbox, "gaps")

    twice = inbox.finals(1, 13)
    assert wer(f"{ana_text} {ana_text}", [m["text"] for m in twice]) <= 0.2
    second = [m for m in twice if m["start"] >= resumed_at - 0.3]
    assert second and wer(ana_text, [m["text"] for m in second]) <= 0.2
    assert second[0]["start"] < resumed_at + 1.0  # re-anchored at the arrival after the pause
    lossy_captions = inbox.finals(2, 13)
    assert 1 <= len(lossy_captions) <= 2  # one turn: not cut into pieces by the lost packets
    # What a listener ends up reading. Whisper's text of audio with a tenth of it concealed
    # varies between runs: 0.1-0.3 here, and once in CI it left out the last sentence (0.36).
    assert wer(ana_text, inbox.shown(2, 13)) <= 0.4


def spoken_alone(
    process: CaptionProcess,
    inbox: Inbox,
    tmp_path: Path,
    key: tuple[int, int],
    line: tuple[str, str],
) -> None:
    """One speaker says `line` (then 1 s of silence) and stops publishing."""
    packets = opus_packets(speak(tmp_path, f"line-{key[0]}", *line)) + silence_packets(1.0)
    send(process, [(key, p, i) for i, p in enumerate(packets)])
    process.end_stream(key)
    drained(process, inbox, f"line-{key[0]}")


@pytest.mark.parametrize(
    ("line", "conversation"),
    [(MONOLOGUE, 20), (PAUSED, 21), (TURN, 25)],
    ids=["cut-by-the-length-limit", "split-by-short-pauses", "a-turn-of-two-sentences"],
)
def test_a_sentence_split_into_several_captions_is_revised_whole(
    worker: tuple[CaptionProcess, Inbox], tmp_path: Path, line: tuple[str, str], conversation: int
) -> None:
    """Issue 13: "an utterance's caption can stop mid-sentence". A sentence longer than the
    VAD's 12 s, or with half-second pauses in it, comes out in pieces; once heard whole it is
    recognised again and one caption replaces the pieces, with its last words. So is a turn
    of sentences with breaths between them (Whisper hears each word with its context, as the
    final transcript does)."""
    process, inbox = worker
    said = script(line[1])
    spoken_alone(process, inbox, tmp_path, (conversation, 1), line)

    firsts = inbox.finals(1, conversation)
    assert len(firsts) >= 2  # the split the revision is for
    shown = inbox.shown(1, conversation)
    assert len(shown) == 1, shown
    assert wer(said, shown) <= 0.15, shown  # tiny.en: "docks" is sometimes "dogs"
    last_words = " ".join(normalize(said).split()[-2:])
    assert normalize(shown[0]).endswith(last_words)
    assert shown[0][:1].isupper(), shown  # it begins a sentence, as its first piece did
    # Each piece's own caption came first (the revision never held one back), and the last
    # revision spans them all. (A stream slow to arrive may be revised twice: the second
    # replaces the first.)
    kinds = [m["type"] for m in inbox.finals(1, conversation, ("final", "revised"))]
    assert kinds[-1] == "revised"
    last = inbox.finals(1, conversation, ("revised",))[-1]
    assert last["start"] == firsts[0]["start"] and last["end"] == firsts[-1]["end"]


def test_short_real_words_are_not_taken_for_whispers_inventions(
    worker: tuple[CaptionProcess, Inbox], tmp_path: Path
) -> None:
    """ "Okay." and "Thank you." said alone are words Whisper also invents on noise; the VAD was
    sure they were speech, so they are captioned (the noise test above keeps the other side)."""
    process, inbox = worker
    spoken_alone(process, inbox, tmp_path, (22, 1), SHORT_WORDS)
    shown = inbox.shown(1, 22)
    # Each captioned as said; the turn's revision may then show them as one caption.
    firsts = [m["text"] for m in inbox.finals(1, 22, ("final",))]
    assert len(firsts) == 3, firsts
    assert wer(script(SHORT_WORDS[1]), shown) <= 0.25, shown  # one word misheard at most


def test_an_ended_streams_audio_is_not_kept_for_revisions(
    worker: tuple[CaptionProcess, Inbox], tmp_path: Path
) -> None:
    """The audio a revision needs is held while its speaker may go on, not once they stopped
    (a node meets thousands of speakers over its life)."""
    process, inbox = worker
    spoken_alone(process, inbox, tmp_path, (23, 1), PAUSED)
    assert inbox.finals(1, 23, ("revised",))
    deadline = time.monotonic() + 10
    while True:
        asked = len([m for m in inbox.messages if m["type"] == "stats"])
        process.request_stats()
        while len(answers := [m for m in inbox.messages if m["type"] == "stats"]) == asked:
            assert time.monotonic() < deadline, "no stats from the worker"
            time.sleep(0.02)
        stats = answers[-1]
        if stats["revisable_s"] == 0:
            break
        assert time.monotonic() < deadline, f"{stats['revisable_s']} s of audio still kept"
        time.sleep(0.1)
