"""The transcript page `GET /c/{slug}/transcript` and the conversation's downloadable files.

The page is rendered on the server (it reads well without JavaScript, in link previews and for
search engines); `static/js/transcript.js` adds seeking the player from a segment's time and,
for hosts, correcting segments in place through the JSON API (junto.web.transcript_api).

Files (the transcript as WebVTT, the composite video, the audio mix, each speaker's recording)
are served with the conversation's visibility rules; stored paths are relative to the data dir
and never resolve outside it. Starlette's FileResponse answers Range requests, so players seek.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto import conversations as convs
from junto import corrections
from junto.conversations import ConversationError
from junto.enums import RecordingState, Role
from junto.storage.tables import Caption, Conversation, Recording, User
from junto.transcripts import exports, store
from junto.transcripts.exports import clock
from junto.web import security
from junto.web.deps import DbDep, NodeDep
from junto.web.page_parts import STATE_LABELS
from junto.web.render import render, render_in_thread

router = APIRouter(include_in_schema=False)

MEDIA_KINDS = {"composite": "Video", "audio": "Audio only"}
# The transcript's downloads (extension, label): WebVTT here, the rest from exports.
TRANSCRIPT_FORMATS = (
    ("vtt", "WebVTT"),
    ("srt", "SubRip, SRT"),
    ("json", "JSON with word times"),
    ("txt", "plain text"),
)


def _media_name(slug: str, kind: str, stored: str) -> str:
    """The name a download gets: the slug, the kind, and the stored file's own extension."""
    suffix = FilePath(stored).suffix.lower() or ".bin"
    return f"{slug}{'-audio' if kind == 'audio' else ''}{suffix}"


async def _visible(request: Request, db: AsyncSession, slug: str) -> Conversation | None:
    conv = await convs.get_by_slug(db, slug)
    user = security.current_user(request)
    if conv is None or not await convs.can_view(db, conv, user):
        return None
    if not await convs.can_see_page(db, conv, user):
        return None  # ended, under review: its reviewers only until a host publishes it
    return conv


def _not_found(what: str) -> Response:
    return security.error_response(404, "not_found", what)


@router.get("/c/{slug}/transcript")
async def transcript_page(request: Request, slug: str, db: DbDep, node: NodeDep) -> Response:
    conv = await _visible(request, db, slug)
    if conv is None:
        return render(request, "room_missing.html", status_code=404, slug=slug)
    viewer = security.current_user(request)
    view = await store.read(db, conv)
    media = await store.media(db, conv.id)
    can_manage = await convs.can_manage(db, conv, viewer)
    playing = player(conv, media)
    summary = convs.summary(conv, await convs.tags_of(db, conv))
    segments = [
        {**seg, "clock": clock(seg["start_ms"]), "seek": seg["start_ms"] / 1000}
        for seg in view.segments
    ]
    speakers = await _speaker_choices(db, conv) if can_manage else []
    # Corrections may remove something on purpose (a slip, a private detail), so what they
    # replaced is shown to the people who manage the conversation only.
    history = _by_seq(await corrections.history(db, conv)) if can_manage else {}
    return await render_in_thread(
        request,
        "transcript.html",
        conversation=summary,
        conv=conv,
        state_label=STATE_LABELS.get(conv.state.value, conv.state.value),
        transcript=view,
        segments=segments,
        can_manage=can_manage,
        player=playing,
        downloads=await downloads(db, conv, view.status == "ready", media, can_manage),
        speaker_choices=speakers,
        history=history,
        page_data={
            "slug": conv.slug,
            "api": f"/api/conversations/{conv.slug}/transcript",
            "can_manage": can_manage,
            "speakers": speakers,
            "text_max": 5000,
        },
    )


