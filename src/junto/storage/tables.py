"""The relational schema. One class per table; domain logic lives in the domain modules."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from junto.enums import ConversationState, JobState, RecordingState, Role, Visibility
from junto.storage.types import UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native ENUM types) so migrations stay portable.
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class User(Base):
    """A person: a member with a password, or a guest known only by a display name."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str | None] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str] = mapped_column(String(7))  # "#rrggbb"
    bio: Mapped[str] = mapped_column(String(500), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_guest: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Session(Base):
    """A signed-in browser. Only the SHA-256 of the cookie token is stored."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PasswordReset(Base):
    __tablename__ = "password_resets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RateBucket(Base):
    """A token bucket shared by every process of the node (junto.ratelimit.take_shared): what
    one person may still do of one costly kind (make snippets, conversations, invites)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)  # "<kind>:<user id>"
    tokens: Mapped[float]
    # Seconds since the Unix epoch as a float: the refill is arithmetic on it in one SQL
    # statement, the same on SQLite and PostgreSQL.
    updated: Mapped[float]


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="en")
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility), default=Visibility.PUBLIC)
    state: Mapped[ConversationState] = mapped_column(
        _enum(ConversationState), default=ConversationState.SCHEDULED, index=True
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The last event id handed out in this conversation's room stream (see events/log.py).
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0)
    stage_locked: Mapped[bool] = mapped_column(Boolean, default=False)


class ConversationTag(Base):
    __tablename__ = "conversation_tags"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class Participant(Base):
    """A person's standing in one conversation: role, raised hand, block."""

    __tablename__ = "participants"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role), default=Role.AUDIENCE)
    hand_raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Invite(Base):
    """An invite link. The link carries a signed token naming this row; revoking deletes it."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role), default=Role.SPEAKER)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)


class RoomEvent(Base):
    """The durable room stream: every event a late joiner or a resuming client must see.

    `seq` is the event id clients resume from; it increases by one per event within a
    conversation and is allocated from conversations.last_seq in the same transaction.
    """

    __tablename__ = "room_events"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    payload: Mapped[str] = mapped_column(Text)  # JSON object, as sent to clients
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_conversation_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class BackchannelPost(Base):
    __tablename__ = "backchannel_posts"
    __table_args__ = (Index("ix_backchannel_conversation_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(String(1000))
    hashtags: Mapped[str] = mapped_column(String(500), default="")  # space-separated, lower case
    # Milliseconds since the conversation went live (None if posted before it started), so the
    # post can be replayed at its moment in the recording.
    offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Reaction(Base):
    __tablename__ = "reactions"
    __table_args__ = (UniqueConstraint("post_id", "user_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(
        ForeignKey("backchannel_posts.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MediaConsent(Base):
    """A speaker's consent to be recorded, transcribed and published in one conversation."""

    __tablename__ = "media_consents"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    given_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    statement: Mapped[str] = mapped_column(String(500))


# ---- recording, captions, transcripts, jobs (issue 4) -------------------------------------------


