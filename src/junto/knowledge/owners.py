"""Who owns an action item: a name said in it, the speaker, the addressee, or nobody yet.

The participants' names are known, but a transcript writes them in lower case ("maya") and
Whisper mishears them ("maia" for Maya, "wakeen" for Joaquín): a word names a participant when
it is one of the parts of their name (accents and case aside), or close to one in spelling or
sound, unless it is a common English word ("same" is not Sam).

The owner of an action sentence, in this order:
1. the speaker, when they commit in the first person ("I'll ...", "I can take care of ...")
   and ask nobody else ("can you ...");
2. a participant named in it ("okay so maya you'll send the invoice" -> Maya); of two, the
   one the request is said to ("that's fine tom, priya would you ..." -> Priya);
3. the addressee of "you" ("can you check the logs.") or of an instruction ("tell them
   june is still the plan."): the previous speaker, else the next;
4. for the team ("we should ...", "someone needs to ..."): whoever takes it in the next
   sentence ("I can do that"), else nobody;
5. nobody, when someone who is no participant (or "she", "they") is the subject;
6. otherwise the speaker ("Sure, tomorrow morning.", "Will do.").
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping, Sequence

from junto.knowledge.dataset import fold
from junto.knowledge.sentences import Sentence

FIRST_PERSON = re.compile(
    r"\b(?:i(?:'ll| will| can| could| shall| am going to|'m going to|'m gonna| am gonna|"
    r"'d be happy to|'d love to|'m happy to| want to| need to| have to| must| promise)|"
    r"let me|leave it with me|that's me|(?:i'm|i am) on it)\b",
    re.I,
)
REQUEST = re.compile(
    r"\b(?:(?:can|could|would|will|won't) you|you(?:'ll| will| can| could| should| need to|"
    r"'re going to| are going to|'d| own| take| do| follow| handle| check| send)|"
    r"would you mind|do you mind|(?<!i )(?<!we )want to|you're on|are you able)\b",
    re.I,
)
SECOND_PERSON = re.compile(r"\byou(?:'ll|'re|'d|r)?\b", re.I)
TEAM = re.compile(
    r"\b(?:we|we'll|we're|we've|let's|us|someone|somebody|anyone|anybody|everyone|everybody|"
    r"together)\b",
    re.I,
)
THIRD_PERSON = re.compile(
    r"^\W*(?:(?:okay|ok|so|and|but|um|uh|well|right|then)\W+)*"
    r"(?!(?:i|we|you|it|that|this|there|what|who|which|everyone|someone|somebody)\b)"
    r"[^\W\d_]+(?:'ll| will| is going to| is gonna|'s going to|'s gonna| can| could)\b",
    re.I,
)
# An instruction with no subject ("tell them ...", "please book the room"): a task for the
# person spoken to. Only verbs that are rarely a sentence's first word otherwise.
IMPERATIVE = re.compile(
    r"^\W*(?:(?:okay|ok|so|and|but|um|uh|well|right|then|just|now|also)\W+)*(?:please\s+)?"
    r"(?:tell|send|ask|call|ring|check|book|email|text|write|bring|chase|give|update|remind|"
    r"order|make sure|find out|look into|pick up|let (?:them|him|her|everyone|people|us) know)"
    r"\b",
    re.I,
)
TITLES = frozenset(
    "mr mrs ms miss dr prof professor mayor councillor councilor sir madam dame chair".split()
)
COMMON_BELOW = 5000  # WordPiece ids below this are frequent words: never fuzzy-matched


@functools.cache
def _common_words() -> frozenset[str]:
    """Frequent English words (the embedder's vocabulary, whose early ids are common words);
    empty when the tokenizer is missing (then only long words are matched loosely)."""
    try:
        from junto.knowledge.embeddings import _tokenizer_file

        vocab = json.loads(_tokenizer_file().read_text(encoding="utf-8"))["model"]["vocab"]
    except (OSError, ValueError, KeyError, RuntimeError):  # owners work without the model
        return frozenset()
    return frozenset(w for w, i in vocab.items() if i < COMMON_BELOW and w.isalpha())


def _sound(word: str) -> str:
    """A rough sound key: "Joaquín" and "wakeen" both give "VkVn" (vowel runs are V; the
    glides h, w, j, y are dropped; c, q are k)."""
    w = fold(word).replace("qu", "k").replace("ph", "f").replace("c", "k")
    w = re.sub(r"[aeiou]+", "V", re.sub(r"[hwjy]", "", w))
    return re.sub(r"(.)\1+", r"\1", w)


def name_parts(full: str) -> list[str]:
    """The parts of a participant's name a speaker may say: "Prof. Ingrid Sørensen" ->
    ["ingrid", "sorensen"]; odd or empty names give fewer (or no) parts."""
    parts = re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*\.?", fold(full))
    return [p for p in parts if not p.endswith(".") and p not in TITLES and len(p) >= 2]


def _close(word: str, part: str) -> bool:
    if word == part:
        return True
    if len(word) < 4 or len(part) < 4 or word in _common_words():
        return False
    if difflib.SequenceMatcher(None, word, part).ratio() >= 0.75:
        return True
    key = _sound(word)
    return len(key) >= 3 and key == _sound(part) and word[0] in "aeiouyhwj" + part[0]


def mentions(text: str, people: Mapping[int, str]) -> list[tuple[int, int]]:
    """(participant id, where in `fold(text)`) of each participant named in `text`, first
    mention only, in order (a name that fits two participants equally names neither)."""
    parts = {pid: name_parts(name) for pid, name in people.items()}
    found: dict[int, int] = {}
    for m in re.finditer(r"[^\W\d_]+(?:'[^\W\d_]+)?", fold(text)):
        word = m.group().removesuffix("'s")
        exact = [pid for pid, ps in parts.items() if word in ps]
        hits = exact or [pid for pid, ps in parts.items() if any(_close(word, p) for p in ps)]
        if len(hits) == 1 and hits[0] not in found:
            found[hits[0]] = m.start()
    return list(found.items())


def mentioned(text: str, people: Mapping[int, str]) -> list[int]:
    """Participants named in `text`, in the order they are named."""
    return [pid for pid, _ in mentions(text, people)]


def _asked(named: list[tuple[int, int]], text: str) -> int:
    """Of the participants named, the one a request is said to: the last named before
    "would you ..." ("thanks tom, priya would you ..."), else the first named."""
    request = REQUEST.search(fold(text))
    before = [pid for pid, at in named if request is not None and at < request.start()]
    return before[-1] if before else named[0][0]


def owner(
    sentences: Sequence[Sentence],
    i: int,
    people: Mapping[int, str],
    takes_it: Mapping[int, bool] | None = None,
) -> int | None:
    """The participant id who owns the action said in `sentences[i]`, or None when nobody
    does yet. `takes_it[j]` says whether sentence j is an action too (the classifier's
    verdict): a team action is owned by whoever takes it on in the next sentence."""
    s = sentences[i]
    text = s.text
    if FIRST_PERSON.search(text) and not REQUEST.search(text):
        return s.speaker_id
    named = [(pid, at) for pid, at in mentions(text, people) if pid != s.speaker_id]
    if named:
        return _asked(named, text)
    if SECOND_PERSON.search(text) or (IMPERATIVE.match(text) and not FIRST_PERSON.search(text)):
        return _addressee(sentences, i)
    if THIRD_PERSON.match(text):
        return None  # "Zed will bring the maps": someone who is not here, or "she will ..."
    if TEAM.search(text):
        nxt = sentences[i + 1] if i + 1 < len(sentences) else None
        if nxt is None or nxt.speaker_id == s.speaker_id:
            return None
        if takes_it is not None and not takes_it.get(i + 1, False):
            return None
        taker = owner(sentences, i + 1, people)
        return taker if not TEAM.search(nxt.text) or FIRST_PERSON.search(nxt.text) else None
    return s.speaker_id


def _addressee(sentences: Sequence[Sentence], i: int) -> int | None:
    me = sentences[i].speaker_id
    for j in (i - 1, i + 1):
        if 0 <= j < len(sentences) and sentences[j].speaker_id not in (None, me):
            return sentences[j].speaker_id
    return None
