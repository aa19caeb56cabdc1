"""The caption worker: a process that turns speakers' Opus packets into caption text.

It runs as `python -m junto.speech.caption_worker`, started and restarted by the node
(`junto.speech.caption_process`), and talks over its stdin/stdout pipes in length-prefixed
frames (below). Whisper is CPU-heavy and holds a model of its own, so it never runs in the web
process: the node only copies packets into a pipe.

Per stream (one speaker in one conversation) the worker decodes Opus (PyAV), resamples to
16 kHz mono, keeps a timeline anchored to the packets' arrival wall clock, and cuts utterances
with the streaming VAD (`junto.speech.vad`). Finished utterances of every stream wait in one
queue, in order of arrival, for the finals thread (faster-whisper, greedy by default), which
does nothing else: a final caption never waits behind other work. A second thread with a model
of its own, at a lower OS priority (`background_nice`), does everything that can wait: it
transcribes the utterance still being spoken for a partial caption, and revises (below). When
both want the CPU, the final wins; measured with four speakers in the pipeline benchmark, a
final that queued behind a partial of a long turn arrived 2-4 s late.

Revisions: an utterance ends at a pause of `min_silence_ms` or at the length limit, so a
sentence with a comma-length pause in it, or a monologue, comes out as several captions, the
pieces recognised apart (Whisper hears a fragment's last words without what follows them),
greedily. The utterances of one turn (each began within `join_gap_s` of the one before, or it
was cut) form a group; once the speaker has not gone on, the background thread recognises the
group's audio joined (at most `join_max_s`, inside Whisper's 30 s window with room for its
padding) with `revision_beam`, and sends a `revised` caption that replaces the captions shown
for them, if its words differ. A turn of one utterance is re-heard too when the revision beam
is wider than the first one. The first version of each caption never waits for this.

Frames, both ways: 1 byte kind, 4 bytes little-endian payload length, payload.
  node -> worker  C config (JSON, first)  P packet (<qqd conversation, user, arrival wall clock;
                  then the Opus packet)   E stream end (<qq)   D drain (JSON {"token"})
                  S stats request   H hotwords (JSON {"conversation_id", "text"}: names and
                  terms that conversation's captions should expect, junto.speech.vocabulary)
  worker -> node  J one JSON message: ready, final, revised, partial, drained, stats, error

Every final and revised caption carries a `seq` (unique within one worker process); a revised
one lists the `seq`s it `replaces`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np

from junto.speech.recognizer import Recognizer, plausible, same_words
from junto.speech.vad import SAMPLE_RATE, Audio, StreamingVad, Utterance, VadConfig

log = logging.getLogger("junto.speech.worker")

HEADER = struct.Struct("<BI")
PACKET = struct.Struct("<qqd")
STREAM = struct.Struct("<qq")
KIND_CONFIG, KIND_PACKET, KIND_END, KIND_DRAIN, KIND_STATS, KIND_JSON = b"CPEDSJ"
KIND_HOTWORDS = ord("H")

# Packets arriving this much later than their audio's place on the timeline mean the stream
# stopped for a while (muted with DTX, a network stall, a republish): re-anchor the timeline.
GAP_SECONDS = 0.5
# Silence fed to the VAD across such a gap, so that an utterance cut off by it ends.
GAP_FILL_SECONDS = 1.0

StreamKey = tuple[int, int]  # (conversation_id, user_id)


@dataclass(frozen=True)
class WorkerConfig:
    """What the node tells a new worker (the first frame)."""

    model: str  # a resolved folder, or a name faster-whisper downloads
    english_only: bool = True
    beam: int = 1
    cpu_threads: int = 2
    partials: bool = True
    partial_every_s: float = 2.5
    short_window: bool = True  # decode from the utterance's length, not 30 s (recognizer.py)
    revisions: bool = True  # re-recognise an utterance split by a pause or cut (module doc)
    # Pieces at most this far apart (padding to padding; a 400 ms pause leaves about 100 ms,
    # a 2.3 s pause 2 s) are one turn, re-heard together: Whisper reads each word with what
    # was said around it, as the final transcript does (its VAD joins across 2 s pauses).
    join_gap_s: float = 2.0
    # Joined audio at most this long: the short window pads 3 s of silence inside Whisper's
    # 30 s, and without it Whisper loops (recognizer.py).
    join_max_s: float = 27.0
    # The beam of revisions (the first captions use `beam`); wider than `beam`, every turn is
    # re-heard. Measured in bench/pipeline.py (one run each, load 7): beam 5 read 12.5 % WER
    # but made first captions slower (p50 2.4 s, p95 4.3 s: its passes took the cores the
    # finals needed), beam 1 16.8 % at p50 1.0 s, p95 1.8 s. Live, the first caption's delay
    # is what people feel, so revisions stay greedy until they can run without slowing finals.
    revision_beam: int = 1
    # How far below the finals the background thread (partials, revisions) runs: Linux keeps a
    # nice value per thread, and its model's threads inherit it. Its model has as many threads
    # as the finals' (`cpu_threads`): int8 sums in another order can change a borderline word,
    # and a revision must hear what the final would have.
    background_nice: int = 10
    vad: VadConfig = field(default_factory=VadConfig)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> WorkerConfig:
        data = json.loads(raw)
        data["vad"] = VadConfig(**data.get("vad", {}))
        return cls(**data)


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def read_frame(stream: IO[bytes]) -> tuple[int, bytes] | None:
    """The next frame, or None at end of input (or a truncated frame)."""
    head = _read_exact(stream, HEADER.size)
    if head is None:
        return None
    kind, size = HEADER.unpack(head)
    payload = _read_exact(stream, size) if size else b""
    return None if payload is None else (kind, payload)


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# ---- one speaker's audio -----------------------------------------------------------------------


class _Timeline:
    """Sample index (16 kHz, from the stream's first sample) to wall clock, piecewise."""

    def __init__(self) -> None:
        self._anchors: list[tuple[int, float]] = []

    def anchor(self, sample: int, wall: float) -> None:
        self._anchors.append((sample, wall))
        del self._anchors[:-64]  # utterances never reach back that many gaps

    def wall(self, sample: int) -> float:
        base_sample, base_wall = self._anchors[0]
        for at, wall in self._anchors:
            if at > sample:
                break
            base_sample, base_wall = at, wall
        return base_wall + (sample - base_sample) / SAMPLE_RATE

    @property
    def empty(self) -> bool:
        return not self._anchors


class _Stream:
    def __init__(self, key: StreamKey, vad: VadConfig, generation: int) -> None:
        import av

        self.key = key
        self.generation = generation  # a stream ended and begun again starts a new timeline
        self.decoder = av.CodecContext.create("opus", "r")
        self.decoder.thread_count = 1  # 20 ms packets: a thread pool per stream only costs
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self.vad = StreamingVad(vad)
        self.timeline = _Timeline()
        self.last_arrival = 0.0
        self.partial_at = 0  # samples_fed when the last partial was taken
        self.partial_start = -1  # the utterance that partial belonged to

    def decode(self, data: bytes) -> Audio:
        import av

        pieces: list[Audio] = []
        for decoded in self.decoder.decode(av.Packet(data)):
            for out in self.resampler.resample(decoded):
                pieces.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(pieces)

    def add(self, wall: float, pcm: Audio) -> list[Utterance]:
        """Place `pcm` (which ended arriving at `wall`) on the timeline and run the VAD."""
        fed = self.vad.samples_fed
        begins = wall - len(pcm) / SAMPLE_RATE
        done: list[Utterance] = []
        silent_for = begins - self.last_arrival
        self.last_arrival = wall
        if self.timeline.empty:
            self.timeline.anchor(fed, begins)
        elif begins - self.timeline.wall(fed) > GAP_SECONDS:
            if silent_for > GAP_SECONDS:
                # Nothing came for a while (muted, a stall, a republish): that was a pause, so
                # an utterance cut off by it ends.
                gap = min(silent_for, GAP_FILL_SECONDS)
                done += self.vad.feed(np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32))
            # Otherwise lost packets made the sample count fall behind the clock, bit by bit:
            # only the timeline moves, the speech goes on.
            self.timeline.anchor(self.vad.samples_fed, begins)
        done += self.vad.feed(pcm)
        return done


