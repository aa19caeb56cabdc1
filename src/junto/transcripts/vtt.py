"""The transcript's WebVTT file next to the conversation's recordings.

The WebVTT text itself is rendered by junto.speech.webvtt (shared with the live captions): one
cue per segment with the speaker as a voice span (`<v Name>`), escaped.
"""

from __future__ import annotations

import os
from pathlib import Path


def write(path: Path, text: str) -> None:
    """Write atomically (temporary file, then rename), so a reader never sees half a file.

    Blocking file I/O: call it from a worker thread, not from an event loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def file_path(data_dir: Path, conversation_id: int) -> Path:
    """Where the transcript's WebVTT file lives, next to the conversation's recordings."""
    return data_dir / "recordings" / str(conversation_id) / "transcript.vtt"
