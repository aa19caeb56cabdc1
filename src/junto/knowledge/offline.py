"""Knowledge from a transcript on the node's CPU: no network, deterministic.

- Summary: the sentences closest to the whole conversation's meaning (cosine to the centroid
  of all sentence embeddings), picked with maximal marginal relevance (MMR) so that they do not
  repeat each other, shown in time order.
- Chapters: TextTiling over embeddings: the similarity of the sentences before and after each
  gap; a deep valley is a change of topic. Each chapter is titled by its best keyphrase.
- Topics: YAKE's statistical keyphrases, re-ranked by how close each is to the conversation's
  meaning (embeddings), again with MMR for variety.
- Questions, decisions and action items: a classifier per kind over each sentence and its
  neighbours (junto.knowledge.items, trained on labelled meetings); an action item's owner from
  the names, addressees and pronouns (junto.knowledge.owners). The cue phrases used before are
  in junto.knowledge.cues, as the benchmark's baseline.
- The summary prefers what was decided and promised, and leaves out fragments (a handful of
  words, mostly fillers) that are often misheard.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np

from junto.knowledge import items
from junto.knowledge.embeddings import Embedder
from junto.knowledge.model import ActionItem, Chapter, Knowledge, Moment, Topic
from junto.knowledge.sentences import Sentence, word_count

MODEL = "all-MiniLM-L6-v2 (int8) + YAKE + item classifier"
# What a reader of the knowledge is told when the classifier's weights could not be read.
MODEL_CUES = "all-MiniLM-L6-v2 (int8) + YAKE + cue phrases (item classifier unavailable)"
MMR_LAMBDA = 0.7  # relevance against novelty when picking summary sentences and topics
CHAPTER_MIN_MS = 45_000
CHAPTER_MIN_SENTENCES = 3
TILING_WINDOW = 3
MIN_DEPTH = 0.3  # of a valley in the smoothed similarity curve, to open a chapter
TOPIC_MIN_SCORE = 0.65  # relative to the best topic
ITEM_BONUS = 0.25  # added to a decision's or an action's relevance for the summary
SUMMARY_MIN_WORDS = 5  # content words (not fillers) a summary sentence needs
FILLER = re.compile(
    r"^(?:um+|uh+|er+|hmm+|so|and|but|okay|ok|oh|well|yeah|yes|no|right|like|you|know|i|mean|"
    r"just|actually|basically|alright|sort|of|kind)$",
    re.I,
)


def extract(
    sentences: Sequence[Sentence], embedder: Embedder, people: Mapping[int, str]
) -> Knowledge:
    """Everything the offline backend learns; `people` maps participant ids to names."""
    now = datetime.now(UTC)
    if not sentences:
        return Knowledge(backend="offline", model=MODEL, computed_at=now)
    vectors = embedder.embed([s.text for s in sentences])
    centroid = _unit(vectors.mean(axis=0))
    centrality = vectors @ centroid
    found = items.detect(sentences, vectors, people)
    summary_idx = _summary(sentences, vectors, centrality, found)
    chapters, phrases = _chapters(sentences, vectors, embedder)
    return Knowledge(
        backend="offline",
        model=MODEL if found.by == "classifier" else MODEL_CUES,
        computed_at=now,
        summary=[_moment(sentences[i]) for i in sorted(summary_idx)],
        chapters=chapters,
        key_points=_key_points(sentences, centrality, set(summary_idx)),
        questions=[_moment(sentences[i]) for i in found.questions],
        decisions=[_moment(sentences[i]) for i in found.decisions],
        action_items=[_action(sentences[i], owner, people) for i, owner in found.actions],
        topics=_topics(phrases),
    )


def _action(s: Sentence, owner_id: int | None, people: Mapping[int, str]) -> ActionItem:
    return ActionItem(
        **_moment(s).model_dump(),
        owner_id=owner_id,
        owner=people.get(owner_id) if owner_id is not None else None,
    )


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _moment(s: Sentence) -> Moment:
    return Moment(text=s.text, start_ms=s.start_ms, end_ms=s.end_ms, speaker_id=s.speaker_id)


def _mmr(candidates: list[int], relevance: np.ndarray, vectors: np.ndarray, k: int) -> list[int]:
    chosen: list[int] = []
    pool = list(candidates)
    while pool and len(chosen) < k:

        def score(i: int) -> float:
            novelty = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
            return MMR_LAMBDA * float(relevance[i]) - (1 - MMR_LAMBDA) * novelty

        best = max(pool, key=score)
        chosen.append(best)
        pool.remove(best)
    return chosen


def content_words(text: str) -> int:
    """Words that are not fillers ("um", "you know", "okay so"): what a fragment lacks."""
    return sum(1 for w in re.findall(r"[\w']+", text) if not FILLER.match(w))


def _summary(
    sentences: Sequence[Sentence],
    vectors: np.ndarray,
    centrality: np.ndarray,
    found: items.Found,
) -> list[int]:
    # About one sentence in twelve, 3 to 7; very short ones ("Thank you.") say little alone,
    # and a fragment of fillers around a word or two is most often a mishearing: never a line.
    k = max(3, min(7, round(len(sentences) / 12)))
    candidates = [i for i, s in enumerate(sentences) if content_words(s.text) >= SUMMARY_MIN_WORDS]
    if len(candidates) < k:
        candidates = [i for i, s in enumerate(sentences) if content_words(s.text) >= 3]
    # A sentence of a handful of words is rarely a summary's best line, however central.
    fullness = np.array([min(1.0, 0.5 + word_count(s.text) / 20) for s in sentences])
    # What was decided and promised is what a reader of a summary looks for first.
    weight = np.zeros(len(sentences))
    weight[found.decisions] = ITEM_BONUS
    weight[[i for i, _ in found.actions]] = ITEM_BONUS
    return _mmr(candidates, centrality * fullness + weight, vectors, k)


def _key_points(
    sentences: Sequence[Sentence], centrality: np.ndarray, taken: set[int]
) -> list[Moment]:
    ranked = sorted(range(len(sentences)), key=lambda i: -float(centrality[i]))
    picks = [i for i in ranked if i not in taken and word_count(sentences[i].text) >= 6][:5]
    return [_moment(sentences[i]) for i in sorted(picks)]


# ---- topics and chapters ------------------------------------------------------------------------


def keyphrases(text: str, top: int = 30) -> list[tuple[str, float]]:
    """YAKE's candidates (one or two words), best first, with a rank score in 0..1 (1 = best)."""
    import yake  # type: ignore[import-untyped]

    found = yake.KeywordExtractor(lan="en", n=2, dedupLim=0.7, top=top).extract_keywords(text)
    if not found:
        return []
    # YAKE's score is "lower is better" and unbounded: use the rank instead.
    return [(str(kw), 1.0 - i / len(found)) for i, (kw, _score) in enumerate(found)]


