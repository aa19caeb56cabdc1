"""The conversation room page, `GET /c/{slug}`.

The server renders what is static (title, state, description, tags, hosts) so the page reads
well without JavaScript and in link previews; everything live (chat, backchannel, stage,
presence) comes over the realtime protocol (docs/protocol.md) into `static/js/room.js`.
Data for the scripts travels in a JSON block, never in inline script, because the pages run
under a CSP without 'unsafe-inline'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from junto import conversations
from junto.enums import ConversationState, Role
from junto.speech.models import unsupported_language
from junto.storage.tables import Conversation, User
from junto.web.conversation_page import conversation_page
from junto.web.deps import DbDep, NodeDep
from junto.web.page_parts import STATE_LABELS, hosts_of
from junto.web.render import render

router = APIRouter()


@router.get("/c/{slug}", response_class=HTMLResponse, include_in_schema=False)
async def room_page(request: Request, slug: str, db: DbDep, node: NodeDep) -> Response:
    viewer: User | None = getattr(request.state, "user", None)
    conv = await conversations.get_by_slug(db, slug)
    if conv is None or not await conversations.can_view(db, conv, viewer):
        # Missing and not-allowed look the same, so an invite-only room does not reveal itself.
        return render(request, "room_missing.html", status_code=404, slug=slug)
    if conv.state in (ConversationState.ENDED, ConversationState.PUBLISHED):
        # Over: the recording, transcript and summary instead of the live room.
        return await conversation_page(request, db, node, conv, viewer)
    summary = conversations.summary(conv, await conversations.tags_of(db, conv))
    role = await conversations.role_of(db, conv, viewer)
    limits = node.settings.limits
    # Why live captions are off for this conversation: a language the caption model does not
    # know (junto.speech.live turns them off too).
    captions_note = (
        unsupported_language(node.settings.caption_model, conv.language, "JUNTO_CAPTION_MODEL")
        if node.settings.captions and node.media is not None
        else None
    )
    room_data: dict[str, Any] = {
        "slug": conv.slug,
        "ws_path": f"/ws/conversations/{conv.slug}",
        "conversation": summary,
        "viewer": _person(viewer) if viewer is not None else None,
        "role": role.value if role is not None else None,
        "can_moderate": viewer is not None
        and (role in (Role.HOST, Role.COHOST) or bool(viewer.is_admin)),
        "settings": {
            "slow_mode_seconds": conv.slow_mode_seconds,
            "stage_locked": conv.stage_locked,
        },
        "limits": {"chat": limits.chat_max_chars, "backchannel": limits.backchannel_max_chars},
        # Live captions (junto.speech.live) run only when the node has them on and has media.
        "captions": node.settings.captions and node.media is not None and captions_note is None,
        "captions_note": captions_note,
        "recording": node.settings.recording and node.media is not None,
    }
    return render(
        request,
        "room.html",
        conversation=summary,
        state_label=STATE_LABELS.get(str(summary["state"]), str(summary["state"])),
        scheduled_label=_scheduled_label(conv),
        hosts=await hosts_of(db, conv),
        limits=room_data["limits"],
        room_data=room_data,
        can_manage=viewer is not None and await conversations.can_manage(db, conv, viewer),
        # The processing panel follows the conversation past its end, when its jobs are for
        # its reviewers only (conversations.withheld_events): others would poll into a 404.
        can_review=viewer is not None and (viewer.is_admin or role in conversations.REVIEWER_ROLES),
        is_over=summary["state"] in ("ended", "published"),
    )


def _person(user: User) -> dict[str, Any]:
    # The protocol's "person" shape (docs/protocol.md), so the scripts treat the viewer like
    # anyone else in the room.
    return {
        "id": user.id,
        "name": user.display_name,
        "colour": user.colour,
        "is_guest": bool(user.is_guest),
    }


def _scheduled_label(conv: Conversation) -> str:
    if conv.state.value != "scheduled" or conv.scheduled_at is None:
        return ""
    at: datetime = conv.scheduled_at
    return f"starts {at:%Y-%m-%d %H:%M} UTC"