@dataclass
class _Job:
    key: StreamKey
    generation: int
    utterance: Utterance
    start_wall: float
    end_wall: float
    speech_end_wall: float
    # When the VAD ended the utterance (wall clock): what came after it is the finals' queue.
    queued_wall: float = field(default_factory=time.time)


@dataclass
class _Piece:
    """A transcribed utterance, kept while a following one may continue its sentence."""

    seq: int | None  # the final caption sent for it (None: nothing plausible was heard)
    job: _Job
    text: str


@dataclass
class _Group:
    """Consecutive utterances of one stream that make one turn (or one part of a monologue)."""

    key: StreamKey
    generation: int
    pieces: list[_Piece]
    shown: list[int]  # seqs of the captions standing for the group now: what a revision replaces
    shown_text: list[str]
    changed_at: float = field(default_factory=time.monotonic)

    @property
    def start(self) -> int:
        return self.pieces[0].job.utterance.start

    @property
    def last(self) -> _Piece:
        return self.pieces[-1]


def joined_audio(pieces: list[_Piece]) -> Audio:
    """The pieces' audio on one timeline: a pause between them comes back as silence."""
    parts: list[Audio] = []
    at = pieces[0].job.utterance.start
    for piece in pieces:
        u = piece.job.utterance
        if u.start > at:
            parts.append(np.zeros(u.start - at, dtype=np.float32))
        parts.append(u.audio)
        at = u.end
    return np.concatenate(parts)


