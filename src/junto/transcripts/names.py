"""People's names spelled as they spell them, in the final transcript.

The final pass hears the conversation's names as hints (junto.speech.vocabulary), which fixes
names Whisper would write as common words ("don't win" for Joaquin), but a name close to a more
common one still comes out as that one: "Tomas" as "Thomas", "Katya" as "Katia"
(bench/pipeline.py: 5 of 6 names right, the sixth "Thomas" every time). An action item
addressed to "Thomas" then has no owner, and a search for Tomas misses him.

So, once all words are on the timeline, a word written as a name that *sounds* like exactly one
participant's name (`sound_key`: the same letters once spellings that sound alike are made
alike) and is not itself anyone's name is written as that participant's name. Only words that
read as names are touched: capitalised in the middle of a sentence, or at its start when a
comma follows ("Thomas, could you ..."), so a sentence's first word ("Will we ...") keeps its
spelling. Names shorter than four letters once keyed are left alone: too many words sound
like them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import replace

from junto.transcripts.merge import TimedWord

MIN_KEY = 4
_SENTENCE_END = (".", "?", "!", "…")
_CLOSING = "\"')\u201d\u2019"  # quotes and brackets after a sentence's full stop
# Spellings that sound alike, made alike (English readings; the order matters: "ph" before
# "h" goes, "ck" before "c" becomes "k").
_ALIKE = (("ph", "f"), ("ck", "k"), ("qu", "kw"), ("c", "k"), ("y", "i"), ("z", "s"))
_WORD = re.compile(r"^(\W*)([^\W\d_]+(?:['\u2019-][^\W\d_]+)*)(\W*)$")


def sound_key(name: str) -> str:
    """ "Thomas" and "Tomas" → "tomas"; "Katya" and "Katia" → "katia"; "John" → "jon"."""
    plain = unicodedata.normalize("NFKD", name.casefold())
    letters = "".join(ch for ch in plain if ch.isalpha() and ch.isascii())
    for spelled, sounds in _ALIKE:
        letters = letters.replace(spelled, sounds)
    # A silent h (Thomas, John, Sarah), but not the first letter (Hanna keeps hers).
    letters = letters[:1] + letters[1:].replace("h", "")
    collapsed = "".join(ch for i, ch in enumerate(letters) if i == 0 or ch != letters[i - 1])
    return collapsed.removesuffix("e") if len(collapsed) > MIN_KEY else collapsed


def name_parts(display_names: Iterable[str]) -> dict[str, str]:
    """sound_key → the spelling, for every part of every display name that is long enough and
    whose key no two different spellings share (ambiguous: neither is used)."""
    found: dict[str, set[str]] = {}
    for display in display_names:
        for part in display.split():
            match = _WORD.match(part)
            if match is None:
                continue
            spelled = match.group(2)
            key = sound_key(spelled)
            if len(key) >= MIN_KEY and spelled[:1].isupper():
                found.setdefault(key, set()).add(spelled)
    return {key: next(iter(s)) for key, s in found.items() if len(s) == 1}


def respell_names(words: list[TimedWord], display_names: Iterable[str]) -> list[TimedWord]:
    """`words` (the timeline, all speakers) with names that sound like a participant's written
    as theirs (module docstring). Times, speakers and joins are kept."""
    names = name_parts(display_names)
    if not names:
        return words
    spelled_right = set(names.values())
    last_of: dict[int, str] = {}  # each speaker's previous word: does this one start a sentence?
    out: list[TimedWord] = []
    for word in words:
        previous = last_of.get(word.user_id)
        last_of[word.user_id] = word.text
        match = _WORD.match(word.text)
        if match is None or word.joins:
            out.append(word)
            continue
        before, core, after = match.groups()
        if not core[:1].isupper() or core in spelled_right:
            out.append(word)
            continue
        closed = previous.rstrip(_CLOSING) if previous is not None else ""
        starts_sentence = previous is None or closed.endswith(_SENTENCE_END)
        if starts_sentence and not after.startswith(","):
            out.append(word)
            continue
        name = names.get(sound_key(core))
        out.append(replace(word, text=before + name + after) if name else word)
    return out
