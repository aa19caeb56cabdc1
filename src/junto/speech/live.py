"""Live captions: speakers' audio to stored, delivered caption events.

`LiveCaptioner` is an on-air consumer (`junto.recording.on_air`): while a speaker's camera
source is on air it taps their Opus packets (`MediaBackend.add_tap`) and copies each one, with
its arrival time, into the caption worker process (`junto.speech.caption_process`). The tap
runs on the forwarding path of the event loop, so it only copies bytes into a bounded queue;
decoding, voice activity detection and Whisper all happen in the worker.

The worker's results come back on a reader thread and are handed to the loop. A final caption
is stored (`captions` row, times in ms since the conversation went live) together with a room
event `caption` in one transaction, then delivered through the hub like any room event
(docs/protocol.md, "Captions"). Partial captions are ephemeral `caption.partial` control frames
for this process's connections only: they are a preview, replaced by the final caption.

A revised caption (the worker re-heard an utterance that a pause or the length limit had split)
is stored in place of the captions it replaces (the first row takes its text and times, the
others are deleted) and delivered as a new `caption` event whose `replaces` lists the earlier
events' ids, so a listener, a late joiner replaying the log and the captions file all end with
the same text.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from junto.accounts import person
from junto.events import log as room_log
from junto.media.base import Source
from junto.speech.caption_process import CaptionProcess, Message
from junto.speech.caption_worker import StreamKey, WorkerConfig
from junto.speech.models import is_english_only, resolve_model, unsupported_language
from junto.speech.vocabulary import conversation_vocabulary
from junto.storage.tables import Caption, Conversation, User

if TYPE_CHECKING:
    from junto.node import Node

log = logging.getLogger("junto.speech")

# How long a speaker's name and timeline origin are kept after they go off air: the final
# caption of their last utterance arrives after off_air.
_FORGET_AFTER_S = 120.0
# Captions a revision may still replace, per speaker: the worker revises only the last few.
_REVISABLE = 32
# How long a stopping node waits for the captions of what was said up to the end.
_STOP_DRAIN_S = 15.0


@dataclass
class CaptionStats:
    """In-memory figures for the benchmark and health checks (this process only)."""

    captions: int = 0
    revisions: int = 0
    partials: int = 0
    worker_restarts: int = 0
    # Milliseconds from the end of an utterance's speech to the worker's result, and to the
    # moment the stored event was handed to the hub.
    latency_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    delivered_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    worker: dict[str, Any] = field(default_factory=dict)  # the worker's last stats message

    def snapshot(self, dropped_packets: int = 0) -> dict[str, Any]:
        return {
            "captions": self.captions,
            "revisions": self.revisions,
            "partials": self.partials,
            "worker_restarts": self.worker_restarts,
            "dropped_packets": dropped_packets,
            "latency_ms_p50": percentile(self.latency_ms, 50),
            "latency_ms_p95": percentile(self.latency_ms, 95),
            "delivered_ms_p95": percentile(self.delivered_ms, 95),
        }


def percentile(values: Iterable[float], pct: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    rank = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return round(ordered[rank], 1)


@dataclass
class _Speaker:
    """One speaker's captioned source while on air (and a while after)."""

    room: int
    user_id: int
    started_at: datetime
    person: asyncio.Task[dict[str, Any]]
    remove_tap: Callable[[], None] | None = None
    forget: asyncio.TimerHandle | None = None
    # The worker's seq of each recent caption -> (its room event id, its `captions` row id).
    shown: collections.OrderedDict[int, tuple[int, int]] = field(
        default_factory=collections.OrderedDict
    )


def worker_config(node_settings: Any) -> WorkerConfig:
    """The caption worker's settings from the node's (model resolved here, once)."""
    resolved = resolve_model(node_settings.caption_model, node_settings)
    english = is_english_only(node_settings.caption_model) or is_english_only(resolved)
    return WorkerConfig(model=resolved, english_only=english, beam=node_settings.caption_beam)


