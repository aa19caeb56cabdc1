"""Feeds of published conversations: RSS 2.0, Atom 1.0, and a podcast (RSS with enclosures).

Only conversations that are published and public appear. Documents are built with
ElementTree, which escapes everything users wrote (titles, descriptions, names) as XML text, so
hostile input cannot break out of an element. Links are absolute: feed readers fetch them
from elsewhere.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.enums import ConversationState, Role, Visibility
from junto.storage.tables import (
    Conversation,
    ConversationKnowledge,
    ConversationMedia,
    ConversationTag,
    Participant,
    User,
)

LIMIT = 50
ATOM = "http://www.w3.org/2005/Atom"
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST = "https://podcastindex.org/namespace/1.0"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
ET.register_namespace("atom", ATOM)
ET.register_namespace("itunes", ITUNES)
ET.register_namespace("podcast", PODCAST)
ET.register_namespace("content", CONTENT)


@dataclass
class Audio:
    path: str  # URL path of the file
    mime: str
    bytes: int
    duration_s: float


@dataclass
class Entry:
    slug: str
    title: str
    description: str
    summary: str  # from the knowledge when there is one, else the description
    published_at: datetime
    updated_at: datetime
    hosts: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    audio: Audio | None = None


async def published(db: AsyncSession, limit: int = LIMIT) -> list[Entry]:
    """The latest published public conversations, newest first."""
    rows = (
        await db.execute(
            select(Conversation)
            .where(
                Conversation.state == ConversationState.PUBLISHED,
                Conversation.visibility == Visibility.PUBLIC,
            )
            .order_by(Conversation.published_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
    ).scalars()
    convs = list(rows)
    ids = [c.id for c in convs]
    if not ids:
        return []
    tags: dict[int, list[str]] = defaultdict(list)
    for conv_id, tag in await db.execute(
        select(ConversationTag.conversation_id, ConversationTag.tag)
        .where(ConversationTag.conversation_id.in_(ids))
        .order_by(ConversationTag.tag)
    ):
        tags[conv_id].append(tag)
    hosts: dict[int, list[str]] = defaultdict(list)
    for conv_id, name in await db.execute(
        select(Participant.conversation_id, User.display_name)
        .join(User, User.id == Participant.user_id)
        .where(
            Participant.conversation_id.in_(ids),
            Participant.role.in_((Role.HOST, Role.COHOST)),
        )
        .order_by(Participant.role, User.display_name)
    ):
        hosts[conv_id].append(name)
    audio = {
        m.conversation_id: m
        for m in (
            await db.execute(
                select(ConversationMedia).where(
                    ConversationMedia.conversation_id.in_(ids), ConversationMedia.kind == "audio"
                )
            )
        ).scalars()
    }
    summaries = {
        k.conversation_id: _summary_text(k.data)
        for k in (
            await db.execute(
                select(ConversationKnowledge).where(ConversationKnowledge.conversation_id.in_(ids))
            )
        ).scalars()
    }
    entries = []
    for conv in convs:
        media = audio.get(conv.id)
        when = conv.published_at or conv.ended_at or conv.created_at
        entries.append(
            Entry(
                slug=conv.slug,
                title=conv.title,
                description=conv.description,
                summary=summaries.get(conv.id) or conv.description,
                published_at=when,
                updated_at=max(when, conv.updated_at),
                hosts=hosts.get(conv.id, []),
                tags=tags.get(conv.id, []),
                audio=None
                if media is None
                else Audio(
                    path=f"/c/{conv.slug}/media/audio",
                    mime=media.mime,
                    bytes=media.bytes,
                    duration_s=media.duration_s,
                ),
            )
        )
    return entries


def _summary_text(data: str) -> str:
    """The knowledge's prose: the LLM's abstract, else the extractive summary's sentences."""
    try:
        doc = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    if isinstance(doc.get("abstract"), str) and doc["abstract"].strip():
        return str(doc["abstract"]).strip()
    sentences = doc.get("summary") or []
    return " ".join(
        str(s.get("text", "")).strip() for s in sentences if isinstance(s, dict)
    ).strip()


# ---- documents ----------------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = _xml_safe(text)
    return element


