"""Plain text that people post: cleaning, and the hashtags, mentions and links inside it.

Bodies are stored and sent as plain text; clients render them as text and make the links,
mentions and hashtags into elements themselves (docs/protocol.md). The server extracts hashtags
so backchannel posts can be filtered and counted by topic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# A hashtag starts after a non-word character (so "C#" or "page#top" are not tags) and is not
# part of a longer run: a 41-character tag is not a tag, rather than a truncated one.
HASHTAG_RE = re.compile(r"(?<![\w#&])#([\w-]{1,40})(?![\w-])")
HASHTAG_ONLY_RE = re.compile(r"[\w-]{1,40}")
# Usernames are a-z, 0-9 and "_", at most 32, case-insensitive (junto.accounts); "a@b.org" is
# an address, not a mention, hence the look-behind.
MENTION_RE = re.compile(r"(?<![\w@.])@([A-Za-z0-9_]{1,32})(?![A-Za-z0-9_])")
# http(s) only: other schemes (javascript:, data:, file:) are never turned into links.
LINK_RE = re.compile(r"(?<![\w@])https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?'\"*_~"
_DROP = frozenset({"Cc", "Cs"})  # control characters, lone surrogates
_BRACKETS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class Extracted:
    hashtags: list[str]
    mentions: list[str]
    links: list[str]


def clean_text(raw: str) -> str:
    """Normalise to NFC, drop control characters (newlines stay, tabs become spaces), trim.

    Bidirectional controls are not dropped but refused by the caller (`junto.user_text`), as
    in every other text people write: silently removing them could change what a line says.

    NFC makes visually identical text compare and count equally; control characters can hide
    or reorder text in terminals and logs, and have no place in a chat line. Lone surrogates
    (JSON allows "\\ud800") are not text either: UTF-8 encoders and PostgreSQL refuse them.
    """
    text = unicodedata.normalize("NFC", raw)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    # U+2028/U+2029 are line breaks in disguise (junto.user_text refuses them): make them real.
    text = text.replace("\u2028", "\n").replace("\u2029", "\n")
    text = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in _DROP)
    return text.strip()


def extract(text: str) -> Extracted:
    links = find_links(text)
    # Hashtags and mentions inside a link (a #fragment, a user@host) are part of the link.
    rest = LINK_RE.sub(" ", text)
    return Extracted(hashtags=find_hashtags(rest), mentions=find_mentions(rest), links=links)


def find_hashtags(text: str) -> list[str]:
    """Hashtags without "#", lower-cased, each once, in order of first appearance."""
    return _unique(m.group(1).lower() for m in HASHTAG_RE.finditer(text))


def find_mentions(text: str) -> list[str]:
    """Mentioned usernames without "@", lower-cased, each once."""
    return _unique(m.group(1).lower() for m in MENTION_RE.finditer(text))


def find_links(text: str) -> list[str]:
    """http(s) URLs, without the punctuation that ends the sentence around them."""
    found: list[str] = []
    for match in LINK_RE.finditer(text):
        url = _trim_link(match.group(0))
        if "://" in url and url.split("://", 1)[1]:
            found.append(url)
    return _unique(found)


def normalise_tag(tag: str) -> str | None:
    """A tag as a filter parameter ("#AI", "ai") in stored form ("ai"), or None if invalid."""
    tag = tag.strip().removeprefix("#").lower()
    return tag if HASHTAG_ONLY_RE.fullmatch(tag) else None


def _trim_link(url: str) -> str:
    while url:
        last = url[-1]
        if last in _TRAILING_PUNCTUATION:
            url = url[:-1]
        elif last in _BRACKETS and url.count(last) > url.count(_BRACKETS[last]):
            # "(see https://en.wikipedia.org/wiki/Foo_(bar))": keep the balanced ")" only.
            url = url[:-1]
        else:
            break
    return url


def _unique(items: Iterable[str]) -> list[str]:
    # dict keeps insertion order, so the first appearance decides the position.
    return list(dict.fromkeys(items))