def captions_off_because(node_settings: Any, language: str) -> str | None:
    """Why live captions stay off for a conversation in `language`, or None."""
    return unsupported_language(node_settings.caption_model, language, "JUNTO_CAPTION_MODEL")


class LiveCaptioner:
    """Captions every on-air speaker's camera audio; see the module docstring."""

    def __init__(self, node: Node, config: WorkerConfig | None = None) -> None:
        self.node = node
        self.config = config
        self.stats = CaptionStats()
        self.process: CaptionProcess | None = None
        self._speakers: dict[StreamKey, _Speaker] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._drains: dict[str, asyncio.Future[None]] = {}
        self._hints: set[asyncio.Task[None]] = set()
        # Conversations whose language the caption model does not know -> why (captions off).
        self.off: dict[int, str] = {}
        # When a packet arrived (wall seconds): the worker's timeline is built from these.
        # Tests that hand over a minute of speech in a millisecond give a clock that says
        # when each packet would have come; a stall in their feeding loop is then no pause.
        self.clock: Callable[[], float] = time.time

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        config = self.config or worker_config(self.node.settings)
        self.process = CaptionProcess(config, self._from_worker_thread)
        # The worker (and its model, seconds to load on 2 cores) starts when the first speaker
        # publishes on a stage (`gathering`), live or not yet.
        self.process.start()
        self._consumer = self._loop.create_task(self._consume(), name="captions")

    async def stop(self) -> None:
        # The streams were just ended (on_air stops first): their last utterances are still
        # being transcribed, and a node shutting down must not drop them.
        if self.process is not None and self.process.ready:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STOP_DRAIN_S):
                    await self.drain()
        for hint in list(self._hints):
            hint.cancel()
        for speaker in self._speakers.values():
            if speaker.remove_tap is not None:
                speaker.remove_tap()
            if speaker.forget is not None:
                speaker.forget.cancel()
        self._speakers.clear()
        if self.process is not None:
            await asyncio.to_thread(self.process.stop)
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer

    async def drain(self) -> None:
        """Wait until every packet tapped so far is transcribed and its caption delivered
        (for tests and the benchmark; streams still on air keep their utterance in progress).
        Callers bound the wait with `asyncio.timeout`."""
        if self.process is None:
            return
        token = f"drain-{len(self._drains)}-{time.monotonic()}"
        done = asyncio.get_running_loop().create_future()
        self._drains[token] = done
        self.process.drain(token)
        try:
            await done
        finally:
            self._drains.pop(token, None)

    def health(self) -> dict[str, Any]:
        dropped = self.process.dropped if self.process is not None else 0
        return self.stats.snapshot(dropped)

    # ---- on air (called on the event loop; must not block) --------------------------------------

    def on_air(self, room: int, user_id: int, source: str, started_at: datetime) -> None:
        media, process = self.node.media, self.process
        if source != Source.CAMERA or media is None or process is None:
            return  # screen shares carry a computer's sound, not the speaker's words
        key = (room, user_id)
        old = self._speakers.get(key)
        if old is not None:
            if old.remove_tap is not None:
                old.remove_tap()
            if old.forget is not None:
                old.forget.cancel()
        loop = asyncio.get_running_loop()
        speaker = _Speaker(room, user_id, started_at, loop.create_task(self._person(user_id)))
        self._speakers[key] = speaker

        off = self.off

        def tap(kind: str, packet: Any) -> None:
            if kind == "audio" and room not in off:
                # Copy now: the packet's buffer belongs to the forwarding path.
                process.send_packet(key, self.clock(), bytes(packet))

        speaker.remove_tap = media.add_tap(room, user_id, tap, Source.CAMERA)
        process.warm()
        # The names are looked up off the tap path; the first utterance takes longer than the
        # lookup to end, so its caption already has them. A participant renamed mid-conversation
        # is heard with the name they had when this speaker went on air.
        hint = loop.create_task(self._prepare(room, key), name="caption-vocabulary")
        self._hints.add(hint)
        hint.add_done_callback(self._hints.discard)

    async def vocabulary_sent(self) -> None:
        """Wait until every on-air speaker's conversation vocabulary is with the worker."""
        while self._hints:
            await asyncio.gather(*self._hints, return_exceptions=True)

    async def _prepare(self, room: int, key: StreamKey) -> None:
        """Tell the worker what this conversation's captions should expect to hear
        (`junto.speech.vocabulary`: its people's names, title and tags), or turn its captions
        off when the caption model does not know its language (an English-only model would
        caption German as invented English)."""
        try:
            async with self.node.db() as db:
                conv = await db.get(Conversation, room)
                text = await conversation_vocabulary(db, room)
        except Exception:
            log.exception("looking up conversation %s's vocabulary failed", room)
            return
        why = captions_off_because(self.node.settings, conv.language if conv else "")
        if why is not None:
            if room not in self.off:
                log.warning("live captions off in conversation %s: %s", room, why)
            self.off[room] = why
            if self.process is not None:
                self.process.end_stream(key)  # drops the little audio sent before this
            return
        if self.process is not None:
            self.process.set_hotwords(room, text)

    def gathering(self, room: int) -> None:
        # Loading the worker and its model takes seconds on 2 cores: start it while speakers
        # gather on the stage, so the conversation's first words are captioned at once.
        if self.process is not None:
            self.process.warm()

    def off_air(self, room: int, user_id: int, source: str) -> None:
        key = (room, user_id)
        speaker = self._speakers.get(key)
        if source != Source.CAMERA or speaker is None or speaker.remove_tap is None:
            return
        speaker.remove_tap()
        speaker.remove_tap = None
        if self.process is not None:
            self.process.end_stream(key)  # the worker finishes the utterance in progress
        speaker.forget = asyncio.get_running_loop().call_later(
            _FORGET_AFTER_S, self._forget, key, speaker
        )

    def _forget(self, key: StreamKey, speaker: _Speaker) -> None:
        if self._speakers.get(key) is speaker and speaker.remove_tap is None:
            del self._speakers[key]

    async def _person(self, user_id: int) -> dict[str, Any]:
        async with self.node.db() as db:
            user = await db.get(User, user_id)
        if user is None:
            return {"id": user_id, "name": "?", "colour": "#55575d", "is_guest": False}
        return person(user)

    # ---- results from the worker ----------------------------------------------------------------

    def _from_worker_thread(self, message: Message) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._inbox.put_nowait, message)

    async def _consume(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self._handle(message)
            except Exception:
                log.exception("handling a caption failed")

    async def _handle(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "final":
            await self._final(message)
        elif kind == "partial":
            await self._partial(message)
        elif kind == "revised":
            await self._revised(message)
        elif kind == "exited":
            self.stats.worker_restarts += 1
            for speaker in self._speakers.values():
                speaker.shown.clear()  # a new worker numbers its captions afresh
        elif kind == "stats":
            self.stats.worker = message
        elif kind == "drained":
            # Messages are handled in order, so every caption before this one is delivered.
            done = self._drains.get(str(message.get("token")))
            if done is not None and not done.done():
                done.set_result(None)

    def _speaker_of(self, message: Message) -> _Speaker | None:
        if int(message["conversation_id"]) in self.off:
            return None  # its language is not the model's: no caption rather than a wrong one
        return self._speakers.get((int(message["conversation_id"]), int(message["user_id"])))

    async def _final(self, message: Message) -> None:
        speaker = self._speaker_of(message)
        if speaker is None:
            return
        origin = speaker.started_at.timestamp()
        start_ms = max(0, round((float(message["start"]) - origin) * 1000))
        end_ms = max(start_ms, round((float(message["end"]) - origin) * 1000))
        text = str(message["text"])
        who = await speaker.person
        data = {"user": who, "text": text, "start_ms": start_ms, "end_ms": end_ms}
        async with self.node.db() as db:
            event = await room_log.append(db, speaker.room, "caption", data, speaker.user_id)
            row = Caption(
                conversation_id=speaker.room,
                user_id=speaker.user_id,
                start_ms=start_ms,
                end_ms=end_ms,
                text=text,
            )
            db.add(row)
            await db.commit()
        self._remember(speaker, message, event.id, row.id)
        if self.node.hub is not None:
            await self.node.hub.deliver(event)
        spoken_end = float(message["utterance_end"])
        self.stats.captions += 1
        self.stats.latency_ms.append((float(message["emitted_at"]) - spoken_end) * 1000)
        self.stats.delivered_ms.append((time.time() - spoken_end) * 1000)
        _log_timing(message, spoken_end)

    def _remember(self, speaker: _Speaker, message: Message, event_id: int, row_id: int) -> None:
        seq = message.get("seq")
        if isinstance(seq, int):
            speaker.shown[seq] = (event_id, row_id)
            while len(speaker.shown) > _REVISABLE:
                speaker.shown.popitem(last=False)

    async def _revised(self, message: Message) -> None:
        """Store a revision in place of the captions it replaces and deliver it."""
        speaker = self._speaker_of(message)
        if speaker is None:
            return
        seqs = message.get("replaces", ())
        replaced = [speaker.shown.pop(seq) for seq in seqs if seq in speaker.shown]
        if not replaced:
            return  # too old to find (or from a worker that has since died): the captions stand
        origin = speaker.started_at.timestamp()
        start_ms = max(0, round((float(message["start"]) - origin) * 1000))
        end_ms = max(start_ms, round((float(message["end"]) - origin) * 1000))
        text = str(message["text"])
        who = await speaker.person
        event_ids = [event_id for event_id, _ in replaced]
        data = {
            "user": who,
            "text": text,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "replaces": event_ids,
        }
        keep, *drop = [row_id for _, row_id in replaced]
        async with self.node.db() as db:
            event = await room_log.append(db, speaker.room, "caption", data, speaker.user_id)
            row = await db.get(Caption, keep)
            if row is not None:
                row.text, row.start_ms, row.end_ms = text, start_ms, end_ms
            if drop:
                await db.execute(delete(Caption).where(Caption.id.in_(drop)))
            await db.commit()
        self._remember(speaker, message, event.id, keep)
        if self.node.hub is not None:
            await self.node.hub.deliver(event)
        self.stats.revisions += 1

    async def _partial(self, message: Message) -> None:
        speaker = self._speaker_of(message)
        hub = self.node.hub
        room = hub.rooms.get(speaker.room) if hub is not None and speaker is not None else None
        if speaker is None or room is None:
            return
        start_ms = max(0, round((float(message["start"]) - speaker.started_at.timestamp()) * 1000))
        who = await speaker.person
        self.stats.partials += 1
        room.broadcast_control(
            "caption.partial", user=who, text=str(message["text"]), start_ms=start_ms
        )


# A caption later than this after its speech is logged with where its time went (issue 13's
# target for caption latency).
LATE_CAPTION_MS = 1500


def _log_timing(message: Message, spoken_end: float) -> None:
    """Where a late caption's time went after its speech ended (bench/pipeline.py reads it from
    the node's log): the VAD's wait for the pause, the finals' queue, decoding, delivering."""
    took_ms = (time.time() - spoken_end) * 1000
    level = logging.INFO if took_ms > LATE_CAPTION_MS else logging.DEBUG
    if not log.isEnabledFor(level):
        return
    with contextlib.suppress(KeyError, TypeError, ValueError):
        queued = float(message["queued_at"])
        began = float(message["decode_started_at"])
        emitted = float(message["emitted_at"])
        log.log(
            level,
            "caption timing: user %s, %.0f ms after the speech: %.0f cut, %.0f queued, "
            "%.0f decoding, %.0f delivering",
            message.get("user_id"),
            took_ms,
            (queued - spoken_end) * 1000,
            (began - queued) * 1000,
            (emitted - began) * 1000,
            (time.time() - emitted) * 1000,
        )
