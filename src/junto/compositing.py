"""The composite recording: every speaker's pieces in the room's layout, with the mixed audio.

`render` is the handler of `composite.render` jobs ({"conversation_id"}). It waits until the
conversation has ended and every recording piece is finalized, then runs one ffmpeg that
decodes each piece, places it on a 1280x720 canvas at its moment on the conversation's timeline
(black where a speaker is absent), mixes all audio, and writes two files in
data_dir/recordings/<conversation_id>/: `composite.mp4` (H.264/AAC) and `audio.m4a` (AAC).

Layout, as in the room: camera tiles in a grid (1 speaker full frame, 2 side by side, 3-4 in
2x2, 5-6 in 3x2, more in a near-square grid). When anyone shared a screen, the screen gets
the large area above (1280x540) and the speakers share a strip of tiles below, for the whole
video: the layout does not change over time. Names come from files (drawtext `textfile=` with
expansion off), never from the filter graph's text, so no display name can change the graph.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select

from junto.enums import ConversationState, RecordingState
from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.jobs.ffmpeg import capabilities, find_ffmpeg, progress_seconds, stderr_tail
from junto.storage.tables import Conversation, ConversationMedia, Recording, User

log = logging.getLogger("junto.compositing")

WIDTH, HEIGHT, FPS = 1280, 720, 20
SCREEN_HEIGHT = 540  # the screen share's area when there is one; speakers get the rest
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
NAME_MAX_CHARS = 40
WAIT_S = 5.0
STALE_WORK_S = 3600.0  # a render writes its work folder all the time; an hour of quiet: dead
VIDEO_NAME, AUDIO_NAME = "composite.mp4", "audio.m4a"
_SAFE_PATH_RE = re.compile(r"[A-Za-z0-9_./-]+")
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Piece:
    """One READY recording piece, probed, placed on the conversation's timeline."""

    index: int  # the ffmpeg input number
    path: Path
    user_id: int
    source: str  # "camera" | "screen"
    offset: float  # seconds after the conversation went live
    duration: float
    has_audio: bool
    has_video: bool


# ---- layout -------------------------------------------------------------------------------------


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) for `count` camera tiles, as the room lays them out."""
    if count <= 1:
        return 1, 1
    if count == 2:
        return 2, 1
    if count <= 4:
        return 2, 2
    if count <= 6:
        return 3, 2
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def _even(value: float) -> int:
    return int(value) // 2 * 2  # H.264 in yuv420p needs even sizes


def grid(count: int, area: Tile, shape: tuple[int, int] | None = None) -> list[Tile]:
    """`count` equal tiles filling `area` row by row."""
    columns, rows = shape or grid_shape(count)
    w, h = _even(area.w / columns), _even(area.h / rows)
    return [
        Tile(area.x + (i % columns) * w, area.y + (i // columns) * h, w, h) for i in range(count)
    ]


def layout(speakers: Sequence[int], has_screen: bool) -> tuple[dict[int, Tile], Tile | None]:
    """Each speaker's tile, and the screen-share area (None without screen shares)."""
    canvas = Tile(0, 0, WIDTH, HEIGHT)
    if not has_screen:
        return dict(zip(speakers, grid(len(speakers), canvas), strict=True)), None
    if not speakers:
        return {}, canvas
    screen = Tile(0, 0, WIDTH, SCREEN_HEIGHT)
    strip = Tile(0, SCREEN_HEIGHT, WIDTH, HEIGHT - SCREEN_HEIGHT)
    tiles = grid(len(speakers), strip, (len(speakers), 1))
    return dict(zip(speakers, tiles, strict=True)), screen


def speakers_of(pieces: Sequence[Piece]) -> list[int]:
    """Speakers with camera video, in order of first appearance."""
    order: list[int] = []
    for piece in sorted(pieces, key=lambda p: (p.offset, p.index)):
        if piece.source != "screen" and piece.has_video and piece.user_id not in order:
            order.append(piece.user_id)
    return order


def clean_name(name: str) -> str:
    """A display name as drawn: one line of printable text, not too long."""
    text = " ".join(_UNPRINTABLE_RE.sub(" ", name).split())
    return text if len(text) <= NAME_MAX_CHARS else text[: NAME_MAX_CHARS - 1] + "…"


# ---- the filter graph ---------------------------------------------------------------------------


