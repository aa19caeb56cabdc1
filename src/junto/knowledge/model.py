"""What the knowledge pipeline learns from a transcript, as stored and as pages read it.

Times are milliseconds on the conversation's timeline (as in the transcript); speakers are user
ids, looked up at render time because display names change.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Moment(BaseModel):
    text: str
    start_ms: int
    end_ms: int
    speaker_id: int | None = None


class Chapter(BaseModel):
    title: str
    start_ms: int
    end_ms: int
    summary: str = ""


class ActionItem(Moment):
    owner_id: int | None = None
    owner: str | None = None  # a name as said, when it matches no participant


class Topic(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)


class Knowledge(BaseModel):
    backend: str  # "offline" | "llm"
    model: str
    computed_at: datetime
    abstract: str | None = None  # the LLM's prose summary; None offline
    summary: list[Moment] = []
    chapters: list[Chapter] = []
    key_points: list[Moment] = []
    questions: list[Moment] = []
    decisions: list[Moment] = []
    action_items: list[ActionItem] = []
    topics: list[Topic] = []


class BackendError(RuntimeError):
    """A knowledge backend (junto.knowledge.backends) cannot deliver: the message says why, fit
    to store and show (never a secret such as an API key or a URL with credentials)."""
