"""What a conversation's metadata may be: the rules for titles, tags, languages and times.

One set of pydantic models serves the JSON API (as request bodies, so OpenAPI documents the
rules and bad input is a 422 naming the field) and the HTML forms (validated the same way).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from junto import user_text
from junto.enums import Visibility

MAX_TAGS = 10
TAG_MAX_CHARS = 40
TITLE_MAX_CHARS = 200
DESCRIPTION_MAX_CHARS = 5000

_TAG_SEPARATORS = re.compile(r"[\s_]+")
_TAG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
# BCP 47-ish: a 2-8 letter language subtag, then subtags of 1-8 letters/digits ("en", "pt-BR",
# "zh-Hant-TW", "es-419"). Full RFC 5646 validation needs the IANA registry; this catches typos.
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")


def normalise_tag(raw: object) -> str:
    """ "#Climate Change" -> "climate-change"; accents are dropped ("café" -> "cafe")."""
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {type(raw).__name__}")
    text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    text = _TAG_SEPARATORS.sub("-", text.strip().lstrip("#").strip().lower())
    text = re.sub(r"-{2,}", "-", text).strip("-")
    if not text:
        raise ValueError("a tag needs at least one letter or digit")
    if len(text) > TAG_MAX_CHARS:
        raise ValueError(f"a tag has at most {TAG_MAX_CHARS} characters, got {len(text)}")
    if not _TAG_RE.fullmatch(text):
        raise ValueError(f"a tag may contain only a-z, 0-9 and '-', got {raw!r}")
    return text


def _dedupe(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def normalise_language(raw: str) -> str:
    """Check a BCP 47-ish code and give it its conventional case ("EN-gb" -> "en-GB")."""
    code = raw.strip()
    if not 2 <= len(code) <= 16 or not _LANGUAGE_RE.fullmatch(code):
        raise ValueError(f"expected a language code such as 'en' or 'pt-BR', got {raw!r}")
    first, *rest = code.split("-")
    # RFC 5646 §2.1.1: language lower case, 2-letter regions upper case, scripts title case.
    fixed = [first.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            fixed.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            fixed.append(part.title())
        else:
            fixed.append(part.lower())
    return "-".join(fixed)


def _no_control_characters(value: str) -> str:
    return user_text.check(value, "the title")  # one line: no line breaks either


def _description_text(value: str) -> str:
    # Newlines and tabs are fine in a description; other control characters are not text.
    return user_text.check(value, "the description", allow="\n\r\t")


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_CHARS),
    AfterValidator(_no_control_characters),
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=DESCRIPTION_MAX_CHARS),
    AfterValidator(_description_text),
]
Tag = Annotated[str, BeforeValidator(normalise_tag)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_dedupe)]
Language = Annotated[str, AfterValidator(normalise_language)]


class ConversationCreate(BaseModel):
    """What a host writes to create a conversation."""

    model_config = ConfigDict(extra="forbid")

    title: Title = Field(description="1-200 characters, one line.")
    description: Description = Field("", description="Up to 5000 characters of plain text.")
    tags: Tags = Field(
        default_factory=list,
        description="Up to 10 tags, normalised to lower case a-z, 0-9 and '-' (1-40 characters).",
    )
    language: Language = Field("en", description="BCP 47 language code, e.g. 'en' or 'pt-BR'.")
    visibility: Visibility = Field(
        Visibility.PUBLIC,
        description="public: listed in the lobby; unlisted: reachable by link only; "
        "invite_only: only participants can see it.",
    )
    scheduled_at: AwareDatetime | None = Field(
        None, description="When it is planned to start (with a UTC offset); must be in the future."
    )


class ConversationPatch(BaseModel):
    """A partial edit: only the fields present change (scheduled_at may be null to unschedule)."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    tags: Tags | None = None
    language: Language | None = None
    visibility: Visibility | None = None
    scheduled_at: AwareDatetime | None = None

    @field_validator("title", "description", "tags", "language", "visibility", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Omit a field to leave it alone; null is only meaningful for scheduled_at.
        if value is None:
            raise ValueError("may be omitted but not null")
        return value
