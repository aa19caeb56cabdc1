"""Scoring recognised speech against what was said: word error rate after normalisation.

Whisper writes "twenty-one" as "21" and adds punctuation and capitals that a script may not
have, so both sides are normalised the same way first (lower case, numbers as words, no
punctuation, British/American spellings of a few words folded). Tests assert WER thresholds,
never exact strings (engineering notes, "Speech and language").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import jiwer
from num2words import num2words

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NOT_WORD = re.compile(r"[^a-z' ]+")
_SPELLINGS = {"neighbour": "neighbor", "neighbours": "neighbors", "colour": "color"}


def normalize(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = _NUMBER.sub(
        lambda m: f" {num2words(float(m.group()) if '.' in m.group() else int(m.group()))} ", text
    )
    text = _NOT_WORD.sub(" ", text.replace("-", " "))
    words = [_SPELLINGS.get(w, w) for w in text.replace("'", "").split()]
    return " ".join(words)


def wer(reference: str | Iterable[str], hypothesis: str | Iterable[str]) -> float:
    """Word error rate of `hypothesis` against `reference` (each a text or a list of texts)."""
    ref = normalize(reference if isinstance(reference, str) else " ".join(reference))
    hyp = normalize(hypothesis if isinstance(hypothesis, str) else " ".join(hypothesis))
    if not ref:
        raise ValueError("expected a non-empty reference text")
    return float(jiwer.wer(ref, hyp or "<nothing>"))


def corpus_wer(pairs: Iterable[tuple[str | Iterable[str], str | Iterable[str]]]) -> float:
    """Word error rate over several (reference, hypothesis) pairs together: all errors over all
    reference words, so a short script does not weigh as much as a long one."""
    refs, hyps = [], []
    for reference, hypothesis in pairs:
        refs.append(normalize(reference if isinstance(reference, str) else " ".join(reference)))
        hyp = normalize(hypothesis if isinstance(hypothesis, str) else " ".join(hypothesis))
        hyps.append(hyp or "<nothing>")
    return float(jiwer.wer(refs, hyps))
