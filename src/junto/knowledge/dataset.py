"""The labelled meetings that the item classifier is trained and measured on.

Each file in `data/meetings/` is one meeting as a transcript would give it: a header (style,
participants, split), then one sentence a line, `speaker: text`, with the sentence's labels in
trailing brackets: `[Q]` a question, `[D]` a decision, `[A Name]` an action item owned by Name,
`[A -]` an action item nobody owns yet. The labelling rules are in data/README.md.

`split: heldout` meetings are never used to train or tune (junto.knowledge.train reads only
`train`); bench/knowledge.py scores on them.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from junto.knowledge.sentences import Sentence

LINE = re.compile(r"^(?P<speaker>[^:\s][^:]*):\s*(?P<text>.*?)\s*(?:\[(?P<labels>[^\]]*)\])?\s*$")
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Labels:
    is_question: bool = False
    is_decision: bool = False
    is_action: bool = False
    owner: str | None = None  # a participant's full name; None when the action is unassigned


@dataclass(frozen=True)
class Meeting:
    name: str
    style: str
    split: str
    participants: list[str]  # full names; participant i has the speaker id i + 1
    sentences: list[Sentence]
    labels: list[Labels]

    @property
    def people(self) -> dict[int, str]:
        return {i + 1: name for i, name in enumerate(self.participants)}


def fold(text: str) -> str:
    """Lower case without accents: "Joaquín" and "joaquin" are one name."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _participant(key: str, participants: list[str]) -> int:
    """The index of the participant a speaker key ("maya", "ingrid") names."""
    for i, full in enumerate(participants):
        if fold(key) in fold(full).replace(".", " ").split():
            return i
    raise ValueError(f"speaker {key!r} is none of {participants}")


def parse(name: str, text: str) -> Meeting:
    header: dict[str, str] = {}
    rows: list[tuple[str, str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
            continue
        m = LINE.match(line)
        if m is None:
            raise ValueError(f"{name}: cannot read {line!r}")
        rows.append((m["speaker"], m["text"], m["labels"] or ""))
    participants = [p.strip() for p in header["participants"].split(",")]
    split = header.get("split", "train")
    if split not in SPLITS:
        raise ValueError(f"{name}: split {split!r} is none of {SPLITS}")
    sentences: list[Sentence] = []
    labels: list[Labels] = []
    t = 0
    for seq, (speaker, said, tags) in enumerate(rows):
        length = 400 * max(1, len(said.split()))
        speaker_id = _participant(speaker, participants) + 1
        sentences.append(Sentence(said, t, t + length, speaker_id, seq))
        t += length + 600
        labels.append(_labels(name, tags, participants))
    return Meeting(name, header.get("style", ""), split, participants, sentences, labels)


def _labels(name: str, tags: str, participants: list[str]) -> Labels:
    words = tags.split()
    owner: str | None = None
    if "A" in words:
        after = words[words.index("A") + 1 :]
        if not after or after[0] in ("Q", "D"):
            raise ValueError(f"{name}: [A] needs an owner or '-': {tags!r}")
        if after[0] != "-":
            owner = participants[_participant(after[0], participants)]
    return Labels("Q" in words, "D" in words, "A" in words, owner)


def meetings(split: str | None = None) -> list[Meeting]:
    """The labelled meetings, in file-name order; only one split's when `split` is given."""
    folder = resources.files("junto.knowledge") / "data" / "meetings"
    found = [
        parse(Path(entry.name).stem, entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".txt")
    ]
    return [m for m in found if split is None or m.split == split]


def rows(split: str | None = None) -> list[dict[str, object]]:
    """Every labelled sentence with its neighbours and the participants, one dict each (the
    form other tools read: `python -m junto.knowledge.dataset > labelled.jsonl`)."""
    out: list[dict[str, object]] = []
    for m in meetings(split):
        names = m.people
        for i, (s, label) in enumerate(zip(m.sentences, m.labels, strict=True)):
            prev = m.sentences[i - 1] if i > 0 else None
            nxt = m.sentences[i + 1] if i + 1 < len(m.sentences) else None
            out.append(
                {
                    "meeting": m.name,
                    "style": m.style,
                    "split": m.split,
                    "participants": m.participants,
                    "speaker": names[s.speaker_id or 0],
                    "text": s.text,
                    "prev_speaker": names[prev.speaker_id or 0] if prev else None,
                    "prev_text": prev.text if prev else None,
                    "next_speaker": names[nxt.speaker_id or 0] if nxt else None,
                    "next_text": nxt.text if nxt else None,
                    **asdict(label),
                }
            )
    return out


if __name__ == "__main__":
    for row in rows(sys.argv[1] if len(sys.argv) > 1 else None):
        print(json.dumps(row, ensure_ascii=False))
