"""The node's handle on the caption worker process (`junto.speech.caption_worker`).

Callers on the event loop only put items into a bounded in-memory queue (never blocking: a
full queue drops the packet and counts it); a writer thread turns them into frames on the
worker's stdin, and a reader thread hands the worker's messages to `on_message` (from that
thread: the live captioner forwards them to its loop). If the worker dies, the reader sees the
end of its stdout and the writer starts a new one, so at most the utterance in flight is lost;
a worker that keeps dying before it is ready is restarted with growing pauses.
"""

from __future__ import annotations

import collections
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from junto.config import process_environment
from junto.speech.caption_worker import (
    KIND_CONFIG,
    KIND_DRAIN,
    KIND_END,
    KIND_HOTWORDS,
    KIND_JSON,
    KIND_PACKET,
    KIND_STATS,
    PACKET,
    STREAM,
    StreamKey,
    WorkerConfig,
    frame,
    read_frame,
)

log = logging.getLogger("junto.speech")


def worker_process_environment() -> dict[str, str]:
    """The worker's environment: what any child needs, and single-threaded numpy.

    OpenBLAS starts a thread per core for numpy's matrix products (the mel filterbank of every
    caption) and lets it spin between them: measured, a third of the worker's CPU went to that
    spinning. Whisper's own threads are CTranslate2's (`cpu_threads`), unaffected."""
    return {**process_environment(), "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


Message = dict[str, Any]

_RESPAWN = b"respawn"  # queue marker: the reader saw the worker die
_WARM = b"warm"  # queue marker: start the worker now if none runs
_STOP = b"stop"
MAX_BACKOFF_S = 30.0
# Conversations whose vocabulary a new worker is told again (the most recent ones).
MAX_HOTWORDS = 64


class CaptionProcess:
    """Start with `start()`; feed with `send_packet` / `end_stream`; `stop()` at the end."""

    def __init__(
        self,
        config: WorkerConfig,
        on_message: Callable[[Message], None],
        *,
        queue_max: int = 3000,
        coalesce_s: float = 0.1,
        python: str = sys.executable,
    ) -> None:
        self.config = config
        self.on_message = on_message
        self.queue_max = queue_max  # packets: about 30 s of one speaker, 15 s of two
        self.python = python
        self.coalesce_s = coalesce_s
        self.dropped = 0  # packets dropped because the queue was full or no worker ran
        self.restarts = 0
        self._items: collections.deque[bytes] = collections.deque()
        self._packets_queued = 0
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._spawned_at = 0.0
        self._backoff = 0.0
        self._active: set[StreamKey] = set()
        # conversation id -> its hotwords frame, sent again to a restarted worker.
        self._hotwords: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="caption-writer", daemon=True)
        self._readers: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def ready(self) -> bool:
        """A worker is running with its model loaded."""
        return self._ready and self.pid is not None

    def start(self, *, spawn_now: bool = False) -> None:
        """Start the writer; the worker itself starts with the first stream (or now)."""
        self._writer.start()
        if spawn_now:
            self.warm()

    def warm(self) -> None:
        """Start the worker (and load its model) now if none is running."""
        self._put(_WARM, control=True)

    # ---- called from the event loop (never blocks) ------------------------------------------

    def send_packet(self, key: StreamKey, wall: float, data: bytes) -> bool:
        """Queue one Opus packet that arrived at `wall` (time.time()); False if dropped."""
        self._active.add(key)
        item = frame(KIND_PACKET, PACKET.pack(key[0], key[1], wall) + data)
        return self._put(item, control=False)

    def end_stream(self, key: StreamKey) -> None:
        self._active.discard(key)
        self._put(frame(KIND_END, STREAM.pack(*key)), control=True)

    def set_hotwords(self, conversation_id: int, text: str) -> None:
        """What the captions of `conversation_id` should expect to hear (names, terms);
        "" for nothing."""
        item = frame(
            KIND_HOTWORDS, json.dumps({"conversation_id": conversation_id, "text": text}).encode()
        )
        with self._cond:
            self._hotwords[conversation_id] = item
            self._hotwords.move_to_end(conversation_id)
            while len(self._hotwords) > MAX_HOTWORDS:
                self._hotwords.popitem(last=False)
        self._put(item, control=True)

    def drain(self, token: str) -> None:
        """Ask for a `drained` message once everything sent so far is transcribed."""
        self._put(frame(KIND_DRAIN, json.dumps({"token": token}).encode()), control=True)

    def request_stats(self) -> None:
        self._put(frame(KIND_STATS, b""), control=True)

    def stop(self, timeout: float = 10.0) -> None:
        """End the worker (it finishes nothing further) and the threads."""
        self._stopping.set()
        self._put(_STOP, control=True)
        if self._writer.is_alive():
            self._writer.join(timeout)
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for reader in self._readers:
            reader.join(timeout)

    def _put(self, item: bytes, *, control: bool) -> bool:
        with self._cond:
            if not control:
                if self._packets_queued >= self.queue_max:
                    self.dropped += 1
                    return False
                self._packets_queued += 1
            self._items.append(item)
            self._cond.notify()
        return True

    # ---- the writer thread --------------------------------------------------------------------

    def _take_nowait(self) -> list[bytes]:
        with self._cond:
            batch = list(self._items)
            self._items.clear()
            self._packets_queued = 0
        return batch

    def _take(self) -> list[bytes]:
        with self._cond:
            while not self._items:
                self._cond.wait()
            batch = list(self._items)
            self._items.clear()
            self._packets_queued = 0
        return batch

    def _write_loop(self) -> None:
        while True:
            batch = self._take()
            # Let packets gather for a moment: one write of several packets wakes the worker
            # once. Waking it for every 20 ms packet cost four times the CPU of the work itself
            # (cold caches on every wake-up; bench/README.md). Adds at most this to latency.
            if self.coalesce_s and not self._stopping.wait(self.coalesce_s):
                batch += self._take_nowait()
            out: list[bytes] = []
            for item in batch:
                if item is _STOP:
                    self._flush(out)
                    self._close_stdin()
                    return
                if item is _RESPAWN or item is _WARM:
                    self._flush(out)
                    out = []
                    if item is _WARM or self._active:
                        self._ensure_worker()
                    continue
                out.append(item)
            if out:
                self._ensure_worker()
                self._flush(out)

    def _flush(self, items: list[bytes]) -> None:
        proc = self._proc
        if not items:
            return
        if proc is None or proc.stdin is None or proc.poll() is not None:
            self.dropped += sum(1 for i in items if i[:1] == bytes([KIND_PACKET]))
            return
        try:
            proc.stdin.write(b"".join(items))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            # Died mid-write; the reader notices the end of its output and asks for a new one.
            self.dropped += sum(1 for i in items if i[:1] == bytes([KIND_PACKET]))

    def _ensure_worker(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return
        if self._stopping.is_set():
            return
        if proc is not None:
            # Died before it was ready (a missing model, a broken install): wait longer each time.
            if not self._ready and time.monotonic() - self._spawned_at < 30:
                self._backoff = min(MAX_BACKOFF_S, max(1.0, self._backoff * 2))
            else:
                self._backoff = 0.0
            if self._backoff and self._stopping.wait(self._backoff):
                return
            self.restarts += 1
        self._spawn()

    def _spawn(self) -> None:
        self._ready = False
        self._spawned_at = time.monotonic()
        proc = subprocess.Popen(
            [self.python, "-m", "junto.speech.caption_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=worker_process_environment(),
        )
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        log.info("caption worker started (pid %s)", proc.pid)
        with self._cond:
            hotwords = list(self._hotwords.values())
        # A new worker knows nothing of the conversations under way: tell it their vocabulary
        # before any packet (a hint already queued for it arrives twice, harmlessly).
        proc.stdin.write(frame(KIND_CONFIG, self.config.to_json()) + b"".join(hotwords))
        proc.stdin.flush()
        reader = threading.Thread(
            target=self._read_loop, args=(proc, proc.stdout), name="caption-reader", daemon=True
        )
        self._readers = [r for r in self._readers if r.is_alive()]
        self._readers.append(reader)
        reader.start()

    def _close_stdin(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass

    # ---- the reader thread (one per worker process) -------------------------------------------

    def _read_loop(self, proc: subprocess.Popen[bytes], stdout: IO[bytes]) -> None:
        while (got := read_frame(stdout)) is not None:
            kind, payload = got
            if kind != KIND_JSON:
                continue
            try:
                message: Message = json.loads(payload)
            except ValueError:
                continue
            if message.get("type") == "ready":
                self._ready = True
                self._backoff = 0.0
            elif message.get("type") == "error":
                log.error("caption worker: %s", message.get("message"))
            try:
                self.on_message(message)
            except Exception:
                log.exception("handling a caption worker message failed")
        code = proc.wait()
        if self._stopping.is_set():
            return
        log.warning("caption worker (pid %s) exited with %s; starting a new one", proc.pid, code)
        try:
            self.on_message({"type": "exited", "returncode": code})
        except Exception:
            log.exception("handling a caption worker message failed")
        self._put(_RESPAWN, control=True)
