"""How bench/pipeline.py puts the speakers' WAVs on the node's clock and scores what came out
(see the method in pipeline.py's docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jiwer
import numpy as np
from conversation_support import Line, Track
from speech_support import features

from pipeline_script import FIRST_NAMES, Item
from speech_scoring import normalize

RATE = 48_000
HOP = RATE // 50  # 20 ms
MAX_LAG_S = 30.0  # the microphone opens at most this long before the first packet is recorded
SPEECH_FLOOR = 0.01  # -40 dBFS: where a turn's speech ends
TIME_SLACK_MS = 1500  # a found item's time may miss its turn by this much
SEARCH_SLACK_MS = 1000


# ---- the WAV's clock on the node's ---------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """The recording's t = 0 (`started`, wall clock) is `lag_s` into the source WAV."""

    started: float
    lag_s: float
    r: float  # the correlation there (near 1: the recording is that WAV)

    def wall(self, t: float) -> float:
        """Wall clock at which the node heard the WAV's second `t`."""
        return self.started + t - self.lag_s


def envelope(samples: np.ndarray) -> list[float]:
    n = len(samples) // HOP
    frames = samples[: n * HOP].reshape(n, HOP).astype(np.float64)
    return [float(v) for v in np.sqrt((frames**2).mean(axis=1))]


def find_anchor(source: np.ndarray, recorded: np.ndarray, started: float) -> Anchor:
    """Where in `source` the recording starts: the best Pearson correlation of their loudness
    contours over every start in the first MAX_LAG_S seconds (20 ms steps)."""
    rec = np.array(features(envelope(recorded)))
    src_env = envelope(source)
    src = np.array(features(src_env + [0.0] * len(rec)))
    n = len(rec)
    best = (-2.0, 0)
    recz = (rec - rec.mean()) / (rec.std() or 1.0)
    for lag in range(0, min(int(MAX_LAG_S * 50), len(src) - n) + 1):
        window = src[lag : lag + n]
        sd = window.std()
        if sd == 0:
            continue
        r = float(((window - window.mean()) / sd * recz).mean())
        if r > best[0]:
            best = (r, lag)
    return Anchor(started, best[1] * HOP / RATE, best[0])


def speech_ends(samples: np.ndarray, lines: Sequence[Line]) -> list[float]:
    """Where each line's speech ends in the WAV: its last sample above -40 dBFS."""
    ends = []
    for line in lines:
        a, b = int(line.start * RATE), int(line.end * RATE)
        loud = np.flatnonzero(np.abs(samples[a:b]) > SPEECH_FLOOR)
        ends.append(line.start + (loud[-1] + 1) / RATE if len(loud) else line.end)
    return ends


def turn_spans(
    turns: Sequence[tuple[str, str]],
    tracks: dict[str, Track],
    anchors: dict[str, Anchor],
    conv_started: float,
) -> dict[int, tuple[int, int]]:
    """Each turn's (start_ms, end_ms) on the conversation's timeline."""
    seen: dict[str, int] = {}
    spans = {}
    for index, (speaker, _) in enumerate(turns):
        k = seen.get(speaker, 0)
        seen[speaker] = k + 1
        if speaker not in anchors:
            continue
        line = tracks[speaker].lines[k]
        anchor = anchors[speaker]
        spans[index] = (
            round((anchor.wall(line.start) - conv_started) * 1000),
            round((anchor.wall(line.end) - conv_started) * 1000),
        )
    return spans


# ---- captions ------------------------------------------------------------------------------------


def shown_captions(
    captions: list[tuple[float, dict[str, Any]]],
) -> list[tuple[float, dict[str, Any]]]:
    """The captions a listener ends up reading: a revision (`replaces`, docs/protocol.md) takes
    the place of the captions of the same speaker within its start..end."""
    revisions = [(i, c) for i, (_, c) in enumerate(captions) if c.get("replaces")]

    def replaced(i: int, c: dict[str, Any]) -> bool:
        return any(
            j > i
            and r["user"]["id"] == c["user"]["id"]
            and r["start_ms"] <= c["start_ms"]
            and c["end_ms"] <= r["end_ms"]
            for j, r in revisions
        )

    return [(at, c) for i, (at, c) in enumerate(captions) if not replaced(i, c)]