def ranked_phrases(text: str, embedder: Embedder, centre: np.ndarray) -> list[tuple[str, float]]:
    """Keyphrases of `text` by how well they name it: closeness to its meaning (embeddings),
    how often it comes back (a topic is returned to; a passing word is not) and YAKE's rank.
    Plural and singular forms count as one phrase."""
    candidates = [(kw, r) for kw, r in keyphrases(text) if len(kw) > 2 and not kw.isdigit()]
    if not candidates:
        return []
    lowered = text.lower()
    counts = [
        len(re.findall(rf"\b{re.escape(kw.lower().rstrip('s'))}s?\b", lowered))
        for kw, _ in candidates
    ]
    most = max(counts) or 1
    vectors = embedder.embed([kw for kw, _ in candidates])
    scored: dict[str, tuple[str, float]] = {}
    for (kw, rank), count, sim in zip(candidates, counts, vectors @ centre, strict=True):
        score = 0.4 * float(sim) + 0.4 * count / most + 0.2 * rank
        key = " ".join(w.rstrip("s") for w in kw.lower().split())
        if key not in scored or scored[key][1] < score:
            scored[key] = (_natural_case(kw, text), score)
    return sorted(scored.values(), key=lambda x: -x[1])


def _topics(chapter_phrases: list[list[tuple[str, float]]], k: int = 6) -> list[Topic]:
    """The best phrases of each chapter in turn, so every part of the talk is named."""
    picked: dict[str, float] = {}
    depth = 0
    while len(picked) < k and any(depth < len(p) for p in chapter_phrases):
        for phrases in chapter_phrases:
            if depth < len(phrases) and len(picked) < k:
                label, score = phrases[depth]
                if not any(_overlaps(label, other) for other in picked):
                    picked[label] = score
        depth += 1
    top = max(picked.values(), default=1.0) or 1.0
    topics = sorted(
        (
            Topic(label=label, score=round(max(0.0, min(1.0, score / top)), 3))
            for label, score in picked.items()
        ),
        key=lambda t: -t.score,
    )
    # Far below the best, a "topic" is usually a passing verb ("grew", "brought").
    return [t for i, t in enumerate(topics) if i < 3 or t.score >= TOPIC_MIN_SCORE]


def _overlaps(a: str, b: str) -> bool:
    """Two phrases that share a word ("river", "rivers brought") name one topic."""
    stem = {w.lower().rstrip("s") for w in a.split()}
    return bool(stem & {w.lower().rstrip("s") for w in b.split()})


