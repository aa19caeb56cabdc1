"""Cutting a snippet's files out of a conversation's rendered media with ffmpeg, fast.

A snippet is made while its creator waits, so nothing is re-encoded that need not be:

- `clip.mp4`: stream copy from composite.mp4 with input seeking (`-ss` before `-i`). ffmpeg then
  starts at the keyframe at or before the start and writes an MP4 edit list that hides the
  frames before it, so players (ffmpeg, Chromium) start exactly at the start. The composite has a
  keyframe every second (junto.compositing), so at most a second is decoded and not shown.
- `audio.m4a`: stream copy from the audio mix the same way: AAC frames are 21 ms and the edit
  list (skip samples) makes decoders start on the exact sample (measured: a click 377.00 ms into
  the cut is decoded at 377.02 ms). Re-encoding 60 s of AAC costs ~0.5-0.8 s; copying ~0.1 s.
- `thumbnail.jpg`: one decoded frame at the start, 640 wide.
- `captions.vtt`: the snippet's words re-timed from 0, written here without ffmpeg.

The ffmpeg runs are subprocesses run side by side (asyncio, so the event loop is never blocked),
each with a timeout; any failure raises ClipError with the end of ffmpeg's error output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from junto.jobs.ffmpeg import stderr_tail
from junto.speech.words import attaches, join_words

CLIP_NAME, AUDIO_NAME, THUMB_NAME, CAPTIONS_NAME = (
    "clip.mp4",
    "audio.m4a",
    "thumbnail.jpg",
    "captions.vtt",
)
THUMB_WIDTH = 640
TIMEOUT_S = 60.0
CUE_WORDS = 8  # words per caption cue
CUE_MAX_MS = 4000


class ClipError(Exception):
    """ffmpeg could not cut a file (or took longer than the timeout)."""


@dataclass(frozen=True)
class Word:
    start_ms: int
    end_ms: int
    text: str
    user_id: int | None
    # Continues the word before (",500" after "4"); None when not stored (junto.speech.words).
    joins: bool | None = None


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def clip_args(
    ffmpeg: str, source: Path, out: Path, start_ms: int, end_ms: int, *, video: bool = True
) -> list[str]:
    """Stream copy of [start, end) of `source` into `out` (its audio, and video if `video`)."""
    maps = ["-map", "0:v:0?"] if video else []
    return [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-ss", _seconds(start_ms), "-i", str(source), "-t", _seconds(end_ms - start_ms),
            *maps, "-map", "0:a:0?", "-c", "copy", "-sn", "-dn",
            "-movflags", "+faststart", "-f", "mp4", str(out)]  # fmt: skip


def thumb_args(ffmpeg: str, source: Path, out: Path, at_ms: int) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-ss", _seconds(at_ms), "-i", str(source), "-map", "0:v:0", "-frames:v", "1",
            "-vf", f"scale={THUMB_WIDTH}:-2", "-q:v", "4", "-f", "image2", str(out)]  # fmt: skip


async def run(args: Sequence[str], timeout_s: float, hide: tuple[str, ...] = ()) -> None:
    """Run one ffmpeg; ClipError when it fails or outlives `timeout_s` (it is killed)."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, errors = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        raise ClipError(f"ffmpeg took longer than {timeout_s:.0f} s") from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: leave no ffmpeg behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        tail = stderr_tail(errors.decode(errors="replace"), 8, hide=hide)
        raise ClipError(f"ffmpeg failed (exit status {proc.returncode}): {tail}")


async def cut(
    ffmpeg: str,
    out_dir: Path,
    start_ms: int,
    end_ms: int,
    *,
    composite: Path | None,
    audio: Path | None,
    timeout_s: float = TIMEOUT_S,
    hide: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Write the clip, audio and thumbnail of [start_ms, end_ms) into `out_dir`; returns
    {"clip"|"audio"|"thumb": path} for what was made (no video: no clip, no thumbnail)."""
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    runs: dict[str, list[str]] = {}
    if composite is not None:
        runs["clip"] = clip_args(ffmpeg, composite, out_dir / CLIP_NAME, start_ms, end_ms)
        runs["thumb"] = thumb_args(ffmpeg, composite, out_dir / THUMB_NAME, start_ms)
    source = audio or composite
    if source is not None:
        runs["audio"] = clip_args(
            ffmpeg, source, out_dir / AUDIO_NAME, start_ms, end_ms, video=False
        )
    if not runs:
        raise ClipError("the conversation has no media to cut")
    results = await asyncio.gather(
        *(run(args, timeout_s, hide) for args in runs.values()), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    made = {"clip": CLIP_NAME, "thumb": THUMB_NAME, "audio": AUDIO_NAME}
    return {kind: out_dir / made[kind] for kind in runs}


# ---- captions -----------------------------------------------------------------------------------


def _stamp(ms: int) -> str:
    ms = max(0, ms)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _cue_text(text: str) -> str:
    # WebVTT cue payloads are HTML-like: escape what would start a tag or entity, and never let
    # a word end the cue ("-->" on its own, blank lines).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _continues(previous: Word, word: Word) -> bool:
    return attaches(previous.text, word.text) if word.joins is None else word.joins


def captions_vtt(words: Sequence[Word], start_ms: int, end_ms: int) -> str:
    """WebVTT of `words`, re-timed so the clip's start is 0, a few words per cue."""
    lines = ["WEBVTT", ""]
    cue: list[Word] = []

    def flush() -> None:
        if not cue:
            return
        begin = max(cue[0].start_ms, start_ms) - start_ms
        finish = min(cue[-1].end_ms, end_ms) - start_ms
        text = _cue_text(join_words((w.text, w.joins) for w in cue))
        lines.extend([f"{_stamp(begin)} --> {_stamp(max(finish, begin + 1))}", text, ""])
        cue.clear()

    for word in words:
        if cue and (
            word.user_id != cue[0].user_id
            or (
                (len(cue) >= CUE_WORDS or word.end_ms - cue[0].start_ms > CUE_MAX_MS)
                # A cue never ends inside a word: "4" and ",500" stay together.
                and not _continues(cue[-1], word)
            )
        ):
            flush()
        cue.append(word)
    flush()
    return "\n".join(lines)