def _video_chain(piece: Piece, tile: Tile, name_file: str | None, font: Path | None) -> str:
    steps = [
        f"setpts=PTS+{piece.offset:.3f}/TB",
        f"fps={FPS}",
        f"scale={tile.w}:{tile.h}:force_original_aspect_ratio=decrease",
        f"pad={tile.w}:{tile.h}:(ow-iw)/2:(oh-ih)/2:color=black",
        "setsar=1",
    ]
    if name_file is not None and font is not None:
        size = max(14, tile.h // 18)
        steps.append(
            f"drawtext=fontfile={font}:textfile={name_file}:expansion=none:fontcolor=white:"
            f"fontsize={size}:box=1:boxcolor=black@0.55:boxborderw={size // 3}:"
            f"x=(w-text_w)/2:y=h-text_h-{size // 2}"
        )
    return f"[{piece.index}:v]{','.join(steps)}[v{piece.index}]"


def filter_graph(
    pieces: Sequence[Piece],
    total: float,
    name_files: dict[int, str],
    font: Path | None,
) -> str:
    """The whole graph: outputs [vout] (the canvas) and [aout1], [aout2] (the mix, twice)."""
    speakers = speakers_of(pieces)
    screens = [p for p in pieces if p.source == "screen" and p.has_video]
    tiles, screen_area = layout(speakers, bool(screens))
    lines = [f"color=c=black:s={WIDTH}x{HEIGHT}:r={FPS}:d={total:.3f}[base0]"]
    placed = 0
    for piece in sorted(pieces, key=lambda p: (p.offset, p.index)):
        if not piece.has_video:
            continue
        if piece.source == "screen":
            if screen_area is None:
                continue
            tile, name_file = screen_area, None
        elif piece.user_id in tiles:
            tile, name_file = tiles[piece.user_id], name_files.get(piece.user_id)
        else:
            continue
        lines.append(_video_chain(piece, tile, name_file, font))
        lines.append(
            f"[base{placed}][v{piece.index}]overlay=x={tile.x}:y={tile.y}:"
            f"eof_action=pass:repeatlast=0[base{placed + 1}]"
        )
        placed += 1
    lines.append(f"[base{placed}]format=yuv420p[vout]")
    voices = [p for p in pieces if p.has_audio]
    for piece in voices:
        # async=1 fills holes (packets lost, Opus DTX silences) with silence so the voice stays
        # on its timestamps; first_pts=0 pads a late start; adelay moves it to its offset.
        delay_ms = round(piece.offset * 1000)
        lines.append(
            f"[{piece.index}:a]aresample=48000:async=1:first_pts=0,"
            f"aformat=sample_rates=48000:channel_layouts=stereo,"
            f"adelay=delays={delay_ms}:all=1[a{piece.index}]"
        )
    if voices:
        inputs = "".join(f"[a{p.index}]" for p in voices)
        mixed = f"{inputs}amix=inputs={len(voices)}:normalize=0:dropout_transition=0"
    else:
        mixed = "anullsrc=r=48000:cl=stereo"
    lines.append(f"{mixed},apad=whole_dur={total:.3f},atrim=duration={total:.3f}[amix]")
    lines.append("[amix]asplit=2[aout1][aout2]")
    return ";\n".join(lines) + "\n"


# ---- probing ------------------------------------------------------------------------------------


def probe(path: Path) -> tuple[float, bool, bool]:
    """(duration in seconds, has audio, has video) of a media file, read with PyAV.

    Files written as a live stream may carry no duration in their header; then the packets are
    read (not decoded) to find the last timestamp.
    """
    import av

    with av.open(str(path)) as container:
        has_audio = any(s.type == "audio" for s in container.streams)
        has_video = any(s.type == "video" for s in container.streams)
        if container.duration is not None and container.duration > 0:
            return container.duration / 1_000_000, has_audio, has_video
        start: float | None = None
        end = 0.0
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            start = t if start is None else min(start, t)
            end = max(end, t + float((packet.duration or 0) * packet.time_base))
        return max(end - (start or 0.0), 0.0), has_audio, has_video


# ---- the handler --------------------------------------------------------------------------------


async def render(ctx: JobContext) -> None:
    """Render the conversation's composite video and audio-only mix (a composite.render job)."""
    conversation_id = int(ctx.payload["conversation_id"])
    data_dir = ctx.settings.data_dir
    origin, rows, names = await _recordings(ctx, conversation_id)
    if origin is None or not rows:
        await _forget_media(ctx, conversation_id)
        await ctx.progress(1.0, "nothing was recorded")
        return
    await ctx.progress(0.0, "reading the recordings")
    pieces, unreadable = await asyncio.to_thread(_probe_all, rows, data_dir, origin)
    if not pieces:
        raise JobFailed(
            f"none of the {len(rows)} recordings could be read: " + "; ".join(unreadable[:3])
        )
    for problem in unreadable:
        log.warning("conversation %s: skipping a recording: %s", conversation_id, problem)
    out_dir = data_dir / "recordings" / str(conversation_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_sweep, out_dir)
    with tempfile.TemporaryDirectory(prefix=".render-", dir=out_dir) as work_name:
        work = Path(work_name)
        outputs = await _run_ffmpeg(ctx, pieces, names, work, data_dir)
        await ctx.progress(0.99, "checking the files")
        measured = await asyncio.to_thread(lambda: [probe(p)[0] for p in outputs])
        finals = [out_dir / VIDEO_NAME, out_dir / AUDIO_NAME]
        for done, final in zip(outputs, finals, strict=True):
            os.replace(done, final)  # readers never see a half-written file
    await _store_media(ctx, conversation_id, finals, measured)
    skipped = f" ({len(unreadable)} unreadable recording(s) left out)" if unreadable else ""
    await ctx.progress(1.0, f"rendered {_clock(max(measured))}{skipped}")


async def _recordings(
    ctx: JobContext, conversation_id: int
) -> tuple[datetime | None, list[Recording], dict[int, str]]:
    """(the timeline's origin, the READY pieces, speakers' names), or NotReady while the
    conversation is live or any piece is still being recorded or finalized."""
    async with ctx.db() as db:
        conv = await db.get(Conversation, conversation_id)
        if conv is None:
            raise JobFailed(f"conversation {conversation_id} no longer exists")
        if conv.state == ConversationState.LIVE:
            raise NotReady(WAIT_S, "waiting for the conversation to end")
        ours = Recording.conversation_id == conversation_id
        unfinished = await db.scalar(
            select(Recording.id)
            .where(ours, Recording.state.in_([RecordingState.RECORDING, RecordingState.FINALIZING]))
            .limit(1)
        )
        if unfinished is not None:
            raise NotReady(WAIT_S, "waiting for recordings to finish")
        ready = (
            select(Recording)
            .where(ours, Recording.state == RecordingState.READY, Recording.path.is_not(None))
            .order_by(Recording.started_at, Recording.id)
        )
        rows = list(await db.scalars(ready))
        people = await db.scalars(select(User).where(User.id.in_([r.user_id for r in rows])))
        return conv.started_at, rows, {u.id: u.display_name for u in people}


async def _store_media(
    ctx: JobContext, conversation_id: int, files: Sequence[Path], durations: Sequence[float]
) -> None:
    data_dir = ctx.settings.data_dir
    kinds = (("composite", "video/mp4"), ("audio", "audio/mp4"))
    async with ctx.db() as db:
        for path, (kind, mime), seconds in zip(files, kinds, durations, strict=True):
            row = ConversationMedia(
                conversation_id=conversation_id,
                kind=kind,
                path=str(path.relative_to(data_dir)),
                mime=mime,
                duration_s=round(seconds, 3),
                bytes=path.stat().st_size,
            )
            await db.merge(row)  # a render again replaces the rows of the last one
        await db.commit()


async def _forget_media(ctx: JobContext, conversation_id: int) -> None:
    async with ctx.db() as db:
        await db.execute(
            delete(ConversationMedia).where(ConversationMedia.conversation_id == conversation_id)
        )
        await db.commit()


def _probe_all(
    rows: Sequence[Recording], data_dir: Path, origin: datetime
) -> tuple[list[Piece], list[str]]:
    pieces: list[Piece] = []
    unreadable: list[str] = []
    for row in rows:
        assert row.path is not None
        path = data_dir / row.path
        try:
            duration, has_audio, has_video = probe(path)
        except Exception as exc:
            unreadable.append(f"recording {row.id}: {type(exc).__name__}: {exc}")
            continue
        if duration <= 0 or not (has_audio or has_video):
            unreadable.append(f"recording {row.id}: no audio or video in it")
            continue
        offset = max((row.started_at - origin).total_seconds(), 0.0)
        pieces.append(
            Piece(
                len(pieces), path, row.user_id, row.source, offset, duration, has_audio, has_video
            )
        )
    return pieces, unreadable


def _sweep(out_dir: Path) -> None:
    """Remove work folders that killed workers left behind (untouched for STALE_WORK_S)."""
    for work in out_dir.glob(".render-*"):
        try:
            touched = max([work.stat().st_mtime] + [f.stat().st_mtime for f in work.iterdir()])
            if time.time() - touched > STALE_WORK_S:
                shutil.rmtree(work, ignore_errors=True)
        except OSError:
            continue  # another worker removed it first


def _clock(seconds: float) -> str:
    whole = round(seconds)
    hours, minutes, secs = whole // 3600, whole // 60 % 60, whole % 60
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _write_names(pieces: Sequence[Piece], names: dict[int, str], work: Path) -> dict[int, str]:
    """One text file per speaker (name{user_id}.txt) for drawtext's textfile=."""
    files: dict[int, str] = {}
    for user_id in speakers_of(pieces):
        text = clean_name(names.get(user_id, ""))
        if text:
            file_name = f"name{user_id}.txt"
            (work / file_name).write_text(text, encoding="utf-8")
            files[user_id] = file_name
    return files


def _prepare(
    ffmpeg: str, pieces: Sequence[Piece], names: dict[int, str], work: Path, total: float
) -> list[str]:
    """Write the filter graph (and the name files) into `work`; return ffmpeg's arguments."""
    caps = capabilities(ffmpeg)
    usable = caps.drawtext and FONT.is_file() and _SAFE_PATH_RE.fullmatch(str(FONT)) is not None
    font = FONT if usable else None
    name_files = _write_names(pieces, names, work) if font is not None else {}
    (work / "graph.txt").write_text(filter_graph(pieces, total, name_files, font))
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning",
            "-progress", "pipe:1", "-nostats"]  # fmt: skip
    for piece in pieces:
        args += ["-i", str(piece.path)]
    args += caps.filter_script_args("graph.txt")
    duration = ["-t", f"{total:.3f}"]
    # A keyframe every second, at fixed places (no scene-cut keyframes): snippets (junto.clips)
    # are cut by stream copy from the keyframe at or before their start, so short GOPs keep
    # the part decoded and then hidden by the edit list under a second. Costs ~5-10% in size.
    gop = ["-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0"]
    audio = ["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-movflags", "+faststart"]
    args += ["-map", "[vout]", "-map", "[aout1]",
             "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p",
             "-r", str(FPS), *gop, *audio, *duration, "-f", "mp4", VIDEO_NAME]  # fmt: skip
    args += ["-map", "[aout2]", *audio, *duration, "-f", "mp4", AUDIO_NAME]
    return args