def _xml_safe(text: str) -> str:
    # XML 1.0 cannot carry most control characters, even escaped: drop them.
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def _document(root: ET.Element) -> bytes:
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def _duration(seconds: float) -> str:
    total = max(0, round(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _latest(entries: list[Entry]) -> datetime:
    return max((e.updated_at for e in entries), default=datetime(2026, 1, 1, tzinfo=UTC))


def rss(entries: list[Entry], base: str, title: str, *, podcast: bool = False) -> bytes:
    """RSS 2.0; with `podcast`, only entries with audio, as enclosures with iTunes tags."""
    feed_path = "/feeds/podcast.rss" if podcast else "/feeds/conversations.rss"
    root = ET.Element("rss", {"version": "2.0"})
    channel = _sub(root, "channel")
    _sub(channel, "title", title + (" (podcast)" if podcast else ""))
    _sub(channel, "link", base + "/")
    _sub(channel, "description", "Published conversations: recordings, transcripts, summaries.")
    _sub(channel, "language", "en")
    _sub(channel, "lastBuildDate", format_datetime(_latest(entries)))
    _sub(channel, f"{{{ATOM}}}link", href=base + feed_path, rel="self", type="application/rss+xml")
    if podcast:
        _sub(channel, f"{{{ITUNES}}}author", title)
        _sub(channel, f"{{{ITUNES}}}summary", "Published conversations from " + title)
        _sub(channel, f"{{{ITUNES}}}image", href=base + "/static/img/favicon.svg")
        _sub(channel, f"{{{ITUNES}}}explicit", "false")
        # Its attribute is called "text", which _sub's own parameter would shadow.
        ET.SubElement(channel, f"{{{ITUNES}}}category", {"text": "Society & Culture"})
    for entry in entries:
        if podcast and entry.audio is None:
            continue
        link = f"{base}/c/{entry.slug}"
        item = _sub(channel, "item")
        _sub(item, "title", entry.title)
        _sub(item, "link", link)
        _sub(item, "guid", link, isPermaLink="true")
        _sub(item, "pubDate", format_datetime(entry.published_at))
        _sub(item, "description", entry.summary)
        if entry.hosts:
            _sub(item, "author", "noreply@invalid (" + ", ".join(entry.hosts) + ")")
        for tag in entry.tags:
            _sub(item, "category", tag)
        if podcast and entry.audio is not None:
            _sub(
                item,
                "enclosure",
                url=base + entry.audio.path,
                length=str(entry.audio.bytes),
                type=entry.audio.mime,
            )
            _sub(item, f"{{{ITUNES}}}duration", _duration(entry.audio.duration_s))
            _sub(item, f"{{{ITUNES}}}author", ", ".join(entry.hosts) or title)
            _sub(item, f"{{{ITUNES}}}summary", entry.summary)
            # Podcasting 2.0: apps that show transcripts fetch ours.
            _sub(
                item,
                f"{{{PODCAST}}}transcript",
                url=f"{link}/transcript.vtt",
                type="text/vtt",
            )
    return _document(root)


def atom(entries: list[Entry], base: str, title: str) -> bytes:
    """Atom 1.0 (RFC 4287)."""
    root = ET.Element(f"{{{ATOM}}}feed")
    _sub(root, f"{{{ATOM}}}title", title)
    _sub(root, f"{{{ATOM}}}id", base + "/feeds/conversations.atom")
    _sub(root, f"{{{ATOM}}}updated", _latest(entries).isoformat())
    _sub(root, f"{{{ATOM}}}link", href=base + "/", rel="alternate", type="text/html")
    _sub(
        root,
        f"{{{ATOM}}}link",
        href=base + "/feeds/conversations.atom",
        rel="self",
        type="application/atom+xml",
    )
    for entry in entries:
        link = f"{base}/c/{entry.slug}"
        item = _sub(root, f"{{{ATOM}}}entry")
        _sub(item, f"{{{ATOM}}}title", entry.title)
        _sub(item, f"{{{ATOM}}}id", link)
        _sub(item, f"{{{ATOM}}}link", href=link, rel="alternate", type="text/html")
        _sub(item, f"{{{ATOM}}}published", entry.published_at.isoformat())
        _sub(item, f"{{{ATOM}}}updated", entry.updated_at.isoformat())
        _sub(item, f"{{{ATOM}}}summary", entry.summary, type="text")
        # RFC 4287 wants an author per entry (or on the feed): the hosts, else the node.
        for name in entry.hosts or [title]:
            _sub(_sub(item, f"{{{ATOM}}}author"), f"{{{ATOM}}}name", name)
        for tag in entry.tags:
            _sub(item, f"{{{ATOM}}}category", term=tag)
        if entry.audio is not None:
            _sub(
                item,
                f"{{{ATOM}}}link",
                href=base + entry.audio.path,
                rel="enclosure",
                type=entry.audio.mime,
                length=str(entry.audio.bytes),
            )
    return _document(root)
