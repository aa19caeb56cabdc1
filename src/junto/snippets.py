"""Snippets: a clip of a conversation between two words, with its own page, files and embed.

Who may make one: any member (not a guest) on a published public conversation; the hosts and
co-hosts (and admins) also on their ended conversation while they review it. The requested
range is snapped to the transcript's words (start = start of the first word that ends after
it, end = end of the last word that starts before it's end) and padded a little, never so far
that a neighbouring word is heard. The files are cut synchronously (junto.clips, ~0.1-0.3 s for
a minute); if ffmpeg fails the row stays, `failed`, with the reason. Everything is validated
before anything is written, so a refused request stores nothing.

Errors are ConversationError (status, code, field), answered by the JSON API like the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from junto import clips, user_text
from junto import conversations as convs
from junto.clips import Word
from junto.config import Settings
from junto.conversations import ConversationError
from junto.enums import ConversationState, Visibility
from junto.jobs.ffmpeg import find_ffmpeg
from junto.jobs.queue import enqueue
from junto.speech.words import join_words, stored_flag
from junto.storage.tables import Conversation, MediaConsent, SearchPassage, Snippet, User
from junto.transcripts import store

log = logging.getLogger("junto.snippets")

MAX_MS = 10 * 60 * 1000
MIN_MS = 500
PAD_MS = 300
MS_PER_LETTER = 60  # a word said at 140-180 words per minute
TITLE_MAX = 200
DEFAULT_TITLE_CHARS = 80
READY, FAILED, RENDERING = "ready", "failed", "rendering"


def _bad(message: str, field: str | None = None, code: str = "invalid") -> ConversationError:
    return ConversationError(message, status=422 if field else 400, code=code, field=field)


# ---- words --------------------------------------------------------------------------------------


async def words_of(db: AsyncSession, conversation_id: int) -> list[Word]:
    """Every word of the transcript as it is now (with corrections), in time order."""
    out: list[Word] = []
    for seg in await store.segment_rows(db, conversation_id):
        for start, end, text, *rest in json.loads(seg.words or "[]"):
            out.append(Word(int(start), int(end), str(text), seg.user_id, stored_flag(rest, 0)))
    out.sort(key=lambda w: (w.start_ms, w.end_ms))
    return out


def _inside(words: list[Word], start_ms: int, end_ms: int) -> list[int]:
    """Indexes of the words in [start_ms, end_ms); a word squeezed to no length (see `snap`)
    is inside when it sits at the start."""
    return [
        i
        for i, w in enumerate(words)
        if max(w.end_ms, w.start_ms + 1) > start_ms and w.start_ms < end_ms
    ]


def words_in(words: list[Word], snippet: Snippet) -> list[Word]:
    """The words a snippet holds: those inside its (snapped, padded) range. Padding stops
    short of the neighbouring words, so they are never counted in."""
    return [words[i] for i in _inside(words, snippet.start_ms, snippet.end_ms)]


def _joined(words: list[Word]) -> str:
    """A snippet's text from its words, as `create` writes it."""
    return join_words((w.text, w.joins) for w in words)


@dataclass(frozen=True)
class Snap:
    start_ms: int
    end_ms: int
    words: list[Word]