async def _run_ffmpeg(
    ctx: JobContext,
    pieces: Sequence[Piece],
    names: dict[int, str],
    work: Path,
    data_dir: Path,
) -> list[Path]:
    total = max(p.offset + p.duration for p in pieces)
    ffmpeg = find_ffmpeg(ctx.settings)
    args = await asyncio.to_thread(_prepare, ffmpeg, pieces, names, work, total)
    await ctx.progress(0.0, f"rendering {_clock(total)} of video")
    code, errors = await _watch(ctx, args, work, total)
    if code != 0:
        tail = stderr_tail(errors, 20, hide=(str(work), str(data_dir)))
        raise JobFailed(f"ffmpeg failed (exit status {code}):\n{tail}")
    return [work / VIDEO_NAME, work / AUDIO_NAME]


async def _watch(ctx: JobContext, args: list[str], work: Path, total: float) -> tuple[int, str]:
    """Run ffmpeg in `work`, reporting its progress; kill it if the job is cancelled.

    Returns its exit status and the end of what it wrote to stderr.
    """
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=work,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_die_with_parent(),
    )
    errors: deque[str] = deque(maxlen=200)

    async def collect() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            errors.append(line.decode(errors="replace"))

    collecting = asyncio.create_task(collect())
    try:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            seconds = progress_seconds(raw.decode(errors="replace"))
            if seconds is not None and total > 0:
                done = min(seconds / total, 1.0)
                await ctx.progress(0.98 * done, f"rendering: {_clock(seconds)} of {_clock(total)}")
        code = await proc.wait()
        await collecting
        return code, "".join(errors)
    finally:
        if proc.returncode is None:  # cancelled (worker stopping, lease lost)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        collecting.cancel()


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, have the kernel kill ffmpeg when the worker dies (even by SIGKILL), so a
    killed worker leaves no orphan encoding half a file."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)

    return arm