def _natural_case(phrase: str, text: str) -> str:
    """YAKE keeps the case of a phrase's first sighting ("Rivers" opening a sentence): a word
    is lower-cased when the text also uses it in lower case, so names keep their capitals."""
    return " ".join(
        w.lower() if re.search(rf"\b{re.escape(w.lower())}\b", text) else w for w in phrase.split()
    )


def _chapters(
    sentences: Sequence[Sentence], vectors: np.ndarray, embedder: Embedder
) -> tuple[list[Chapter], list[list[tuple[str, float]]]]:
    """The chapters, and each chapter's ranked keyphrases (the topics come from them)."""
    bounds = boundaries(sentences, vectors)
    chapters: list[Chapter] = []
    phrases = []
    for a, b in zip([0, *bounds], [*bounds, len(sentences)], strict=True):
        part = sentences[a:b]
        part_vectors = vectors[a:b]
        centre = _unit(part_vectors.mean(axis=0))
        central = part[int(np.argmax(part_vectors @ centre))]
        ranked = ranked_phrases(" ".join(s.text for s in part), embedder, centre)
        phrases.append(ranked)
        # The best phrase that shares no word with an earlier title: "Bridges" then "Bridge"
        # would say nothing.
        fresh = [p for p, _ in ranked if not any(_overlaps(p, c.title) for c in chapters)]
        title = fresh[0] if fresh else central.text
        chapters.append(
            Chapter(
                title=title[:1].upper() + title[1:],
                start_ms=part[0].start_ms,
                end_ms=part[-1].end_ms,
                summary=central.text,
            )
        )
    return chapters, phrases


def boundaries(sentences: Sequence[Sentence], vectors: np.ndarray) -> list[int]:
    """Indexes of the sentences that open a new chapter (TextTiling on embeddings)."""
    n = len(sentences)
    total_ms = sentences[-1].end_ms - sentences[0].start_ms if n else 0
    if n < 2 * CHAPTER_MIN_SENTENCES or total_ms < 2 * CHAPTER_MIN_MS:
        return []
    # A wider window on a long talk: a few sentences are too noisy to say what an hour is about.
    w = max(TILING_WINDOW, min(8, n // 40))
    gaps = list(range(1, n))
    sims = np.array(
        [
            float(
                _unit(vectors[max(0, g - w) : g].mean(axis=0))
                @ _unit(vectors[g : g + w].mean(axis=0))
            )
            for g in gaps
        ]
    )
    if len(sims) >= 3:  # Hearst smooths the similarity curve before looking for valleys
        sims = np.convolve(np.pad(sims, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    depth = np.array([_depth(sims, i) for i in range(len(gaps))])
    # Hearst's cut-off: deeper than the mean plus half a standard deviation of all depths; on a
    # long talk also not much shallower than its deepest valley, or every aside is a chapter.
    # And never shallower than MIN_DEPTH: a talk on one subject has small valleys too (about
    # 0.2 measured on one; a change of subject measured 0.6 to 1.3).
    cutoff = max(float(depth.mean() + depth.std() / 2), 0.4 * float(depth.max()), MIN_DEPTH)
    # A reader wants a handful of chapters: two for a few minutes, about one per five minutes
    # of a long talk, each at least 45 s (and a thirtieth of the talk).
    max_chapters = max(1, min(int(total_ms // 90_000) + 1, 2 + int(total_ms // 300_000)))
    min_ms = max(CHAPTER_MIN_MS * 0.5, total_ms / 30)
    chosen: list[int] = []
    for i in np.argsort(-depth, kind="stable"):
        if depth[i] <= cutoff or len(chosen) + 1 >= max_chapters:
            break
        g = gaps[int(i)]
        if _fits(g, chosen, sentences, min_ms):
            chosen.append(g)
    return sorted(chosen)


def _depth(sims: np.ndarray, i: int) -> float:
    """How deep the valley at gap i is: climb to the nearest peak on each side (TextTiling)."""
    left = i
    while left > 0 and sims[left - 1] >= sims[left]:
        left -= 1
    right = i
    while right < len(sims) - 1 and sims[right + 1] >= sims[right]:
        right += 1
    return float(sims[left] - sims[i] + sims[right] - sims[i])


def _fits(g: int, chosen: list[int], sentences: Sequence[Sentence], min_ms: float) -> bool:
    edges = sorted([0, *chosen, len(sentences)])
    for a, b in itertools.pairwise(edges):
        if a < g < b:
            left, right = sentences[a:g], sentences[g:b]
            return all(
                len(part) >= CHAPTER_MIN_SENTENCES and part[-1].end_ms - part[0].start_ms >= min_ms
                for part in (left, right)
            )
    return False