def joined_voiced(pieces: list[_Piece]) -> float:
    sizes = [len(p.job.utterance.audio) for p in pieces]
    scores = [p.job.utterance.voiced for p in pieces]
    return float(np.average(scores, weights=sizes)) if sum(sizes) else 0.0


def lower_this_thread(by: int) -> None:
    """Raise the calling thread's nice value by `by` (Linux: per thread, inherited by the
    threads it creates afterwards, such as a model's compute threads); no-op elsewhere."""
    if by <= 0:
        return
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + by)


@dataclass
class _Counters:
    packets: int = 0
    bad_packets: int = 0
    utterances: int = 0
    finals: int = 0
    revisions: int = 0
    partials: int = 0
    dropped_hallucinations: int = 0
    full_window: int = 0  # utterances the short window could not decode (recognizer.py)
    audio_s: float = 0.0
    transcribe_s: float = 0.0


# ---- the worker --------------------------------------------------------------------------------


class CaptionWorker:
    """Everything the process does, apart from the pipes (so tests can read it plainly)."""

    def __init__(
        self,
        config: WorkerConfig,
        emit: Callable[[dict[str, Any]], None],
        recognizer: Callable[..., Recognizer] = Recognizer,
    ) -> None:
        self.config = config
        self.emit = emit
        self._make_recognizer = recognizer  # called once per thread (tests give a slow one)
        self.counters = _Counters()
        self._streams: dict[StreamKey, _Stream] = {}
        self._lock = threading.Lock()  # streams are fed by the reader, peeked by the transcriber
        self._jobs: queue.Queue[_Job | str | None] = queue.Queue()
        self._recognise: Recognizer | None = None  # the finals thread's model
        self._hotwords: dict[int, str] = {}  # conversation id -> its vocabulary
        self._generations = 0
        self._seqs = itertools.count(1)  # next() is atomic: both threads number captions
        # Each stream's latest group and the groups due a revision: the finals thread adds to
        # them, the background thread revises; `_revising` counts revisions under way.
        self._groups_lock = threading.Condition()
        self._groups: dict[StreamKey, _Group] = {}
        self._due: list[_Group] = []
        self._revising = 0
        self._draining = False
        # Utterances of each stream queued or being transcribed (under `_lock`): a group is
        # neither revised nor forgotten while more of its speaker's words are on the way.
        self._pending: dict[StreamKey, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._transcriber, name="finals", daemon=True)
        self._background = threading.Thread(
            target=self._background_work, name="background", daemon=True
        )

    def start(self) -> None:
        started = time.monotonic()
        c = self.config
        self._recognise = self._make_recognizer(
            c.model,
            english_only=c.english_only,
            beam=c.beam,
            cpu_threads=c.cpu_threads,
            short_window=c.short_window,
        )
        # One tiny pass so the first real caption does not pay for lazy initialisation.
        self._recognise(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
        self.emit({"type": "ready", "load_s": round(time.monotonic() - started, 3)})
        self._thread.start()
        if c.partials or c.revisions:
            self._background.start()

    def stop(self) -> None:
        self._stopping.set()
        self._jobs.put(None)
        self._thread.join(timeout=30)
        if self._background.is_alive():
            self._background.join(timeout=30)

    # ---- input (the reader thread) --------------------------------------------------------------

    def packet(self, key: StreamKey, wall: float, data: bytes) -> None:
        self.counters.packets += 1
        with self._lock:
            stream = self._streams.get(key)
            if stream is None:
                self._generations += 1
                stream = self._streams[key] = _Stream(key, self.config.vad, self._generations)
            try:
                pcm = stream.decode(data)
            except Exception:
                # A corrupt or foreign packet: skip it, the decoder recovers on the next one.
                self.counters.bad_packets += 1
                return
            if len(pcm):
                self._queue(stream, stream.add(wall, pcm))

    def end(self, key: StreamKey) -> None:
        with self._lock:
            stream = self._streams.pop(key, None)
            if stream is not None:
                self._queue(stream, stream.vad.flush())

    def drain(self, token: str) -> None:
        self._jobs.put(token)

    def set_hotwords(self, conversation_id: int, text: str) -> None:
        # A plain dict assignment: the transcriber thread reads it without a lock.
        self._hotwords[conversation_id] = text

    def _hint(self, key: StreamKey) -> str:
        return self._hotwords.get(key[0], "")

    def stats(self) -> dict[str, Any]:
        return {
            "type": "stats",
            "cpu_s": time.process_time(),
            "reader_cpu_s": time.thread_time(),  # asked on the reader: decoding and VAD
            "streams": len(self._streams),
            "queued": self._jobs.qsize(),
            # Audio kept for revisions (all streams): bounded by join_max_s per running stream.
            "revisable_s": round(
                sum(
                    len(p.job.utterance.audio) / SAMPLE_RATE
                    for g in list(self._groups.values())
                    for p in list(g.pieces)
                ),
                1,
            ),
            **asdict(self.counters),
        }

    def _queue(self, stream: _Stream, utterances: list[Utterance]) -> None:
        for u in utterances:
            self.counters.utterances += 1
            self._pending[stream.key] = self._pending.get(stream.key, 0) + 1
            t = stream.timeline
            self._jobs.put(
                _Job(
                    stream.key,
                    stream.generation,
                    u,
                    t.wall(u.start),
                    t.wall(u.end),
                    t.wall(u.speech_end),
                )
            )

    # ---- transcription (its own thread) ---------------------------------------------------------

    def _transcriber(self) -> None:
        """The finals thread: finished utterances in order of arrival, and nothing else."""
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if isinstance(job, str):
                self._settle_revisions()
                self.emit({"type": "drained", "token": job})
                continue
            try:
                self._final(job)
            except Exception as exc:  # a model failure must not end every stream's captions
                log.exception("transcribing an utterance failed")
                self.emit({"type": "error", "message": f"transcription failed: {exc}"})
            finally:
                with self._lock:
                    left = self._pending.get(job.key, 1) - 1
                    if left > 0:
                        self._pending[job.key] = left
                    else:
                        self._pending.pop(job.key, None)

    def _final(self, job: _Job) -> None:
        u = job.utterance
        assert self._recognise is not None
        began, began_wall = time.monotonic(), time.time()
        found = self._recognise(u.audio, self._hint(job.key))
        self.counters.transcribe_s += time.monotonic() - began
        self.counters.audio_s += u.duration_s
        if not found.fast:
            self.counters.full_window += 1
        speech_s = (u.speech_end - u.start) / SAMPLE_RATE
        seq: int | None = None
        if plausible(found, speech_s, u.voiced):
            seq = self._next_seq()
            self.counters.finals += 1
            self.emit(
                {
                    "type": "final",
                    "seq": seq,
                    "conversation_id": job.key[0],
                    "user_id": job.key[1],
                    "start": job.start_wall,
                    "end": job.end_wall,
                    "utterance_end": job.speech_end_wall,
                    "text": found.text,
                    "cut": u.cut,
                    "audio_s": round(u.duration_s, 3),
                    # Where a late caption's time went: cut by the VAD, waiting, decoding.
                    "queued_at": job.queued_wall,
                    "decode_started_at": began_wall,
                    "emitted_at": time.time(),
                }
            )
        else:
            self.counters.dropped_hallucinations += 1
        if self.config.revisions:
            self._join(_Piece(seq, job, found.text if seq is not None else ""))

    def _next_seq(self) -> int:
        return next(self._seqs)

    # ---- the background thread: partials and revisions -----------------------------------------

    def _background_work(self) -> None:
        lower_this_thread(self.config.background_nice)
        c = self.config
        try:
            # Its own model, created on this thread so that its compute threads inherit the
            # lower priority.
            recognise = self._make_recognizer(
                c.model,
                english_only=c.english_only,
                beam=c.beam,
                cpu_threads=c.cpu_threads,
                short_window=c.short_window,
            )
        except Exception:
            log.exception("no background model: no partial captions or revisions")
            return
        while not self._stopping.is_set():
            # A revision first (it settles what people read), then a preview.
            busy = self._revise_one(recognise)
            if not busy and c.partials:
                busy = self._partial(recognise)
            self._forget_ended()
            if not busy:
                self._stopping.wait(0.1)

    def _settle_revisions(self) -> None:
        """Every revision still due, now (a drain: the node waits for what was said)."""
        assert self._recognise is not None
        with self._groups_lock:
            self._draining = True  # the background thread takes no new revision meanwhile
            self._groups_lock.wait_for(lambda: self._revising == 0)
        try:
            while self._revise_one(self._recognise, force=True):
                pass
        finally:
            with self._groups_lock:
                self._draining = False

    # ---- revisions (the transcriber thread) -----------------------------------------------------

    def _join(self, piece: _Piece) -> None:
        key = piece.job.key
        shown = [piece.seq] if piece.seq is not None else []
        text = [piece.text] if piece.seq is not None else []
        with self._groups_lock:
            group = self._groups.get(key)
            if group is not None and self._continues(group, piece):
                group.pieces.append(piece)
                group.shown += shown
                group.shown_text += text
                group.changed_at = time.monotonic()
                if not any(due is group for due in self._due):
                    self._due.append(group)
            else:
                # The previous group (revised or still due) is complete: this one starts afresh.
                group = _Group(key, piece.job.generation, [piece], shown, text)
                self._groups[key] = group
                if shown and self.config.revision_beam > self.config.beam:
                    self._due.append(group)  # a turn of one caption, heard wider

    def _continues(self, group: _Group, piece: _Piece) -> bool:
        u, last = piece.job.utterance, group.last.job.utterance
        if group.generation != piece.job.generation:
            return False
        if u.end - group.start > self.config.join_max_s * SAMPLE_RATE:
            return False
        return last.cut or u.start - last.end <= self.config.join_gap_s * SAMPLE_RATE

    def _forget_ended(self) -> None:
        """Drop the groups (and their audio) of streams that ended, whose last utterances were
        transcribed and that have nothing due."""
        with self._lock:
            running = {key: stream.generation for key, stream in self._streams.items()}
            pending = set(self._pending)
        with self._groups_lock:
            for key, group in list(self._groups.items()):
                ended = running.get(key) != group.generation and key not in pending
                if ended and not any(d is group for d in self._due):
                    del self._groups[key]

    def _may_go_on(self, key: StreamKey, group: _Group) -> bool:
        """The speaker may still be saying the group's sentence: wait before revising it (a
        revision redone for every further piece would cost the CPU finals need)."""
        with self._lock:
            if key in self._pending:
                return True  # more of theirs waits for its final caption: it may join the group
        if time.monotonic() - group.changed_at > 3.0:
            return False  # the stream stalled (a muted microphone): revise what was heard
        gap = int(self.config.join_gap_s * SAMPLE_RATE)
        last = group.last.job.utterance
        with self._lock:
            stream = self._streams.get(key)
            if stream is None or stream.generation != group.generation:
                return False
            if stream.vad.in_speech:
                return last.cut or stream.vad.ongoing_start - last.end <= gap
            return stream.vad.samples_fed - last.end <= gap

    def _revise_one(self, recognise: Recognizer, *, force: bool = False) -> bool:
        """Revise one group that is due (the oldest the speaker is done with); True if any ran."""
        with self._groups_lock:
            if self._draining and not force:
                return False
            group = next((g for g in self._due if force or not self._may_go_on(g.key, g)), None)
            if group is None:
                return False
            self._due.remove(group)
            self._revising += 1
            pieces, shown, shown_text = (
                list(group.pieces),
                list(group.shown),
                list(group.shown_text),
            )
        try:
            self._revise(recognise, group, pieces, shown, shown_text)
        except Exception as exc:
            log.exception("revising a caption failed")
            self.emit({"type": "error", "message": f"revision failed: {exc}"})
        finally:
            with self._groups_lock:
                self._revising -= 1
                self._groups_lock.notify_all()
        return True

    def _revise(
        self,
        recognise: Recognizer,
        group: _Group,
        pieces: list[_Piece],
        shown: list[int],
        shown_text: list[str],
    ) -> None:
        """Re-hear `pieces` (the group as it was when its revision began) as one."""
        key = group.key
        audio = joined_audio(pieces)
        began = time.monotonic()
        found = recognise(audio, self._hint(key), beam=self.config.revision_beam)
        self.counters.transcribe_s += time.monotonic() - began
        self.counters.audio_s += len(audio) / SAMPLE_RATE
        if not plausible(found, len(audio) / SAMPLE_RATE, joined_voiced(pieces)):
            return  # the pieces' own captions stand
        if len(shown) == 1 and same_words(found.text, shown_text[0]):
            return  # nothing to correct
        # Several captions with the same words still become one: a revision that ran before
        # the last piece joined (a stalled stream) leaves its caption and that piece's apart.
        text = found.text
        if pieces[0].text[:1].isupper() and text[:1].islower():
            # Whisper heard the joined audio mid-sentence; the first piece knew it began one.
            text = text[0].upper() + text[1:]
        first, last = pieces[0].job, pieces[-1].job
        with self._groups_lock:
            seq = self._next_seq()
            self.counters.revisions += 1
            self.emit(
                {
                    "type": "revised",
                    "seq": seq,
                    "replaces": shown,
                    "conversation_id": key[0],
                    "user_id": key[1],
                    "start": first.start_wall,
                    "end": last.end_wall,
                    "utterance_end": last.speech_end_wall,
                    "text": text,
                    "audio_s": round(len(audio) / SAMPLE_RATE, 3),
                    "emitted_at": time.time(),
                }
            )
            # Pieces that joined while this revision ran keep their own captions (the group
            # is due again for them).
            group.shown = [seq, *group.shown[len(shown) :]]
            group.shown_text = [text, *group.shown_text[len(shown_text) :]]

    def _partial(self, recognise: Recognizer) -> bool:
        """Transcribe the longest-waiting utterance in progress, if one is due a partial;
        True if one was transcribed."""
        every = int(self.config.partial_every_s * SAMPLE_RATE)
        with self._lock:
            due: tuple[int, _Stream, int] | None = None
            for candidate in self._streams.values():
                if not candidate.vad.in_speech:
                    continue
                ongoing_start = candidate.vad.ongoing_start
                since = (
                    candidate.partial_at
                    if candidate.partial_start == ongoing_start
                    else ongoing_start
                )
                waiting = candidate.vad.samples_fed - since
                if waiting >= every and (due is None or waiting > due[0]):
                    due = (waiting, candidate, ongoing_start)
            if due is None:
                return False
            _, stream, start = due
            ongoing = stream.vad.ongoing()
            if ongoing is None:
                return False
            audio = ongoing[1]
            stream.partial_start, stream.partial_at = start, stream.vad.samples_fed
            start_wall = stream.timeline.wall(start)
        found = recognise(audio, self._hint(stream.key))
        with self._lock:
            # The utterance may have finished meanwhile: its final caption supersedes this.
            # Checked and sent under the streams' lock, which ending an utterance takes, so
            # the final is always sent after its last partial.
            ongoing = stream.vad.ongoing()
            still = ongoing is not None and ongoing[0] == start and stream.key in self._streams
            if still and plausible(found, len(audio) / SAMPLE_RATE):
                self.counters.partials += 1
                self.emit(
                    {
                        "type": "partial",
                        "conversation_id": stream.key[0],
                        "user_id": stream.key[1],
                        "start": start_wall,
                        "text": found.text,
                        "emitted_at": time.time(),
                    }
                )
        return True


# ---- the process -------------------------------------------------------------------------------


def main() -> int:
    # The protocol owns stdout: keep a private copy of it and point fd 1 at stderr, so a stray
    # print or a library's progress bar can never corrupt a frame.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format="caption-worker %(levelname)s %(message)s")
    with contextlib.suppress(OSError):
        # Below the node's own priority: when both want the CPU, forwarding media and room
        # events comes first and a caption waits a few milliseconds more.
        os.nice(5)
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per utterance
    write_lock = threading.Lock()

    def emit(message: dict[str, Any]) -> None:
        data = frame(KIND_JSON, json.dumps(message).encode())
        with write_lock:
            try:
                out.write(data)
            except (BrokenPipeError, OSError):
                os._exit(0)  # the node is gone: nothing left to caption for

    inp = sys.stdin.buffer
    first = read_frame(inp)
    if first is None or first[0] != KIND_CONFIG:
        emit({"type": "error", "message": "expected a config frame first"})
        return 2
    try:
        worker = CaptionWorker(WorkerConfig.from_json(first[1]), emit)
        worker.start()
    except Exception as exc:
        emit({"type": "error", "message": f"could not load the caption model: {exc}"})
        return 3
    while (got := read_frame(inp)) is not None:
        kind, payload = got
        if kind == KIND_PACKET:
            conversation, user, wall = PACKET.unpack_from(payload)
            worker.packet((conversation, user), wall, payload[PACKET.size :])
        elif kind == KIND_END:
            conversation, user = STREAM.unpack(payload)
            worker.end((conversation, user))
        elif kind == KIND_DRAIN:
            worker.drain(str(json.loads(payload)["token"]))
        elif kind == KIND_STATS:
            emit(worker.stats())
        elif kind == KIND_HOTWORDS:
            hint = json.loads(payload)
            worker.set_hotwords(int(hint["conversation_id"]), str(hint["text"]))
    worker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