def snap(words: list[Word], start_ms: int, end_ms: int, pad_ms: int = PAD_MS) -> Snap | None:
    """The words inside [start_ms, end_ms) and the padded range around them, or None when no
    word is. Recognisers place word edges a little early or late (Whisper by up to a few hundred
    ms), so the clip gets up to `pad_ms` on each side, but never past the middle of the pause
    to a neighbouring word, so the neighbours are not heard."""
    inside = _inside(words, start_ms, end_ms)
    if not inside:
        return None
    first, last = words[inside[0]], words[inside[-1]]
    before = [w.end_ms for w in words[: inside[0]]]
    after = [w.start_ms for w in words[inside[-1] + 1 :]]
    floor = (max(before) + first.start_ms) // 2 if before else 0
    ceiling = (last.end_ms + min(after)) // 2 if after else last.end_ms + pad_ms
    # Whisper sometimes squeezes the first word after a pause to nothing ("Rivers" at
    # [17958, 17958] though it took half a second): trust a word's edge no further than its
    # spelling allows (about MS_PER_LETTER per letter).
    first_start = min(first.start_ms, first.end_ms - MS_PER_LETTER * len(first.text))
    last_end = max(last.end_ms, last.start_ms + MS_PER_LETTER * len(last.text))
    begin = min(first.start_ms, max(first_start - pad_ms, floor, 0))
    finish = max(last.end_ms, min(last_end + pad_ms, ceiling))
    return Snap(begin, finish, [words[i] for i in inside])


def clean_title(title: str | None) -> str | None:
    """The title without surrounding space; 422 when too long or with control characters."""
    if title is None:
        return None
    title = title.strip()
    if len(title) > TITLE_MAX:
        raise _bad(f"the title is longer than {TITLE_MAX} characters", "title")
    problem = user_text.unfit_character(title)
    if problem is not None:
        raise _bad(f"the title {problem}", "title")
    # Stricter than other text: no format characters at all (zero-width spaces and joiners),
    # as a clip's title is shown alone, in players and link previews of other sites.
    if any(unicodedata.category(c) == "Cf" for c in title):
        raise _bad("the title may not contain invisible format characters", "title")
    return title or None


