"""The conversation's page once it is over, `GET /c/{slug}` (ended or published), and publishing.

`room_page` hands ended and published conversations to `conversation_page`: the recording with
the transcript as captions, the knowledge (summary, chapters, key points...), the interactive
transcript, the backchannel replayed beside it, downloads and link-preview tags. Everything is
rendered on the server, so the page reads well without JavaScript, in link previews and for
search engines; `static/js/conversation.js` adds following playback, seeking from words and
search within the transcript.

Who sees it: a published conversation's page follows the conversation's visibility (anyone with
the link for public and unlisted ones). An ended conversation that is not published yet is under
review: hosts, co-hosts, speakers and node admins see it (with a "Publish" box for managers);
everyone else gets a 404 saying it is not published yet (`conversations.can_see_page`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto import conversations as convs
from junto import processing, snippets
from junto.conversations import ConversationError
from junto.enums import ConversationState, JobState
from junto.jobs.ffmpeg import find_ffmpeg
from junto.knowledge import store as knowledge_store
from junto.knowledge.model import Knowledge, Moment
from junto.node import Node
from junto.storage.tables import BackchannelPost, Conversation, ConversationMedia, Job, User
from junto.transcripts import store
from junto.transcripts.exports import clock
from junto.web import security
from junto.web.deps import DbDep, NodeDep
from junto.web.page_parts import hosts_of
from junto.web.render import render, render_in_thread
from junto.web.snippet_pages import mmss
from junto.web.transcript_pages import downloads, player

log = logging.getLogger("junto.web.conversation_page")

router = APIRouter(include_in_schema=False)

# A long conversation's backchannel can be busy; the replay shows the first this many posts.
MAX_REPLAY_POSTS = 2000
THUMBNAIL_NAME = "thumbnail.jpg"
THUMBNAIL_TIMEOUT_S = 30.0
# One ffmpeg per conversation's thumbnail at a time (link previews arrive in bursts).
_thumbnail_locks: dict[int, asyncio.Lock] = {}


# ---- the page -----------------------------------------------------------------------------------


async def conversation_page(
    request: Request, db: AsyncSession, node: Node, conv: Conversation, viewer: User | None
) -> Response:
    """The page of an ended or published conversation (the caller checked `can_view`)."""
    if not await convs.can_see_page(db, conv, viewer):
        return render(request, "conversation_unpublished.html", status_code=404)
    can_manage = await convs.can_manage(db, conv, viewer)
    tags = await convs.tags_of(db, conv)
    view = await store.read(db, conv)
    media = await store.media(db, conv.id)
    knowledge = await load_knowledge(db, conv.id)
    speaker_ids: set[int | None] = {s["speaker"]["id"] for s in view.segments if s["speaker"]}
    if knowledge is not None:
        speaker_ids.update(m.speaker_id for m in _all_moments(knowledge))
        speaker_ids.update(a.owner_id for a in knowledge.action_items)
    hosts = await hosts_of(db, conv)
    people = await store.names(db, speaker_ids | {h.id for h in hosts})
    site = node.settings.base_url
    page_url = f"{site}/c/{conv.slug}"
    playing = player(conv, media)
    start_at = _start_seconds(request.query_params.get("t"))
    description = _description(conv, knowledge)
    knowledge_pending = knowledge is None and await _job_pending(db, conv.id, "knowledge.extract")
    return await render_in_thread(
        request,
        "conversation.html",
        conv=conv,
        conversation=convs.summary(conv, tags),
        is_published=conv.state == ConversationState.PUBLISHED,
        can_manage=can_manage,
        date_label=_date_label(conv.started_at or conv.created_at),
        date_iso=convs.iso(conv.started_at or conv.created_at),
        duration_label=_duration_label(_duration_s(conv, media)),
        hosts=[_person(u) for u in hosts],
        speakers=[_person(people[s["id"]]) for s in view.speakers if s["id"] in people],
        transcript=view,
        segments=[_segment(s, people) for s in view.segments],
        player=playing,
        start_at=start_at,
        knowledge=_knowledge_view(knowledge, people) if knowledge else None,
        knowledge_pending=knowledge_pending,
        posts=await _posts(db, conv),
        snippets=[
            {"slug": sn.slug, "title": sn.title, "clock": mmss(sn.start_ms)}
            for sn in await snippets.list_for_conversation(db, conv)
            if sn.state == "ready"
        ],
        can_snip="composite" in media and await snippets.can_create(db, conv, viewer),
        downloads=await downloads(db, conv, view.status == "ready", media, can_manage),
        # In the order the workers run them, each saying what is still coming (processing.py).
        checklist=await processing.checklist(
            db,
            conv.id,
            {
                processing.TRANSCRIPT: view.status == "ready",
                processing.KNOWLEDGE: knowledge is not None,
                processing.SEARCH: await processing.indexed(db, conv.id),
                processing.VIDEO: "composite" in media,
            },
        ),
        transcript_model_note=await processing.transcript_model_note(db, conv.id),
        og={
            "title": conv.title,
            "description": description,
            "url": page_url,
            "image": f"{site}/c/{conv.slug}/{THUMBNAIL_NAME}" if "composite" in media else None,
            "video": f"{site}/c/{conv.slug}/media/composite" if "composite" in media else None,
            "video_type": media["composite"].mime if "composite" in media else None,
        },
        description=description,
        page_data={"slug": conv.slug, "start_at": start_at},
    )


async def load_knowledge(db: AsyncSession, conversation_id: int) -> Knowledge | None:
    """The stored knowledge, if computed. A row that cannot be read must not take the page
    down: the error is logged and the page shows no knowledge (the next job rewrites it)."""
    try:
        return await knowledge_store.load(db, conversation_id)
    except Exception:
        log.exception("could not load the knowledge of conversation %s", conversation_id)
        return None


def _all_moments(k: Knowledge) -> list[Moment]:
    return [*k.summary, *k.key_points, *k.questions, *k.decisions, *k.action_items]


def _description(conv: Conversation, k: Knowledge | None) -> str:
    """For link previews: the LLM's abstract, else the extractive summary, else the host's
    description; cut to a preview's length."""
    text = ""
    if k is not None:
        text = k.abstract or " ".join(m.text for m in k.summary)
    text = " ".join((text or conv.description or "").split())
    return text if len(text) <= 300 else text[:297].rsplit(" ", 1)[0] + "…"


