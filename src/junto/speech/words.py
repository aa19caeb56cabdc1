"""Joining recognised words into text that reads right ("$4,500", "12%", "US-based").

faster-whisper's word timestamps give each word the text of its tokens, and a word that starts a
new word carries its own leading space: " It", " costs", " 4", ",500", " 12", "%", " US",
"-based". A piece without that space continues the word before it. Joining the pieces with a
space between each ("4 ,500", "12 %") is wrong; joining them as given is right.

Junto stores words stripped (their text is what a page shows and a search matches) with a flag
that says whether the word attaches to the one before ([..., text, joins]). Words stored before
that flag existed have lost the information, so for them (`joins is None`) the decision falls
back to rules of written English: no space before , . ; : ! ? % ' ) ] } and closing quotes, nor
before a hyphen that starts a word ("-based"); no space after $ € £ ( [ {. Every place that
builds text from words (the transcript, captions, snippets, knowledge sentences, search
passages, exports, the interactive transcript page) goes through `join_words` or `flags`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# A word starting with one of these closes on the word before ("dollars," "12%" "it's").
_ATTACH_BEFORE = frozenset(",.;:!?%')]}…”\u2019»")  # right single quote
# A word ending with one of these opens onto the next ("$ 4" is "$4", "( see" is "(see").
_ATTACH_AFTER = frozenset("$€£¥([{“\u2018«")  # left single quote

StoredWord = Sequence[object]


def attaches(previous: str, text: str) -> bool:
    """For words whose spaces were stripped: does `text` attach to `previous` with no space?"""
    if not previous or not text:
        return False
    if text[0] in _ATTACH_BEFORE or previous[-1] in _ATTACH_AFTER:
        return True
    # A hyphen that begins a word continues a compound ("US" "-based"); a dash on its own
    # ("-", "--") is a word of its own.
    return text[0] == "-" and len(text) > 1 and text[1].isalnum()


def from_piece(piece: str, first: bool = False) -> tuple[str, bool]:
    """One of Whisper's word pieces as (stripped text, attaches to the word before)."""
    return piece.strip(), not first and not piece[:1].isspace()


def resolve(words: Iterable[tuple[str, bool | None]]) -> list[tuple[str, bool]]:
    """(stripped text, attaches) for each non-empty word: its own flag when it has one, the
    rules when it is None; the first word never attaches."""
    out: list[tuple[str, bool]] = []
    for raw, joins in words:
        text = raw.strip()
        if not text:
            continue
        if not out:
            out.append((text, False))
            continue
        out.append((text, attaches(out[-1][0], text) if joins is None else joins))
    return out


def join_words(words: Iterable[tuple[str, bool | None]]) -> str:
    """The text of `words`, each given as (text, attaches-to-the-previous or None if unknown)."""
    parts = resolve(words)
    return "".join(text if joins or i == 0 else " " + text for i, (text, joins) in enumerate(parts))


def join_pieces(pieces: Iterable[str]) -> str:
    """The text of Whisper's pieces as it gives them (a leading space starts a new word)."""
    return join_words(from_piece(p) for p in pieces)


def stored_flag(entry: StoredWord, index: int) -> bool | None:
    """The attaches flag stored at `entry[index]`, or None for words stored without one."""
    if len(entry) <= index:
        return None
    value = entry[index]
    return value if isinstance(value, bool) else bool(value) if isinstance(value, int) else None


def join_stored(entries: Iterable[StoredWord], text_at: int = 2, flag_at: int = 3) -> str:
    """The text of stored word entries ([start, end, text, joins] in transcript segments)."""
    return join_words((str(e[text_at]), stored_flag(e, flag_at)) for e in entries)


def flags(entries: Sequence[StoredWord], text_at: int = 2, flag_at: int = 3) -> list[bool]:
    """Whether each stored entry attaches to the one before (empty words count as not), for
    pages that show words one by one and put a space only where one belongs."""
    out: list[bool] = []
    previous = ""
    for entry in entries:
        text = str(entry[text_at]).strip()
        joins = stored_flag(entry, flag_at)
        if not text or not previous:
            out.append(False)
        else:
            out.append(attaches(previous, text) if joins is None else joins)
        previous = text or previous
    return out
