"""Which characters may be in what people write: one rule for every stored piece of user text.

Titles, descriptions, display names, bios, chat, backchannel, snippet titles and transcript
corrections all call `unfit_character` (or `check`), and each turns the answer into its own
error (a 422 naming the field, an account error, a protocol `bad_message`).

Refused:
- bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): they reorder
  the text after them, so "evil\\u202eeman" renders as "evilname" reversed, another person's name,
  and an unclosed one reaches past its field into the page (CVE-2021-42574, "Trojan Source");
- control characters (Cc) except the whitespace a field allows (a description's newlines);
- line and paragraph separators (Zl, Zp), which are line breaks in disguise;
- unpaired surrogates (Cs), which are not text and which UTF-8 encoders and PostgreSQL refuse.

Accepted: the bidi marks LRM, RLM and ALM (U+200E, U+200F, U+061C). Right-to-left writing needs
them to place punctuation and numbers next to Latin text, they are what keyboards insert, and a
mark only sets the direction of the neutral characters beside it: it opens no embedding that
could flip the text that follows, so it cannot disguise anything beyond one character's place.
"""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e"  # LRE, RLE, PDF, LRO, RLO
    "\u2066\u2067\u2068\u2069"  # LRI, RLI, FSI, PDI
)
_NOT_TEXT = frozenset({"Cc", "Cs", "Zl", "Zp"})


def unfit_character(text: str, *, allow: str = "") -> str | None:
    """Why `text` may not be stored, naming the first character at fault, or None if it may."""
    for ch in text:
        if ch in allow:
            continue
        if ch in BIDI_CONTROLS:
            return (
                f"contains a bidirectional control (found {_named(ch)}), which makes text "
                "display in another order than it was written; remove it"
            )
        if unicodedata.category(ch) in _NOT_TEXT:
            return f"contains control characters (found {_named(ch)}); remove them"
    return None


def check(text: str, what: str, *, allow: str = "") -> str:
    """`text` unchanged, or ValueError("<what> contains ...") naming the character at fault."""
    problem = unfit_character(text, allow=allow)
    if problem is not None:
        raise ValueError(f"{what} {problem}")
    return text


def _named(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"