def _person(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.display_name, "colour": user.colour}


def _moment(m: Moment, people: dict[int, User]) -> dict[str, Any]:
    speaker = people.get(m.speaker_id) if m.speaker_id is not None else None
    return {
        "text": m.text,
        "start_ms": m.start_ms,
        "end_ms": m.end_ms,
        "seconds": _seconds(m.start_ms),
        "clock": clock(m.start_ms),
        "speaker": _person(speaker) if speaker else None,
    }


def _knowledge_view(k: Knowledge, people: dict[int, User]) -> dict[str, Any]:
    actions = []
    for item in k.action_items:
        owner = people.get(item.owner_id) if item.owner_id is not None else None
        actions.append(
            {**_moment(item, people), "owner": owner.display_name if owner else item.owner}
        )
    return {
        "backend": k.backend,
        "abstract": k.abstract,
        "summary": [_moment(m, people) for m in k.summary],
        "chapters": [
            {
                "title": c.title,
                "summary": c.summary,
                "start_ms": c.start_ms,
                "end_ms": c.end_ms,
                "seconds": _seconds(c.start_ms),
                "clock": clock(c.start_ms),
            }
            for c in k.chapters
        ],
        "key_points": [_moment(m, people) for m in k.key_points],
        "questions": [_moment(m, people) for m in k.questions],
        "decisions": [_moment(m, people) for m in k.decisions],
        "action_items": actions,
        "topics": [t.label for t in sorted(k.topics, key=lambda t: -t.score)],
    }


