"""Which handler runs a job of which kind.

Handlers are named by dotted path and imported only when a job of their kind runs, so a worker
does not load Whisper to render a video, and `import junto.jobs` stays cheap for the web side.

Each kind also has a priority: workers claim ready jobs in (priority, id) order (junto.jobs.queue),
lowest first. After a conversation ends people wait for its transcript first (a couple of seconds
of work per track), then for what is learnt from it (summary, search); the composite video takes
about a quarter of the conversation's length to render and comes last. First in, first out made
a 2-minute conversation's transcript wait about 30 s behind its video (issue 13).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the queue imports this module for priorities; the context imports the queue
    from junto.jobs.context import JobContext

Handler = Callable[["JobContext"], Coroutine[Any, Any, None]]

HANDLER_PATHS: dict[str, str] = {
    "recording.finalize": "junto.recording.finalize:run",
    "transcript.track": "junto.transcripts.jobs:transcribe_track",
    "transcript.build": "junto.transcripts.jobs:build",
    "transcript.ahead": "junto.transcripts.ahead:transcribe_ahead",
    "composite.render": "junto.compositing:render",
    "knowledge.extract": "junto.knowledge.jobs:extract",
    "search.index": "junto.search.jobs:index",
    "housekeeping.sweep": "junto.housekeeping:run",
}

TRANSCRIPT_PRIORITY = 10
# Transcribing pieces while they are recorded: after any ended conversation's transcript.
AHEAD_PRIORITY = 15
KNOWLEDGE_PRIORITY = 20
DEFAULT_PRIORITY = 30  # the composite video, and any kind not listed (a test's, a plugin's)
HOUSEKEEPING_PRIORITY = 40  # never urgent: when nothing people wait for is queued
PRIORITIES: dict[str, int] = {
    "recording.finalize": TRANSCRIPT_PRIORITY,
    "transcript.track": TRANSCRIPT_PRIORITY,
    "transcript.build": TRANSCRIPT_PRIORITY,
    "transcript.ahead": AHEAD_PRIORITY,
    "knowledge.extract": KNOWLEDGE_PRIORITY,
    "search.index": KNOWLEDGE_PRIORITY,
    "composite.render": DEFAULT_PRIORITY,
    "housekeeping.sweep": HOUSEKEEPING_PRIORITY,
}

_registered: dict[str, Handler] = {}


def priority_of(kind: str) -> int:
    """The priority jobs of `kind` are queued with (lower runs first)."""
    return PRIORITIES.get(kind, DEFAULT_PRIORITY)


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
