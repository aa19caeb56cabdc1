"""Precision, recall and F1 of found questions, decisions and action items against the labelled
meetings (junto.knowledge.dataset), and how often an action item's owner is right.

A method maps one meeting to what it found: for each kind the indexes of the sentences, and for
action items the owner's participant id (None: unassigned). bench/knowledge.py scores the
classifier, the cue-phrase baseline and an LLM with it on the held-out meetings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from junto.knowledge import cues, items
from junto.knowledge.dataset import Meeting
from junto.knowledge.embeddings import Embedder


@dataclass
class Found:
    questions: set[int] = field(default_factory=set)
    decisions: set[int] = field(default_factory=set)
    actions: dict[int, int | None] = field(default_factory=dict)  # sentence -> owner id


Method = Callable[[Meeting], Found]


@dataclass
class Count:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Score:
    kinds: dict[str, Count] = field(
        default_factory=lambda: {k: Count() for k in ("questions", "decisions", "actions")}
    )
    owners_right: int = 0  # among action items found that are action items
    owners_checked: int = 0
    sentences: int = 0
    misses: list[str] = field(default_factory=list)  # "kind +/-: text", for reading errors

    @property
    def owner_accuracy(self) -> float:
        return self.owners_right / self.owners_checked if self.owners_checked else 0.0


def score(meetings: Sequence[Meeting], method: Method) -> Score:
    out = Score()
    for m in meetings:
        found = method(m)
        out.sentences += len(m.sentences)
        for i, (s, label) in enumerate(zip(m.sentences, m.labels, strict=True)):
            for kind, gold, got in (
                ("questions", label.is_question, i in found.questions),
                ("decisions", label.is_decision, i in found.decisions),
                ("actions", label.is_action, i in found.actions),
            ):
                c = out.kinds[kind]
                c.tp += gold and got
                c.fp += got and not gold
                c.fn += gold and not got
                if gold != got:
                    out.misses.append(f"{m.name} {kind} {'+' if got else '-'}: {s.text}")
            if label.is_action and i in found.actions:
                owner = found.actions[i]
                said = m.people.get(owner) if owner is not None else None
                out.owners_checked += 1
                out.owners_right += said == label.owner
                if said != label.owner:
                    out.misses.append(f"{m.name} owner {said} != {label.owner}: {s.text}")
    return out


def classifier(embedder: Embedder, model: items.Model | None = None) -> Method:
    """The shipped classifier (or `model`) with owner resolution, as offline.extract runs it."""

    def run(m: Meeting) -> Found:
        vectors = embedder.embed([s.text for s in m.sentences])
        found = items.detect(m.sentences, vectors, m.people, model)
        return Found(set(found.questions), set(found.decisions), dict(found.actions))

    return run


def baseline(m: Meeting) -> Found:
    """The cue phrases that came before the classifier, one sentence at a time."""
    found = Found()
    for i, s in enumerate(m.sentences):
        if cues.is_question(s.text):
            found.questions.add(i)
        if cues.is_decision(s.text):
            found.decisions.add(i)
        if (item := cues.action_item(s, m.people)) is not None:
            found.actions[i] = item.owner_id
    return found