def _segment(seg: dict[str, Any], people: dict[int, User]) -> dict[str, Any]:
    speaker = seg["speaker"]
    user = people.get(speaker["id"]) if speaker else None
    # (start, end, text, joins): a word that continues the one before (",500" after "4") is
    # shown without a space in front (store.words_json, junto.speech.words).
    words = [(int(w[0]), int(w[1]), str(w[2]), bool(w[3])) for w in seg["words"]]
    if not words and seg["text"].strip():
        # No word times (should not happen): the segment's words all at its start, still
        # seekable and selectable as the DOM contract wants.
        words = [(seg["start_ms"], seg["end_ms"], w, False) for w in seg["text"].split()]
    return {
        "seq": seg["seq"],
        "start_ms": seg["start_ms"],
        "end_ms": seg["end_ms"],
        "seconds": _seconds(seg["start_ms"]),
        "clock": clock(seg["start_ms"]),
        "speaker": {
            "id": speaker["id"],
            "name": speaker["name"],
            "colour": user.colour if user else "#8a8d94",
        }
        if speaker
        else None,
        "words": words,
        "edited": seg["edited"],
    }


def _seconds(ms: int) -> str:
    """`?t=` value: whole seconds, or with one decimal when the moment is not on a second."""
    value = max(0, ms) / 1000
    return f"{value:.0f}" if ms % 1000 == 0 else f"{value:.1f}"


_T_PATTERN = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?")


def _start_seconds(raw: str | None) -> float:
    """`?t=` as seconds: `90`, `90.5`, `1:30`, `1:02:03` or `1m30s`; anything else is 0 (the
    beginning), never an error: a mangled shared link still opens the page."""
    text = (raw or "").strip().lower()
    value: float | None = None
    if re.fullmatch(r"\d+(?::\d{1,2}){1,2}(?:\.\d+)?", text):
        value = 0.0
        for part in text.split(":"):
            value = value * 60 + float(part)
    elif text and (match := _T_PATTERN.fullmatch(text)):
        h, m, sec = match.groups()
        value = int(h or 0) * 3600 + int(m or 0) * 60 + float(sec or 0)
    return value if value is not None and 0 <= value < 10**7 else 0.0


def _date_label(when: datetime) -> str:
    return f"{when.day} {when:%B %Y}"


def _duration_s(conv: Conversation, media: dict[str, ConversationMedia]) -> float | None:
    for kind in ("composite", "audio"):
        if kind in media and media[kind].duration_s:
            return float(media[kind].duration_s or 0)
    if conv.started_at and conv.ended_at:
        return (conv.ended_at - conv.started_at).total_seconds()
    return None


def _duration_label(seconds: float | None) -> str:
    if not seconds:
        return ""
    total = round(seconds)
    hours, minutes = total // 3600, total // 60 % 60
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{total} s"


async def _job_pending(db: AsyncSession, conversation_id: int, kind: str) -> bool:
    found = await db.execute(
        select(Job.id)
        .where(
            Job.conversation_id == conversation_id,
            Job.kind == kind,
            Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
        )
        .limit(1)
    )
    return found.first() is not None


async def _posts(db: AsyncSession, conv: Conversation) -> list[dict[str, Any]]:
    """Backchannel posts made while live (offset_ms set), in time order, deleted ones left out."""
    rows = await db.execute(
        select(BackchannelPost, User)
        .join(User, User.id == BackchannelPost.author_id)
        .where(
            BackchannelPost.conversation_id == conv.id,
            BackchannelPost.deleted_at.is_(None),
            BackchannelPost.offset_ms.is_not(None),
        )
        .order_by(BackchannelPost.offset_ms, BackchannelPost.id)
        .limit(MAX_REPLAY_POSTS)
    )
    return [
        {
            "id": post.id,
            "at": int(post.offset_ms or 0),
            "clock": clock(post.offset_ms or 0),
            "seconds": _seconds(post.offset_ms or 0),
            "body": post.body,
            "author": _person(user),
        }
        for post, user in rows.all()
    ]