# ---- names ---------------------------------------------------------------------------------------


def names_right(scripts: dict[str, str], heard: dict[str, str]) -> float | None:
    """Share of the first names in the scripts that the transcript has at the same place."""
    right = total = 0
    for name, script in scripts.items():
        ref = normalize(script)
        hyp = normalize(heard.get(name, "")) or "<nothing>"
        out = jiwer.process_words(ref, hyp)
        words = ref.split()
        equal: set[int] = set()
        for chunk in out.alignments[0]:
            if chunk.type == "equal":
                equal.update(range(chunk.ref_start_idx, chunk.ref_end_idx))
        for i, word in enumerate(words):
            if word in FIRST_NAMES:
                total += 1
                right += i in equal
    return round(right / total, 3) if total else None


# ---- knowledge -----------------------------------------------------------------------------------

STOP = frozenset(
    "a an and are as at be by can could do for from i if in is it its me my new not now of on "
    "or our so that the then this to too up us we what which who will with would you your "
    "yes sure good".split()
)


def content(text: str) -> set[str]:
    return {w for w in normalize(text).split() if w not in STOP}


@dataclass
class KindScore:
    found: int = 0
    labelled: int = 0
    found_right: int = 0  # found items that match a label
    labels_found: int = 0  # labels matched by some found item

    @property
    def precision(self) -> float | None:
        return self.found_right / self.found if self.found else None

    @property
    def recall(self) -> float | None:
        return self.labels_found / self.labelled if self.labelled else None

    @property
    def f1(self) -> float:
        p, r = self.precision or 0.0, self.recall or 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": None if self.precision is None else round(self.precision, 3),
            "recall": None if self.recall is None else round(self.recall, 3),
            "f1": round(self.f1, 3),
            "found": self.found,
            "labelled": self.labelled,
        }


def matches(found: dict[str, Any], item: Item, spans: dict[int, tuple[int, int]]) -> bool:
    words = content(found.get("text", ""))
    for turn, sentence in item.said:
        if turn not in spans:
            continue
        start, end = spans[turn]
        if found["start_ms"] > end + TIME_SLACK_MS or found["end_ms"] < start - TIME_SLACK_MS:
            continue
        wanted = content(sentence)
        if wanted and len(wanted & words) / len(wanted) >= 0.5:
            return True
    return False


def knowledge_scores(
    knowledge: dict[str, Any] | None,
    items: list[Item],
    spans: dict[int, tuple[int, int]],
    ids: dict[str, int],
) -> dict[str, Any]:
    kinds = {kind: KindScore() for kind in ("questions", "decisions", "action_items")}
    owners_right = owners = 0
    for kind, score in kinds.items():
        labels = [i for i in items if i.kind == kind]
        found = list((knowledge or {}).get(kind, []))
        score.labelled, score.found = len(labels), len(found)
        score.found_right = sum(any(matches(f, i, spans) for i in labels) for f in found)
        for item in labels:
            hits = [f for f in found if matches(f, item, spans)]
            score.labels_found += bool(hits)
            if kind == "action_items" and hits and item.owner:
                owners += 1
                owners_right += any(owner_is(f, item.owner, ids) for f in hits)
    f1s = [s.f1 for s in kinds.values() if s.labelled]
    return {
        "kinds": kinds,
        "f1": round(sum(f1s) / len(f1s), 3) if f1s else None,
        "owner_accuracy": round(owners_right / owners, 3) if owners else None,
    }


def owner_is(found: dict[str, Any], owner: str, ids: dict[str, int]) -> bool:
    if found.get("owner_id") == ids.get(owner):
        return True
    return bool(normalize(str(found.get("owner") or "")).startswith(owner))


# ---- search --------------------------------------------------------------------------------------


def search_hit(results: list[dict[str, Any]], spans: list[tuple[int, int]]) -> bool:
    """Whether one of the top 3 passages overlaps one of the wanted turns."""
    return any(
        r["start_ms"] <= end + SEARCH_SLACK_MS and r["end_ms"] >= start - SEARCH_SLACK_MS
        for r in results[:3]
        for start, end in spans
    )
