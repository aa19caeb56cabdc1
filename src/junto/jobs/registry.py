"""Which handler runs a job of which kind.

Handlers are named by dotted path and imported only when a job of their kind runs, so a worker
does not load Whisper to render a video, and `import junto.jobs` stays cheap for the web side.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine
from typing import Any

from junto.jobs.context import JobContext

Handler = Callable[[JobContext], Coroutine[Any, Any, None]]

HANDLER_PATHS: dict[str, str] = {
    "recording.finalize": "junto.recording.finalize:run",
    "transcript.track": "junto.transcripts.jobs:transcribe_track",
    "transcript.build": "junto.transcripts.jobs:build",
    "composite.render": "junto.compositing:render",
    "knowledge.extract": "junto.knowledge.jobs:extract",
    "search.index": "junto.search.jobs:index",
}

_registered: dict[str, Handler] = {}


class UnknownKind(LookupError):
    """No handler is known for this kind of job."""


def register(kind: str, handler: Handler) -> None:
    """Add (or replace) the handler of `kind` in this process, e.g. a test's own kind."""
    _registered[kind] = handler


def kinds() -> list[str]:
    """Every kind this process knows a handler for."""
    return sorted({*HANDLER_PATHS, *_registered})


def resolve(kind: str) -> Handler:
    """The handler of `kind`, imported on first use.

    Raises UnknownKind, or ImportError/AttributeError if the handler's module is broken.
    """
    if kind in _registered:
        return _registered[kind]
    path = HANDLER_PATHS.get(kind)
    if path is None:
        raise UnknownKind(f"no handler for kind {kind}")
    module_name, _, attribute = path.partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler
