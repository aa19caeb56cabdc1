"""Which of a query's words a passage holds: the same word, the same stem, or a word that
sounds the same (issue 13: Whisper writes "lunch" for "launch", "come post" for "compost",
"bored" for "board").

The database's keyword index (FTS5's porter stemmer, PostgreSQL's english config) finds the
candidates; this module scores every candidate, from either side, in one way on both
databases, and decides which words are marked in a hit.

- A stem is the word with a plural, -ing, -ed or -ly ending and a final e taken off: enough to
  meet "moving"/"move" and "crashes"/"crash" (scoring ~200 candidates a query must stay cheap,
  so no dictionary).
- A sound key is the word's consonant skeleton in the spirit of Metaphone (L. Philips, 1990): vowels
  dropped, letters that sound alike merged (c/k/q, s/z, d/t, v/f; ch/sh, th, ph), so
  homophones share a key. Two neighbouring words are also keyed together, for split words. A key
  of fewer than MIN_KEY consonants (sale, date) would collide with too many words: no credit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from junto.search.keyword import STOPWORDS, words

# A word that only sounds like the query's word is worth less than the word itself: it may be
# a mishearing, or simply another word ("lunch" at a lunch).
SOUND_CREDIT = 0.7
MIN_KEY = 3
MIN_SOUND_WORD = 4  # letters a query word needs before sound-alikes count
MIN_SPLIT_WORD = 6  # letters a query word needs before two words may stand for it
TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)

_DIGRAPHS = (("tch", "X"), ("sch", "sk"), ("ch", "X"), ("sh", "X"), ("th", "0"), ("ph", "f"),
             ("gh", ""), ("ck", "k"), ("wh", "w"), ("qu", "kw"), ("dg", "j"))  # fmt: skip
_SAME = {"d": "t", "z": "s", "q": "k", "v": "f", "x": "ks"}
_VOWELS = "aeiouy"


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    w = word.lower().removesuffix("'s")
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "ls":  # running -> run
                w = w[:-1]
            break
    return w.removesuffix("e") if len(w) > 3 else w


@lru_cache(maxsize=65_536)
def sound(word: str) -> str:
    """The word's consonant skeleton ("launch" and "lunch": "lnX")."""
    w = word.lower().removesuffix("'s")
    for a, b in _DIGRAPHS:
        w = w.replace(a, b)
    out: list[str] = []
    prev = ""
    for i, c in enumerate(w):
        nxt = w[i + 1] if i + 1 < len(w) else "."
        if c == prev or c in _VOWELS or c == "h" or (c == "w" and nxt not in _VOWELS):
            key = ""
        elif c == "c":
            key = "s" if nxt in "eiy" else "k"
        elif c == "g":
            key = "j" if nxt in "eiy" else "k"
        else:
            key = _SAME.get(c, c)
        if key:
            out.append(key)
        prev = c
    return "".join(out)


@dataclass(frozen=True)
class Term:
    word: str
    stem: str
    sound: str | None  # None: too short to match by sound


def query_terms(query: str) -> list[Term]:
    """The query's content words (stop words only when there is nothing else)."""
    all_words = words(query)
    content = [w for w in all_words if w not in STOPWORDS] or all_words
    out = []
    for w in content:
        key = sound(w)
        ok = len(w) >= MIN_SOUND_WORD and len(key) >= MIN_KEY
        out.append(Term(w, stem(w), key if ok else None))
    return out


@dataclass(frozen=True)
class Match:
    words: float  # share of the query's words the passage holds (word or stem), 0-1
    sounds: float  # share it holds only as sound-alikes, 0-1
    marked: frozenset[int]  # positions of the tokens that matched

    @property
    def coverage(self) -> float:
        return self.words + SOUND_CREDIT * self.sounds


def matches(tokens: Sequence[str], terms: Sequence[Term], by_sound: bool = True) -> Match:
    """How lower-case `tokens` (a passage's) hold the query's terms (sound-alikes only if
    `by_sound`)."""
    if not terms or not tokens:
        return Match(0.0, 0.0, frozenset())
    stems = [stem(t) for t in tokens]
    found = alike = 0
    marked: set[int] = set()
    for term in terms:
        exact = {i for i, s in enumerate(stems) if s == term.stem}
        if exact:
            found += 1
            marked |= exact
        elif by_sound and term.sound is not None and (near := _sound_alike(tokens, term)):
            alike += 1
            marked |= near
    return Match(found / len(terms), alike / len(terms), frozenset(marked))


def _sound_alike(tokens: Sequence[str], term: Term) -> set[int]:
    out: set[int] = set()
    split = len(term.word) >= MIN_SPLIT_WORD
    for i, token in enumerate(tokens):
        if len(token) >= MIN_SOUND_WORD - 1 and sound(token) == term.sound:
            out.add(i)
        elif split and i + 1 < len(tokens) and sound(token + tokens[i + 1]) == term.sound:
            out |= {i, i + 1}  # "come post" for "compost"
    return out


def shares(text: str, terms: Sequence[Term], by_sound: bool = True) -> tuple[float, float]:
    """(words, sounds) of `matches` without the positions: what ranking needs, for every
    candidate, so sets instead of scans (~200 passages a query)."""
    if not terms:
        return 0.0, 0.0
    toks = TOKEN.findall(text.lower())
    stems = {stem(t) for t in toks}
    missing = [t for t in terms if t.stem not in stems]
    found = len(terms) - len(missing)
    alike = 0
    wanted = [t for t in missing if t.sound is not None] if by_sound else []
    if wanted:
        keys = {sound(t) for t in toks if len(t) >= MIN_SOUND_WORD - 1}
        if any(len(t.word) >= MIN_SPLIT_WORD for t in wanted):
            keys |= {sound(a + b) for a, b in pairwise(toks)}
        alike = sum(1 for t in wanted if t.sound in keys)
    return found / len(terms), alike / len(terms)


def tokens(text: str) -> list[str]:
    return [t.lower() for t in TOKEN.findall(text)]


def match(text: str, terms: Sequence[Term], by_sound: bool = True) -> Match:
    return matches(tokens(text), terms, by_sound)