def _default_title(text: str) -> str:
    if len(text) <= DEFAULT_TITLE_CHARS:
        return text or "Snippet"
    return text[: DEFAULT_TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"


# ---- who may ------------------------------------------------------------------------------------


def is_public(conv: Conversation) -> bool:
    return conv.state == ConversationState.PUBLISHED and conv.visibility == Visibility.PUBLIC


async def can_create(db: AsyncSession, conv: Conversation, user: User | None) -> bool:
    if user is None or user.is_guest:
        return False
    if is_public(conv):
        return True
    finished = conv.state in (ConversationState.ENDED, ConversationState.PUBLISHED)
    return finished and await convs.can_manage(db, conv, user)


async def can_see(db: AsyncSession, conv: Conversation, user: User | None) -> bool:
    """A snippet's page and files: anyone on a published public conversation; otherwise who may
    see the conversation's page (its hosts and speakers while it is reviewed)."""
    if is_public(conv):
        return True
    if conv.state not in (ConversationState.ENDED, ConversationState.PUBLISHED):
        return False
    return await convs.can_view(db, conv, user) and await convs.can_see_page(db, conv, user)


async def can_delete(db: AsyncSession, snippet: Snippet, conv: Conversation, user: User) -> bool:
    return snippet.created_by == user.id or await convs.can_manage(db, conv, user)


# ---- making and removing ------------------------------------------------------------------------


def folder(slug: str) -> str:
    """The snippet's folder, relative to the data dir."""
    return f"snippets/{slug}"


async def create(
    db: AsyncSession,
    settings: Settings,
    conv: Conversation,
    user: User,
    start_ms: int,
    end_ms: int,
    title: str | None = None,
    *,
    admit: Callable[[], Awaitable[None]] | None = None,
) -> Snippet:
    """Validate, snap, store the row, cut the files; returns the snippet (ready or failed).

    `admit()` is called once the request is valid, before any work: it may raise (the web
    layer's rate limit), so refused requests do not use up anyone's allowance."""
    if not await can_create(db, conv, user):
        raise ConversationError(
            "snippets can be made from published public conversations (and by hosts from "
            "their ended ones)",
            status=403,
            code="forbidden",
        )
    title = clean_title(title)
    if start_ms < 0:
        raise _bad("start_ms must not be negative", "start_ms")
    if end_ms < start_ms:
        raise _bad("end_ms is before start_ms", "end_ms")
    if end_ms - start_ms < MIN_MS:
        raise _bad(f"a snippet lasts at least {MIN_MS} ms", "end_ms")
    if end_ms - start_ms > MAX_MS:
        raise _bad("a snippet lasts at most 10 minutes", "end_ms")
    media = await store.media(db, conv.id)
    if not media:
        raise ConversationError(
            "this conversation has no recording to cut a snippet from",
            status=409,
            code="no_media",
        )
    duration_ms = int(max(m.duration_s for m in media.values()) * 1000)
    if end_ms > duration_ms + 50:  # the last frame's rounding
        raise _bad(f"end_ms is after the end of the recording ({duration_ms} ms)", "end_ms")
    words = await words_of(db, conv.id)
    chosen: list[Word] = []
    if words:
        snapped = snap(words, start_ms, end_ms)
        if snapped is None:
            raise _bad("nobody speaks between start_ms and end_ms", "start_ms")
        start_ms, end_ms, chosen = snapped.start_ms, min(snapped.end_ms, duration_ms), snapped.words
    if admit is not None:
        await admit()  # in this transaction: the token is spent with the row it pays for
    text = _joined(chosen)
    speakers = list(dict.fromkeys(w.user_id for w in chosen if w.user_id is not None))
    snippet = Snippet(
        slug=await convs.unused_slug(db, Snippet.slug),
        conversation_id=conv.id,
        created_by=user.id,
        title=title or _default_title(text),
        start_ms=start_ms,
        end_ms=end_ms,
        text=text,
        speakers=json.dumps(speakers),
        state=RENDERING,
    )
    db.add(snippet)
    await db.commit()  # the row exists (and holds its slug) while the files are cut
    await _render(db, settings, snippet, media, chosen)
    return snippet


async def _render(
    db: AsyncSession,
    settings: Settings,
    snippet: Snippet,
    media: dict[str, Any],
    words: list[Word],
) -> None:
    data_dir = settings.data_dir
    relative = folder(snippet.slug)
    out = data_dir / relative

    def source(kind: str) -> Path | None:
        return store.inside_data_dir(data_dir, media[kind].path) if kind in media else None

    try:
        made = await clips.cut(
            find_ffmpeg(settings),
            out,
            snippet.start_ms,
            snippet.end_ms,
            composite=source("composite"),
            audio=source("audio"),
            hide=(str(data_dir),),
        )
        vtt = clips.captions_vtt(words, snippet.start_ms, snippet.end_ms)
        await asyncio.to_thread((out / clips.CAPTIONS_NAME).write_text, vtt, "utf-8")
    except (clips.ClipError, OSError, ValueError) as exc:
        log.warning("snippet %s failed: %s", snippet.slug, exc)
        snippet.state, snippet.error = FAILED, str(exc)[:2000]
        await db.commit()
        return
    paths = {kind: f"{relative}/{path.name}" for kind, path in made.items()}
    snippet.clip_path = paths.get("clip")
    snippet.audio_path = paths.get("audio")
    snippet.thumb_path = paths.get("thumb")
    snippet.state = READY
    await enqueue(
        db, "search.index", {"snippet_id": snippet.id}, conversation_id=snippet.conversation_id
    )
    await db.commit()


async def remove(db: AsyncSession, settings: Settings, snippet: Snippet) -> None:
    """Delete the row (its search passages go with it: ON DELETE CASCADE) and its files."""
    slug = snippet.slug
    await db.execute(delete(Snippet).where(Snippet.id == snippet.id))
    await db.commit()
    target = settings.data_dir / folder(slug)
    await asyncio.to_thread(shutil.rmtree, target, True)


# ---- following corrections ----------------------------------------------------------------------


async def follow_correction(
    db: AsyncSession, conversation_id: int, start_ms: int, end_ms: int
) -> list[Snippet]:
    """Carry a transcript correction of [start_ms, end_ms] into every snippet overlapping it,
    in the caller's transaction (the caller commits).

    A correction may remove a private detail on purpose, so the old words must not outlive
    it anywhere: each snippet's text, its title when it was the default one (made from the
    text) and its speakers are re-made from the corrected words; its search passage goes now,
    and a queued `search.index` re-makes it and rewrites the captions file on disk (the
    captions route renders from the database meanwhile, see `captions_text`)."""
    found = await db.scalars(
        select(Snippet).where(
            Snippet.conversation_id == conversation_id,
            Snippet.start_ms < end_ms,
            Snippet.end_ms > start_ms,
        )
    )
    affected = list(found)
    if not affected:
        return []
    words = await words_of(db, conversation_id)
    for snippet in affected:
        chosen = words_in(words, snippet)
        was_default = snippet.title == _default_title(snippet.text)
        snippet.text = _joined(chosen)
        if was_default:
            snippet.title = _default_title(snippet.text)
        heard = dict.fromkeys(w.user_id for w in chosen if w.user_id is not None)
        snippet.speakers = json.dumps(list(heard))
        await enqueue(
            db, "search.index", {"snippet_id": snippet.id}, conversation_id=conversation_id
        )
    await db.execute(
        delete(SearchPassage).where(SearchPassage.snippet_id.in_([s.id for s in affected]))
    )
    await db.flush()
    return affected


async def captions_text(db: AsyncSession, snippet: Snippet) -> str:
    """The snippet's WebVTT from the transcript as it is now (with corrections)."""
    words = words_in(await words_of(db, snippet.conversation_id), snippet)
    return clips.captions_vtt(words, snippet.start_ms, snippet.end_ms)


async def write_captions(db: AsyncSession, data_dir: Path, snippet: Snippet) -> None:
    """Rewrite a ready snippet's captions file from the transcript as it is now: the route
    renders from the database, the file is for people who copy the data dir."""
    if snippet.state != READY:
        return
    text = await captions_text(db, snippet)
    target = store.inside_data_dir(data_dir, f"{folder(snippet.slug)}/{clips.CAPTIONS_NAME}")
    await asyncio.to_thread(target.write_text, text, "utf-8")


# ---- reading ------------------------------------------------------------------------------------


async def get_by_slug(db: AsyncSession, slug: str) -> Snippet | None:
    row: Snippet | None = await db.scalar(select(Snippet).where(Snippet.slug == slug))
    return row


async def list_for_conversation(db: AsyncSession, conv: Conversation) -> list[Snippet]:
    """The conversation's ready snippets, newest first."""
    rows = await db.scalars(
        select(Snippet)
        .where(Snippet.conversation_id == conv.id, Snippet.state == READY)
        .order_by(Snippet.id.desc())
    )
    return list(rows)


def speaker_ids(snippet: Snippet) -> list[int]:
    try:
        ids = json.loads(snippet.speakers or "[]")
    except ValueError:
        return []
    return [int(i) for i in ids if isinstance(i, int)]


@dataclass(frozen=True)
class Speaker:
    id: int
    name: str
    consent_at: datetime | None
    statement: str | None


async def speakers(db: AsyncSession, snippet: Snippet) -> list[Speaker]:
    """Who is heard, with the consent each gave to be recorded in this conversation."""
    ids = speaker_ids(snippet)
    if not ids:
        return []
    people = await store.names(db, ids)
    consents = {
        c.user_id: c
        for c in await db.scalars(
            select(MediaConsent).where(
                MediaConsent.conversation_id == snippet.conversation_id,
                MediaConsent.user_id.in_(ids),
            )
        )
    }
    out = []
    for uid in ids:
        consent = consents.get(uid)
        out.append(
            Speaker(
                id=uid,
                name=people[uid].display_name if uid in people else store.UNKNOWN_SPEAKER,
                consent_at=consent.given_at if consent else None,
                statement=consent.statement if consent else None,
            )
        )
    return out
