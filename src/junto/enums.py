"""The domain's closed sets of values: a conversation's state and visibility, a participant's role,
a recording piece's and a job's state.

They sit below storage (storage/tables.py stores them as plain strings) so that any layer can
name them without importing the tables (docs/ARCHITECTURE.md, Layers).
"""

from __future__ import annotations

import enum


class ConversationState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    PUBLISHED = "published"


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    UNLISTED = "unlisted"
    INVITE_ONLY = "invite_only"


class Role(enum.StrEnum):
    HOST = "host"
    COHOST = "cohost"
    SPEAKER = "speaker"
    AUDIENCE = "audience"


class RecordingState(enum.StrEnum):
    RECORDING = "recording"  # packets are being appended to the journal
    FINALIZING = "finalizing"  # the journal is closed (or orphaned); a job turns it into WebM
    READY = "ready"  # the WebM file is written
    FAILED = "failed"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