# ---- publishing without JavaScript ------------------------------------------------------------


@router.post("/c/{slug}/publish")
async def publish(request: Request, slug: str, db: DbDep, node: NodeDep) -> Response:
    return await _transition_form(request, slug, db, node, "publish")


@router.post("/c/{slug}/unpublish")
async def unpublish(request: Request, slug: str, db: DbDep, node: NodeDep) -> Response:
    return await _transition_form(request, slug, db, node, "unpublish")


async def _transition_form(
    request: Request, slug: str, db: AsyncSession, node: Node, action: str
) -> Response:
    """The page's Publish / Unpublish forms: back to the page, or a page saying why not."""
    viewer = security.current_user(request)
    if viewer is None:
        return RedirectResponse(f"/signin?next=/c/{slug}", status_code=303)
    conv = await convs.get_by_slug(db, slug)
    if conv is None or not await convs.can_view(db, conv, viewer):
        return _problem(request, 404, "No such conversation", "There is no conversation here.")
    try:
        await convs.transition(db, conv, action, viewer, node)
    except ConversationError as exc:
        return _problem(request, exc.status, f"Could not {action}", exc.message)
    return RedirectResponse(f"/c/{conv.slug}#review", status_code=303)


def _problem(request: Request, status: int, heading: str, message: str) -> Response:
    return render(
        request, "conversation_problem.html", status_code=status, heading=heading, message=message
    )


# ---- the preview image ----------------------------------------------------------------------


@router.get("/c/{slug}/" + THUMBNAIL_NAME)
async def thumbnail(request: Request, slug: str, db: DbDep, node: NodeDep) -> Response:
    """A frame of the composite video, about a tenth of the way in, for link previews.

    Rendered by ffmpeg on first request and kept next to the composite (`thumbnail.jpg`); made
    again when the composite is newer than it."""
    viewer = security.current_user(request)
    conv = await convs.get_by_slug(db, slug)
    if (
        conv is None
        or not await convs.can_view(db, conv, viewer)
        or not await convs.can_see_page(db, conv, viewer)
    ):
        return security.error_response(404, "not_found", "no such conversation")
    composite = (await store.media(db, conv.id)).get("composite")
    if composite is None:
        return security.error_response(404, "not_found", "this conversation has no video (yet)")
    data_dir = node.settings.data_dir
    try:
        video = store.inside_data_dir(data_dir, composite.path)
    except ValueError:
        return security.error_response(404, "not_found", "no such file")
    if not video.is_file():
        return security.error_response(404, "not_found", "the video is missing on this node")
    image = video.parent / THUMBNAIL_NAME
    lock = _thumbnail_locks.setdefault(conv.id, asyncio.Lock())
    async with lock:
        if not _fresh(image, video):
            error = await _render_thumbnail(
                find_ffmpeg(node.settings), video, image, float(composite.duration_s or 0)
            )
            if error:
                log.warning("thumbnail of %s failed: %s", conv.slug, error)
                return security.error_response(
                    500, "thumbnail_failed", "could not render a preview image"
                )
    return FileResponse(image, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def _fresh(image: FilePath, video: FilePath) -> bool:
    try:
        return image.stat().st_mtime >= video.stat().st_mtime
    except OSError:
        return False


async def _render_thumbnail(
    ffmpeg: str, video: FilePath, image: FilePath, duration_s: float
) -> str | None:
    """Write `image` (atomically); returns None, or why it failed."""
    tmp = image.with_name(image.name + ".tmp.jpg")
    at = max(0.0, duration_s * 0.1)
    args = [ffmpeg, "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", str(video)]
    args += ["-frames:v", "1", "-vf", "scale='min(1280,iw)':-2", "-q:v", "4", str(tmp)]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), THUMBNAIL_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "ffmpeg took too long"
    if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        return err.decode(errors="replace")[-500:] or f"ffmpeg exited with {proc.returncode}"
    tmp.replace(image)
    return None
