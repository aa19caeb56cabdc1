"""The cue-phrase detectors that found questions, decisions and action items before the
classifier (junto.knowledge.items): kept as the baseline that bench/knowledge.py measures the
classifier against, one sentence at a time, with no context.

A question ends with "?" (not a tag such as "right?"); a decision says "we decided", "let's go
with" and the like; an action item's owner is the speaker for "I will ...", the named
participant for "<Name> will ..." / "<Name>, can you ...", nobody for "we need to ...".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from junto.knowledge.model import ActionItem
from junto.knowledge.sentences import Sentence, word_count

QUESTION_START = re.compile(
    r"^(?:so,?\s+|and\s+|but\s+)?(?:who|what|when|where|why|how|which|is|are|was|were|do|does|did|"
    r"can|could|should|would|will|shall|may|might|have|has)\b",
    re.I,
)
# "Right?", "..., isn't it?" and friends ask for agreement, not an answer: a statement with such
# a tag is not a question either.
TAG_QUESTION = re.compile(
    r"(?:^|,\s*)(?:right|okay|ok|yes|no|yeah|really|you know|isn't it|aren't we|isn't that so|"
    r"don't you think|wouldn't you say|correct|huh|eh|"
    r"(?:(?:is|was|are|were|do|does|did|have|has|could|would|should)n't|won't|can't) "
    r"(?:it|that|there|they|we|you|he|she|I))\?$",
    re.I,
)
DECISION = re.compile(
    r"\b(?:we(?:'ve| have)? decided|we agreed|we(?:'re| are) going with|let's go with|"
    r"the decision is|we will go with|it's decided|we settled on|we chose|we'll go with|"
    r"agreed to)\b",
    re.I,
)
ACTION_SELF = re.compile(
    r"\b(?:I will|I'll|I am going to|I'm going to|let me|I can take|I'll take)\s+(?P<task>.+)", re.I
)
# "I'll be honest", "let me tell you", "I'm going to ask you": talk about the talk, no task.
NOT_A_TASK = re.compile(
    r"^(?:just\s+|also\s+|now\s+|quickly\s+)?(?:be|tell|say|admit|bet|guess|think|talk|"
    r"mention|repeat|quote|pass|see|know|never|always|probably|ask you|give you|show you|"
    r"read you|leave it|put it|start with|begin with|stop there|stop here|finish with|"
    r"(?:answer|explain|come back to|get to) (?:that|this|it|why|how|what|your question))\b",
    re.I,
)
ACTION_OTHER = re.compile(
    r"\b(?P<name>[A-Z][a-z]+)(?:,)?\s+(?:will|is going to|can you|could you|would you|please)\s+"
    r"(?P<task>.+)"
)
ACTION_TEAM = re.compile(
    r"\b(?:we need to|we have to|we must|we should|action item|to do:|someone should|"
    r"next step is to|next steps are)\s*(?P<task>.+)",
    re.I,
)


def is_question(text: str) -> bool:
    text = text.strip()
    if not text.endswith("?") or TAG_QUESTION.search(text):
        return False
    return word_count(text) >= 4 or bool(QUESTION_START.match(text))


def action_item(s: Sentence, people: Mapping[int, str]) -> ActionItem | None:
    """The sentence as an action item with its owner, or None if it assigns nothing."""
    text = s.text.strip()
    if text.endswith("?") and not re.search(r"\b(?:can|could|would) you\b", text, re.I):
        return None
    base = {"text": text, "start_ms": s.start_ms, "end_ms": s.end_ms, "speaker_id": s.speaker_id}
    other = ACTION_OTHER.search(text)
    if other:
        name = other.group("name")
        owner_id = _person_named(name, people)
        if owner_id is not None:
            return ActionItem(**base, owner_id=owner_id, owner=people[owner_id])
    mine = ACTION_SELF.search(text)
    if mine and word_count(mine.group("task")) >= 2 and not NOT_A_TASK.match(mine.group("task")):
        return ActionItem(**base, owner_id=s.speaker_id, owner=people.get(s.speaker_id or -1))
    if ACTION_TEAM.search(text) and word_count(text) >= 5:
        return ActionItem(**base)
    return None


def _person_named(name: str, people: Mapping[int, str]) -> int | None:
    """The participant called `name`: by first name ("Ben"), else by another part of the name
    ("Dr. Okafor"), if exactly one participant has it."""
    wanted = name.lower()
    parts = {uid: full.lower().split() for uid, full in people.items()}
    for matches in (
        [uid for uid, p in parts.items() if p[:1] == [wanted]],
        [uid for uid, p in parts.items() if wanted in p[1:]],
    ):
        if matches:
            return matches[0] if len(matches) == 1 else None
    return None


def is_decision(text: str) -> bool:
    return DECISION.search(text) is not None