def _by_seq(entries: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for entry in entries:
        at = entry["at"] or ""
        text = at[:16].replace("T", " ") + " UTC" if at else ""
        grouped.setdefault(entry["seq"], []).append({**entry, "at_text": text})
    return grouped


def player(conv: Conversation, media: dict[str, Any]) -> dict[str, str] | None:
    """What the page plays: the composite video, else the audio mix, else nothing."""
    for kind, element in (("composite", "video"), ("audio", "audio")):
        if kind in media:
            return {
                "element": element,
                "src": f"/c/{conv.slug}/media/{kind}",
                "mime": media[kind].mime,
            }
    return None


async def _speaker_choices(db: AsyncSession, conv: Conversation) -> list[dict[str, Any]]:
    """Whom the editors offer for a segment: people who could be heard (hosts, co-hosts,
    speakers, anyone recorded, anyone a segment names). The API accepts any participant, but a
    big audience would make the list useless (and the page heavy)."""
    stage = {Role.HOST, Role.COHOST, Role.SPEAKER}
    ids = {u.id for p, u in await convs.participants(db, conv) if p.role in stage}
    ids.update(
        (
            await db.execute(select(Recording.user_id).where(Recording.conversation_id == conv.id))
        ).scalars()
    )
    ids.update(s.user_id for s in await store.segment_rows(db, conv.id) if s.user_id is not None)
    people = await store.names(db, ids)
    return sorted(
        ({"id": u.id, "name": u.display_name} for u in people.values()),
        key=lambda p: (str(p["name"]).lower(), p["id"]),
    )


def _size(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{max(1, round(n / 1000))} kB"


async def downloads(
    db: AsyncSession,
    conv: Conversation,
    has_transcript: bool,
    media: dict[str, Any],
    can_manage: bool,
) -> list[dict[str, str]]:
    """What the conversation and transcript pages offer to download, in that order: the
    video and audio, the transcript in every format, the live captions, and for its hosts
    each speaker's own recording."""
    slug = conv.slug
    out: list[dict[str, str]] = []
    for kind, label in MEDIA_KINDS.items():
        if kind in media:
            out.append(
                {
                    "label": f"{label} ({FilePath(media[kind].path).suffix[1:].upper()})",
                    "href": f"/c/{slug}/media/{kind}",
                    "file": _media_name(slug, kind, media[kind].path),
                    "size": _size(media[kind].bytes),
                }
            )
    if has_transcript:
        out.extend(
            {
                "label": f"Transcript ({label})",
                "href": f"/c/{slug}/transcript.{ext}",
                "file": f"{slug}-transcript.{ext}",
                "size": "",
            }
            for ext, label in TRANSCRIPT_FORMATS
        )
    if await db.scalar(select(Caption.id).where(Caption.conversation_id == conv.id).limit(1)):
        out.append(
            {
                "label": "Live captions (WebVTT)",
                "href": f"/c/{slug}/captions.vtt",
                "file": f"{slug}-captions.vtt",
                "size": "",
            }
        )
    if can_manage:
        # Each speaker's own recording is raw material for the hosts (re-editing), not for
        # the audience: it holds what the composite may have left out.
        for rec, user in await store.ready_pieces(db, conv.id):
            out.append(
                {
                    "label": f"{user.display_name}'s recording ({rec.source}, from "
                    f"{clock(_offset_ms(conv, rec))})",
                    "href": f"/c/{slug}/recordings/{rec.id}.webm",
                    "file": f"{slug}-{rec.id}.webm",
                    "size": _size(rec.bytes),
                }
            )
    return out


def _offset_ms(conv: Conversation, rec: Recording) -> int:
    if conv.started_at is None:
        return 0
    return max(0, round((rec.started_at - conv.started_at).total_seconds() * 1000))


# ---- correcting a segment without JavaScript ---------------------------------------------------
# transcript.js opens the editor in place; these pages are the same form for browsers without
# scripts (the "Edit" link leads here), posting back and returning to the segment.


def _segment_path(slug: str, seq: int) -> str:
    return f"/c/{slug}/transcript/segments/{seq}/edit"


async def _editable(
    request: Request, db: AsyncSession, slug: str, seq: int
) -> tuple[Conversation, User, dict[str, Any]] | Response:
    """(conversation, manager, segment) or the page that says why not."""
    viewer = security.current_user(request)
    if viewer is None:
        return RedirectResponse(f"/signin?next={quote(_segment_path(slug, seq), safe='')}", 303)
    conv = await _visible(request, db, slug)
    if conv is None:
        return render(request, "room_missing.html", status_code=404, slug=slug)
    if not await convs.can_manage(db, conv, viewer):
        return _problem(
            request,
            403,
            "Only hosts can correct the transcript",
            "Ask the host to make you a co-host if you should help with it.",
        )
    segment = next((s for s in (await store.read(db, conv)).segments if s["seq"] == seq), None)
    if segment is None:
        return _problem(
            request,
            404,
            "No such segment",
            "The transcript has no segment here (or no transcript yet).",
        )
    return conv, viewer, segment


def _problem(request: Request, status: int, heading: str, message: str) -> Response:
    return render(
        request, "conversation_problem.html", status_code=status, heading=heading, message=message
    )


async def _edit_form(
    request: Request,
    db: AsyncSession,
    conv: Conversation,
    segment: dict[str, Any],
    *,
    text: str,
    speaker_id: str,
    error: tuple[str, str] | None = None,
) -> Response:
    return render(
        request,
        "transcript_edit.html",
        status_code=422 if error else 200,
        conversation=convs.summary(conv, []),
        segment={**segment, "clock": clock(segment["start_ms"])},
        text=text,
        speaker_id=speaker_id,
        speakers=await _speaker_choices(db, conv),
        error=error,
        action=_segment_path(conv.slug, segment["seq"]),
    )


@router.get("/c/{slug}/transcript/segments/{seq}/edit")
async def edit_segment_page(
    request: Request, slug: str, seq: Annotated[int, Path(ge=0, le=2**31 - 1)], db: DbDep
) -> Response:
    found = await _editable(request, db, slug, seq)
    if isinstance(found, Response):
        return found
    conv, _user, segment = found
    speaker = segment["speaker"]
    return await _edit_form(
        request,
        db,
        conv,
        segment,
        text=segment["text"],
        speaker_id=str(speaker["id"]) if speaker else "",
    )


@router.post("/c/{slug}/transcript/segments/{seq}/edit")
async def save_segment(
    request: Request,
    slug: str,
    seq: Annotated[int, Path(ge=0, le=2**31 - 1)],
    db: DbDep,
    node: NodeDep,
) -> Response:
    found = await _editable(request, db, slug, seq)
    if isinstance(found, Response):
        return found
    conv, user, segment = found
    form = await request.form()
    text = str(form.get("text") or "")
    speaker = str(form.get("speaker_id") or "")
    try:
        await corrections.edit_segment(
            db,
            conv,
            seq,
            user,
            text=text,
            speaker_id=int(speaker) if speaker.isdigit() else None,
        )
    except ConversationError as exc:
        # Nothing was changed (edits validate before they write); show the form again.
        return await _edit_form(
            request,
            db,
            conv,
            segment,
            text=text,
            speaker_id=speaker,
            error=(exc.field or "text", exc.message),
        )
    await store.refresh_vtt_file(db, node.settings.data_dir, conv.id)
    return RedirectResponse(f"/c/{conv.slug}/transcript#seg-{seq}", status_code=303)


@router.get("/c/{slug}/transcript.vtt")
async def transcript_vtt(request: Request, slug: str, db: DbDep) -> Response:
    """The transcript as it is now (with corrections) as WebVTT."""
    conv = await _visible(request, db, slug)
    text = await store.as_vtt(db, conv.id) if conv is not None else None
    if text is None:
        return _not_found("this conversation has no transcript")
    return PlainTextResponse(text, media_type="text/vtt; charset=utf-8")


# format -> (media type, what the export is called in errors); rendered by
# junto.transcripts.exports from the transcript as it is now (with corrections).
EXPORTS = {
    "srt": "application/x-subrip; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


@router.get("/c/{slug}/transcript.{fmt}")
async def transcript_export(
    request: Request, slug: str, fmt: str, db: DbDep, node: NodeDep
) -> Response:
    """The transcript as SubRip, JSON (with word times) or plain text."""
    conv = await _visible(request, db, slug)
    if fmt not in EXPORTS:
        return _not_found(f"no transcript format {fmt!r}; expected vtt, srt, json or txt")
    view = await store.read(db, conv) if conv is not None else None
    if conv is None or view is None or view.status != "ready":
        return _not_found("this conversation has no transcript")
    if fmt == "srt":
        text = exports.to_srt(view.segments)
    elif fmt == "txt":
        text = exports.to_text(conv.title, view.segments)
    else:
        about = {
            "slug": conv.slug,
            "title": conv.title,
            "language": conv.language,
            "url": f"{node.settings.base_url}/c/{conv.slug}",
        }
        text = exports.to_json(about, view.segments)
    return Response(
        text,
        media_type=EXPORTS[fmt],
        headers={"Content-Disposition": f'inline; filename="{conv.slug}-transcript.{fmt}"'},
    )


def stored_file(data_dir: FilePath, relative: str, mime: str, filename: str) -> Response:
    """A file the node stored (a path relative to the data dir), with Range support; a clear
    404 for a path outside the data dir or a file that is gone."""
    try:
        path = store.inside_data_dir(data_dir, relative)
    except ValueError:
        return _not_found("no such file")
    if not path.is_file():
        return _not_found("the file is missing on this node")
    # inline: players stream it; the page's download links carry a `download` attribute.
    return FileResponse(path, media_type=mime, filename=filename, content_disposition_type="inline")


@router.get("/c/{slug}/media/{kind}")
async def conversation_media(
    request: Request, slug: str, kind: str, db: DbDep, node: NodeDep
) -> Response:
    """The composite video or the audio mix (ConversationMedia)."""
    conv = await _visible(request, db, slug)
    if conv is None or kind not in MEDIA_KINDS:
        return _not_found("no such conversation or file")
    media = (await store.media(db, conv.id)).get(kind)
    if media is None:
        return _not_found(f"this conversation has no {kind} file (yet)")
    name = _media_name(conv.slug, kind, media.path)
    return stored_file(node.settings.data_dir, media.path, media.mime, name)


@router.get("/c/{slug}/recordings/{recording_id}.webm")
async def recording_file(
    request: Request,
    slug: str,
    recording_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    db: DbDep,
    node: NodeDep,
) -> Response:
    """One speaker's recording piece, once it is finalized (READY): for the conversation's
    hosts (who see it listed) and for the speaker it recorded, nobody else (the audience has the
    composite). Others get the same 404 as for a recording that does not exist."""
    conv = await _visible(request, db, slug)
    rec = await db.get(Recording, recording_id) if conv is not None else None
    viewer = security.current_user(request)
    if (
        conv is None
        or rec is None
        or rec.conversation_id != conv.id
        or rec.state != RecordingState.READY
        or rec.path is None
        or not (
            (viewer is not None and viewer.id == rec.user_id)
            or await convs.can_manage(db, conv, viewer)
        )
    ):
        return _not_found("no such recording")
    mime = "video/webm" if rec.has_video else "audio/webm"
    return stored_file(node.settings.data_dir, rec.path, mime, f"{conv.slug}-{rec.id}.webm")
