"""What Whisper should expect to hear in a conversation: its people's names and its subject.

Whisper spells an unfamiliar name as the nearest common words ("Joaquin" as "don't win",
"Siobhan" as "she won"), and an action item addressed to that person then loses its owner.
faster-whisper's `hotwords` put a short text in the decoder's prompt (after `<|startofprev|>`)
for every 30-s window, which biases spelling towards it without forcing it in. Measured on
espeak-ng speech with tiny.en (issue 13): names in four sentences went from 2 of 11 right to
11 of 11; the words around them stayed the same or improved.

The vocabulary is the conversation's title and tags and the display names of the people on its
stage (hosts, co-hosts, speakers) and of everyone recorded, bounded in length so that it stays a
hint: the decoder's prompt has room for half of Whisper's 448 tokens, and a long list of names
that were never said could nudge noise towards them.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.enums import Role
from junto.storage.tables import Conversation, ConversationTag, Participant, Recording, User

MAX_CHARS = 300  # about 75 tokens: a hint, far below the prompt's 224-token half
_STAGE_ROLES = (Role.HOST, Role.COHOST, Role.SPEAKER)


def _clean(text: str) -> str:
    """One line of printable text: no control or format characters (bidi, zero-width), no
    runs of spaces. Whisper's tokenizer takes anything, but a name like "\\u202eevil" must not
    steer the decoder with characters nobody can say."""
    kept = "".join(
        " " if unicodedata.category(ch)[0] in "CZ" else ch
        for ch in unicodedata.normalize("NFC", text)
    )
    return " ".join(kept.split())


def _sayable(text: str) -> bool:
    # "🦊", "---" or "42" are not words anyone will say as a name: they only add noise.
    return any(ch.isalpha() for ch in text)


def vocabulary(names: list[str], title: str = "", tags: list[str] | None = None) -> str:
    """The hint text: names first (what Whisper gets wrong most), then the title and the tags
    ("q3-budget" → "q3 budget"), each once, comma-separated, cut at MAX_CHARS on a boundary.
    An empty string when there is nothing sayable."""
    items: list[str] = []
    seen: set[str] = set()
    for raw in [*names, title, *(t.replace("-", " ").replace("_", " ") for t in tags or ())]:
        item = _clean(raw)
        if not item or not _sayable(item) or item.casefold() in seen:
            continue
        seen.add(item.casefold())
        items.append(item)
    text = ""
    for item in items:
        candidate = f"{text}, {item}" if text else item
        if len(candidate) > MAX_CHARS:
            break
        text = candidate
    return text


async def conversation_vocabulary(db: AsyncSession, conversation_id: int) -> str:
    """`vocabulary` of a stored conversation (see the module docstring for who is named)."""
    conv = await db.get(Conversation, conversation_id)
    if conv is None:
        return ""
    names = await conversation_names(db, conversation_id)
    tags = (
        await db.scalars(
            select(ConversationTag.tag)
            .where(ConversationTag.conversation_id == conversation_id)
            .order_by(ConversationTag.tag)
        )
    ).all()
    return vocabulary(names, conv.title, list(tags))


async def conversation_names(db: AsyncSession, conversation_id: int) -> list[str]:
    """The display names of the conversation's stage (hosts, co-hosts, speakers) and of
    everyone recorded in it, in the order they joined Junto."""
    on_stage = select(Participant.user_id).where(
        Participant.conversation_id == conversation_id, Participant.role.in_(_STAGE_ROLES)
    )
    recorded = select(Recording.user_id).where(Recording.conversation_id == conversation_id)
    names = (
        await db.scalars(
            select(User.display_name)
            .where(or_(User.id.in_(on_stage), User.id.in_(recorded)))
            .order_by(User.id)
        )
    ).all()
    return list(names)
