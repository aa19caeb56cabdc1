"""Finding an ffmpeg binary, what it can do, and reading its progress and errors."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from junto.config import Settings

_VERSION_RE = re.compile(r"ffmpeg version n?(\d+)\.")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\x1b\[[0-9;]*[A-Za-z]")


def find_ffmpeg(settings: Settings) -> str:
    """settings.ffmpeg, else the ffmpeg on PATH, else the static one from imageio-ffmpeg."""
    if settings.ffmpeg:
        return settings.ffmpeg
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg  # type: ignore[import-untyped]

    path: str = imageio_ffmpeg.get_ffmpeg_exe()
    return path


@dataclass(frozen=True)
class Capabilities:
    major_version: int | None
    drawtext: bool

    def filter_script_args(self, script: Path | str) -> list[str]:
        """Arguments that read the filter graph from a file: ffmpeg 7 replaced
        `-filter_complex_script FILE` (gone in 8) by `-/filter_complex FILE`."""
        if self.major_version is not None and self.major_version < 7:
            return ["-filter_complex_script", str(script)]
        return ["-/filter_complex", str(script)]


@functools.cache
def capabilities(ffmpeg: str) -> Capabilities:
    """What this ffmpeg binary offers (asked once per binary and process)."""
    version = subprocess.run(
        [ffmpeg, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30
    )
    match = _VERSION_RE.search(version.stdout)
    filters = subprocess.run(
        [ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=30
    )
    has_drawtext = any(
        line.split()[1:2] == ["drawtext"] for line in filters.stdout.splitlines() if line.strip()
    )
    return Capabilities(int(match.group(1)) if match else None, has_drawtext)


def progress_seconds(line: str) -> float | None:
    """The output time in one line of `-progress` output, if the line carries it."""
    key, _, value = line.strip().partition("=")
    if key in ("out_time_us", "out_time_ms") and value.strip().lstrip("-").isdigit():
        # Both keys are in microseconds (out_time_ms is misnamed in ffmpeg).
        return max(int(value) / 1_000_000, 0.0)
    return None


def stderr_tail(text: str, lines: int = 20, hide: tuple[str, ...] = ()) -> str:
    """The last `lines` lines of ffmpeg's stderr, safe to show: no control characters or
    terminal escapes, and the given paths (the data dir) replaced by "…"."""
    for path in sorted(hide, key=len, reverse=True):
        if path:
            text = text.replace(path, "…")
    clean = [_CONTROL_RE.sub("", line).rstrip() for line in text.splitlines()]
    kept = [line[:300] for line in clean if line.strip()]
    return "\n".join(kept[-lines:])
