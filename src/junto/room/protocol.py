"""The client side of the realtime protocol (docs/protocol.md): one pydantic model per frame.

`parse_client_frame` turns a decoded JSON object into one of these models, or raises
`ActionError("bad_message", ...)` naming the field at fault, so every caller (the WebSocket hub,
the REST mirror, tests) rejects bad input with the same words. The models are strict: no
coercion ("1" is not an id, 1 is not a bool) and no unknown fields, because a client that sends
something else has a bug we want it to hear about.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

PROTOCOL_VERSION = 1

# The longest text a frame may carry at all; the per-stream limits (settings.limits) are lower
# and are checked by junto.room.actions so that they can be configured per node.
BODY_HARD_MAX = 16_384

# JavaScript clients cannot represent integers above 2**53 exactly (event ids, BIGINT).
_MAX_ID = 2**53 - 1
# Row ids (users, messages, posts) are 32-bit INTEGER columns: PostgreSQL refuses a larger
# parameter outright, which must be a bad_message rather than a server error.
MAX_ROW_ID = 2**31 - 1

ReactionKind = Literal["insight", "agree", "love", "curious", "question", "disagree"]
REACTION_KINDS: tuple[str, ...] = get_args(ReactionKind)

# Roles a host may give with `role.set` (a new host is made by the conversation's owner elsewhere).
AssignableRole = Literal["cohost", "speaker", "audience"]


class ErrorCode(enum.StrEnum):
    """`error.code` values (docs/protocol.md, "Errors")."""

    BAD_MESSAGE = "bad_message"
    TOO_LARGE = "too_large"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    HELLO_REQUIRED = "hello_required"
    NOT_SIGNED_IN = "not_signed_in"
    FORBIDDEN = "forbidden"
    BLOCKED = "blocked"
    RATE_LIMITED = "rate_limited"
    SLOW_MODE = "slow_mode"
    NOT_FOUND = "not_found"
    INVALID_STATE = "invalid_state"
    BAD_RESUME = "bad_resume"
    BUSY = "busy"  # no database connection within Settings.db_wait_seconds: retry later
    # Media (docs/protocol.md, "Media errors"); the same values as junto.media.base.MediaErrorCode.
    BAD_SDP = "bad_sdp"
    UNSUPPORTED_CODEC = "unsupported_codec"
    ICE_FAILED = "ice_failed"
    NOT_ON_STAGE = "not_on_stage"
    CONSENT_REQUIRED = "consent_required"
    NO_SUCH_TRACK = "no_such_track"
    SEATS_FULL = "seats_full"
    MEDIA_UNAVAILABLE = "media_unavailable"


class ActionError(Exception):
    """A client frame was refused. `code` is an ErrorCode value, `message` is for people.

    `retry_after` (seconds) is set for `rate_limited` and `slow_mode`, so HTTP callers can send
    Retry-After and clients can show a countdown.
    """

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = ErrorCode(code).value
        self.message = message
        self.retry_after = retry_after


# ---- frames ---------------------------------------------------------------------------------

Id = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
Body = Annotated[str, Field(min_length=1, max_length=BODY_HARD_MAX)]


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Echoed in the `ack` or `error` answering this frame.
    ref: Annotated[str, Field(max_length=64)] | None = None


class Hello(Frame):
    type: Literal["hello"]
    # Not a Literal: an unknown version is `unsupported_protocol`, not `bad_message`.
    protocol: Annotated[int, Field(ge=1)]
    resume_from: Annotated[int, Field(ge=0, le=_MAX_ID)] | None = None


class Ping(Frame):
    type: Literal["ping"]


class ChatSend(Frame):
    type: Literal["chat.send"]
    body: Body


class ChatEdit(Frame):
    type: Literal["chat.edit"]
    message_id: Id
    body: Body


class ChatDelete(Frame):
    type: Literal["chat.delete"]
    message_id: Id


class BackchannelPost(Frame):
    type: Literal["backchannel.post"]
    body: Body


class BackchannelDelete(Frame):
    type: Literal["backchannel.delete"]
    post_id: Id


class BackchannelReact(Frame):
    type: Literal["backchannel.react"]
    post_id: Id
    kind: ReactionKind
    on: bool


class HandRaise(Frame):
    type: Literal["hand.raise"]


class HandLower(Frame):
    type: Literal["hand.lower"]


class StageInvite(Frame):
    type: Literal["stage.invite"]
    user_id: Id


class StageRemove(Frame):
    type: Literal["stage.remove"]
    user_id: Id


class StageLeave(Frame):
    type: Literal["stage.leave"]


class RoleSet(Frame):
    type: Literal["role.set"]
    user_id: Id
    role: AssignableRole


class ParticipantBlock(Frame):
    type: Literal["participant.block"]
    user_id: Id


class ParticipantUnblock(Frame):
    type: Literal["participant.unblock"]
    user_id: Id


class RoomSettings(Frame):
    type: Literal["room.settings"]
    slow_mode_seconds: Annotated[int, Field(ge=0, le=600)] | None = None
    stage_locked: bool | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> RoomSettings:
        if self.slow_mode_seconds is None and self.stage_locked is None:
            raise ValueError("expected slow_mode_seconds or stage_locked, got neither")
        return self


class MediaConsentGive(Frame):
    type: Literal["media.consent"]


RoomAction = (
    ChatSend
    | ChatEdit
    | ChatDelete
    | BackchannelPost
    | BackchannelDelete
    | BackchannelReact
    | HandRaise
    | HandLower
    | StageInvite
    | StageRemove
    | StageLeave
    | RoleSet
    | ParticipantBlock
    | ParticipantUnblock
    | RoomSettings
    | MediaConsentGive
)


# ---- media signaling (docs/protocol.md, "Media signaling"): not stored, handled by
# junto.realtime.signaling rather than junto.room.actions ----------------------------------

# An SDP blob; the frame limit (ws_message_max_bytes) bounds it too.
Sdp = Annotated[str, Field(min_length=1, max_length=12_288)]
MediaSource = Literal["camera", "screen"]


class MediaPublish(Frame):
    type: Literal["media.publish"]
    source: MediaSource
    sdp: Sdp


class MediaUnpublish(Frame):
    type: Literal["media.unpublish"]
    source: MediaSource


class MediaSubscribe(Frame):
    type: Literal["media.subscribe"]
    user_ids: Annotated[list[Id], Field(min_length=1, max_length=64)] | None = None


class MediaAnswer(Frame):
    type: Literal["media.answer"]
    version: Annotated[int, Field(ge=1, le=_MAX_ID)]
    sdp: Sdp


class MediaUnsubscribe(Frame):
    type: Literal["media.unsubscribe"]


class MediaCandidate(Frame):
    type: Literal["media.candidate"]
    target: Literal["camera", "screen", "subscribe"]
    candidate: Annotated[str, Field(max_length=1024)]
    sdp_mid: Annotated[str, Field(max_length=64)] | None = None


class MediaState(Frame):
    type: Literal["media.state"]
    audio_muted: bool
    video_off: bool
    quality: Literal["good", "fair", "poor"] | None = None


MediaSignal = (
    MediaPublish
    | MediaUnpublish
    | MediaSubscribe
    | MediaAnswer
    | MediaUnsubscribe
    | MediaCandidate
    | MediaState
)
MEDIA_SIGNAL_TYPES = frozenset(
    get_args(model.model_fields["type"].annotation)[0] for model in get_args(MediaSignal)
)

ClientFrame = Annotated[Hello | Ping | RoomAction | MediaSignal, Field(discriminator="type")]

_adapter: TypeAdapter[Any] = TypeAdapter(ClientFrame)
CLIENT_TYPES: tuple[str, ...] = tuple(
    get_args(model.model_fields["type"].annotation)[0]
    for model in (Hello, Ping, *get_args(RoomAction), *get_args(MediaSignal))
)


def parse_client_frame(raw: object) -> Hello | Ping | RoomAction | MediaSignal:
    """Validate a decoded JSON value as a client frame, or raise ActionError("bad_message")."""
    if not isinstance(raw, dict):
        raise ActionError("bad_message", f"expected a JSON object, got {_json_type(raw)}")
    try:
        frame: Hello | Ping | RoomAction | MediaSignal = _adapter.validate_python(raw)
    except ValidationError as exc:
        raise ActionError("bad_message", describe_validation_error(exc)) from None
    return frame


def ref_of(raw: object) -> str | None:
    """The `ref` of a frame, if it has a usable one, even when the rest of the frame is bad."""
    if isinstance(raw, dict):
        ref = raw.get("ref")
        if isinstance(ref, str) and len(ref) <= 64:
            return ref
    return None


# ---- error messages ---------------------------------------------------------------------------


def describe_validation_error(exc: ValidationError) -> str:
    """One sentence naming the first field at fault, in the "expected X, got Y" style."""
    err = exc.errors(include_url=False)[0]
    kind = err["type"]
    ctx = err.get("ctx") or {}
    # The first element of `loc` is the frame type chosen by the discriminator.
    loc = [str(part) for part in err["loc"][1:]]
    field = ".".join(loc) or "frame"
    value = err.get("input")
    if kind == "union_tag_not_found":
        return "expected a 'type' field, got none"
    if kind == "union_tag_invalid":
        return f"expected type to be one of {', '.join(CLIENT_TYPES)}, got {ctx.get('tag')!r}"
    if kind == "missing":
        return f"{field}: expected a value, got none"
    if kind == "extra_forbidden":
        return f"{field}: unexpected field"
    if kind in {"string_type", "int_type", "bool_type", "literal_error"} or kind.endswith("_type"):
        return f"{field}: expected {_expected(kind, ctx)}, got {_json_type(value)} {_short(value)}"
    if kind == "string_too_short":
        return f"{field}: expected at least {_chars(ctx.get('min_length'))}, got {len(value)}"
    if kind == "string_too_long":
        return f"{field}: expected at most {_chars(ctx.get('max_length'))}, got {len(value)}"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return f"{field}: {err['msg'].lower()}, got {value!r}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return f"{field}: {err['msg']}"


def _expected(kind: str, ctx: dict[str, Any]) -> str:
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}"
    return {
        "string_type": "a string",
        "int_type": "an integer",
        "bool_type": "true or false",
    }.get(kind, kind.removesuffix("_type"))


def _chars(n: object) -> str:
    return "1 character" if n == 1 else f"{n} characters"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return f"({text[:40]}…)" if len(text) > 40 else f"({text})"


# ---- control frames ---------------------------------------------------------------------------


def error_frame(code: str, message: str, ref: str | None = None) -> dict[str, Any]:
    """The `error` control frame (no `id`: control frames are not part of any stream)."""
    frame: dict[str, Any] = {"type": "error", "code": ErrorCode(code).value, "message": message}
    if ref is not None:
        frame["ref"] = ref
    return frame


def error_frame_for(exc: ActionError, ref: str | None = None) -> dict[str, Any]:
    frame = error_frame(exc.code, exc.message, ref)
    if exc.retry_after is not None:
        frame["retry_after"] = round(exc.retry_after, 1)
    return frame


def ack_frame(ref: str | None, event_id: int | None) -> dict[str, Any]:
    """The `ack` control frame: `id` is the room-stream id of the resulting event, if any."""
    return {"type": "ack", "ref": ref, "id": event_id}