class Recording(Base):
    """One continuous piece of one speaker's source, recorded from the SFU's taps.

    A speaker who leaves and comes back, or whose node restarts, gets several pieces; each keeps
    its wall-clock start so that pieces and speakers can be aligned on the conversation's timeline.
    """

    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(16))  # "camera" | "screen"
    state: Mapped[RecordingState] = mapped_column(
        _enum(RecordingState), default=RecordingState.RECORDING
    )
    journal_path: Mapped[str] = mapped_column(String(500))  # relative to the data dir
    path: Mapped[str | None] = mapped_column(String(500))  # the WebM, relative to the data dir
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)  # wall clock of the first packet
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Written every few seconds while recording: a piece whose heartbeat stops was orphaned by a
    # crashed process and is finalized by whoever notices (junto.recording.recovery).
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_s: Mapped[float | None]
    has_audio: Mapped[bool] = mapped_column(Boolean, default=False)
    has_video: Mapped[bool] = mapped_column(Boolean, default=False)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Caption(Base):
    """One live caption: what a speaker said, as recognised while they spoke."""

    __tablename__ = "captions"
    __table_args__ = (Index("ix_captions_conversation", "conversation_id", "start_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Milliseconds since the conversation went live (conversations.started_at).
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrackTranscript(Base):
    """The second pass over one recording piece: its words with timings (seconds from the
    piece's start), as JSON [[start, end, word, probability], ...]."""

    __tablename__ = "track_transcripts"

    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(200))
    words: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transcript(Base):
    """A conversation's final transcript (its segments are in transcript_segments)."""

    __tablename__ = "transcripts"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TranscriptSegment(Base):
    """One speaker turn of the final transcript, in time order (`seq`)."""

    __tablename__ = "transcript_segments"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    # JSON [[start_ms, end_ms, word], ...] on the conversation's timeline.
    words: Mapped[str] = mapped_column(Text)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TranscriptEdit(Base):
    """A host's correction of a segment's text or speaker, kept as history."""

    __tablename__ = "transcript_edits"
    __table_args__ = (Index("ix_transcript_edits_segment", "segment_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("transcript_segments.id", ondelete="CASCADE")
    )
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    editor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    field: Mapped[str] = mapped_column(String(16))  # "text" | "speaker"
    before: Mapped[str] = mapped_column(Text)
    after: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConversationMedia(Base):
    """A rendered file of a conversation: the composite video or the audio-only mix."""

    __tablename__ = "conversation_media"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "composite" | "audio"
    path: Mapped[str] = mapped_column(String(500))  # relative to the data dir
    mime: Mapped[str] = mapped_column(String(64))
    duration_s: Mapped[float]
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """Durable background work (junto.jobs): transcription, rendering, finalizing recordings."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_ready", "state", "run_after"),
        Index("ix_jobs_conversation", "conversation_id", "id"),
        # Claiming walks the queued jobs in (priority, id) order (junto.jobs.queue.claim).
        Index("ix_jobs_claim", "state", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    # Lower runs first: set from the kind when queued (junto.jobs.registry.PRIORITIES).
    priority: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    payload: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    state: Mapped[JobState] = mapped_column(_enum(JobState), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A running job's lease: a worker that dies stops renewing it and the job runs again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[float] = mapped_column(default=0.0)  # 0..1
    progress_note: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConversationKnowledge(Base):
    """What was learnt from a conversation's transcript (junto.knowledge): summary, chapters,
    key points, questions, decisions, action items, topics, as one JSON document."""

    __tablename__ = "conversation_knowledge"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    backend: Mapped[str] = mapped_column(String(40))  # "offline" | "llm"
    data: Mapped[str] = mapped_column(Text)  # JSON of junto.knowledge.model.Knowledge
    error: Mapped[str | None] = mapped_column(Text)  # why the LLM's result was not used
    # transcripts.updated_at of the transcript this was computed from.
    transcript_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Snippet(Base):
    """A clip of a conversation between two words, with its own page and files."""

    __tablename__ = "snippets"
    __table_args__ = (Index("ix_snippets_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(16), unique=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    start_ms: Mapped[int] = mapped_column(BigInteger)  # on the conversation's timeline
    end_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)  # the words it holds
    speakers: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of user ids heard
    state: Mapped[str] = mapped_column(String(16), default="rendering")  # rendering|ready|failed
    clip_path: Mapped[str | None] = mapped_column(String(500))  # relative to the data dir
    audio_path: Mapped[str | None] = mapped_column(String(500))
    thumb_path: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SearchPassage(Base):
    """A few sentences of one speaker, the unit that search finds (junto.search).

    The keyword index over `text` is SQLite FTS5 (`search_fts`, kept in sync by triggers) or a
    PostgreSQL tsvector column (`tsv`, generated); both are created by migration 0004 only.
    """

    __tablename__ = "search_passages"
    __table_args__ = (
        Index("ix_search_passages_conversation", "conversation_id", "start_ms"),
        {"sqlite_autoincrement": True},  # ids never reused: see junto.search.vectorstore
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    snippet_id: Mapped[int | None] = mapped_column(
        ForeignKey("snippets.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), default="en")
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float16 LE, 384 dims
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
