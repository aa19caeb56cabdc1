"""The optional LLM backend: any OpenAI-compatible chat-completions server.

The transcript goes out as "[mm:ss] Name: text" lines; the reply must be JSON matching SCHEMA
(asked for with `response_format: json_schema`, which llama.cpp's server, vLLM, Ollama and hosted
APIs understand). The reply is validated strictly: a timeout, an HTTP error, text that is not
JSON, JSON of the wrong shape, or times outside the conversation raise LlmError, and the caller
keeps the offline results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from junto.config import Settings
from junto.knowledge.model import ActionItem, BackendError, Chapter, Knowledge, Moment, Topic
from junto.knowledge.sentences import Sentence

MAX_PROMPT_CHARS = 48_000  # about 12k tokens: fits the context of common local models
MAX_REPLY_BYTES = 256_000
PASSAGE_LINES = 6  # lines kept together when a long transcript must be shortened
GAP = "[...]"  # where a shortened transcript leaves lines out


class LlmError(BackendError):
    """The LLM's answer cannot be used (the message says why, without secrets)."""


class _Item(BaseModel):
    text: str
    time: str  # "mm:ss" or "h:mm:ss", as in the transcript it was given


class _Action(_Item):
    owner: str | None = None


class _Chapter(BaseModel):
    title: str
    time: str
    summary: str = ""


class _Reply(BaseModel):
    abstract: str
    chapters: list[_Chapter]
    key_points: list[_Item]
    questions: list[_Item]
    decisions: list[_Item]
    action_items: list[_Action]
    topics: list[str]


def _strict(node: Any) -> Any:
    """The schema as OpenAI's strict structured outputs accept it (llama.cpp, vLLM and Ollama
    accept it too): every object lists all its properties as required and allows no others,
    and no keyword carries a default (strict mode rejects the request otherwise). An optional
    field stays optional where the reply is validated."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if k != "default"}
    if out.get("type") == "object" and "properties" in out:
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    return out


SCHEMA: dict[str, Any] = _strict(_Reply.model_json_schema())

INSTRUCTIONS = (
    "You summarize a recorded public conversation from its transcript. Each transcript line is "
    "'[time] Speaker: text'. Answer with JSON only, matching the schema: abstract (3-5 "
    "sentences, neutral, third person), chapters (title of at most 6 words and the time where "
    "each starts, in order), key_points, questions raised, decisions, action_items (with the "
    "owner's name as said in the transcript, or null), topics (2-6 short noun phrases). Every "
    "'time' must be copied from the transcript line the item comes from. A line '[...]' marks "
    "where part of a long transcript was left out. Do not invent content."
)


def clock(ms: int) -> str:
    s = max(0, ms // 1000)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"{s // 60:02d}:{s % 60:02d}"
    )


def parse_clock(text: str) -> int:
    parts = text.strip().strip("[]").split(":")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise LlmError(f"the LLM gave a time that is not mm:ss: {text[:20]!r}")
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return seconds * 1000


def prompt(sentences: Sequence[Sentence], people: Mapping[int, str]) -> str:
    lines = [
        f"[{clock(s.start_ms)}] {people.get(s.speaker_id or -1) or 'Unknown'}: {s.text}"
        for s in sentences
    ]
    if sum(len(line) + 1 for line in lines) <= MAX_PROMPT_CHARS:
        return "\n".join(lines)
    # Too long for the model's context. Cutting out the middle would leave an hour unsummarised
    # and unchaptered, so keep passages of a few whole lines spread evenly over the whole talk,
    # from its first lines to its last, with "[...]" where lines are left out; times stay exact.
    blocks = [lines[i : i + PASSAGE_LINES] for i in range(0, len(lines), PASSAGE_LINES)]
    size = [sum(len(line) + 1 for line in b) + len(GAP) + 1 for b in blocks]
    count = min(len(blocks), max(1, MAX_PROMPT_CHARS * len(blocks) // sum(size)))
    while True:
        # `count` passages evenly spaced from the first (the introduction) to the last.
        picks = sorted({round(k * (len(blocks) - 1) / max(1, count - 1)) for k in range(count)})
        if count == 1 or sum(size[p] for p in picks) <= MAX_PROMPT_CHARS:
            break
        count -= 1
    kept: list[str] = []
    for previous, index in zip([-1, *picks], picks, strict=False):
        if index != previous + 1:
            kept.append(GAP)
        kept.extend(blocks[index])
    return "\n".join(kept)


def endpoint(url: str) -> str:
    base = url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


async def complete(settings: Settings, transcript: str) -> _Reply:
    body = {
        "model": settings.llm_model,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": transcript},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "conversation_knowledge", "strict": True, "schema": SCHEMA},
        },
    }
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    try:
        async with httpx.AsyncClient(timeout=settings.llm_timeout_s) as client:
            answer = await client.post(endpoint(settings.llm_url), json=body, headers=headers)
    except httpx.TimeoutException:
        raise LlmError(f"the LLM did not answer within {settings.llm_timeout_s:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # The exception's type, not its text: that may hold the URL, and a URL may hold a key.
        raise LlmError(f"cannot reach the LLM at JUNTO_LLM_URL: {type(exc).__name__}") from None
    if answer.status_code != 200:
        raise LlmError(f"the LLM answered HTTP {answer.status_code}")
    if len(answer.content) > MAX_REPLY_BYTES:
        raise LlmError("the LLM's answer is too large")
    try:
        content = answer.json()["choices"][0]["message"]["content"]
        data = json.loads(_strip_fences(str(content)))
        return _Reply.model_validate(data)
    # ValidationError first: it is a ValueError too.
    except ValidationError as exc:
        raise LlmError(
            f"the LLM's JSON does not match the schema ({exc.error_count()} errors)"
        ) from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise LlmError("the LLM's answer is not the JSON it was asked for") from None


def _strip_fences(text: str) -> str:
    # Some servers ignore response_format and wrap JSON in a Markdown code fence.
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


async def extract(
    settings: Settings,
    sentences: Sequence[Sentence],
    people: Mapping[int, str],
    offline: Knowledge,
) -> Knowledge:
    """The offline knowledge with the LLM's abstract and items over it; raises LlmError."""
    reply = await complete(settings, prompt(sentences, people))
    end_ms = sentences[-1].end_ms if sentences else 0

    def at(time: str) -> Sentence:
        ms = parse_clock(time)
        if ms > end_ms + 1000:
            raise LlmError(f"the LLM cited {time}, after the conversation's end")
        # The sentence said at that time (the transcript lines carry their start times).
        return min(sentences, key=lambda s: abs(s.start_ms - ms))

    def moment(item: _Item) -> Moment:
        s = at(item.time)
        return Moment(
            text=item.text.strip()[:1000],
            start_ms=s.start_ms,
            end_ms=s.end_ms,
            speaker_id=s.speaker_id,
        )

    by_name = {name.lower(): uid for uid, name in people.items() if name}
    first_names = [name.split()[0].lower() for name in people.values() if name.strip()]
    # A first name two participants share names neither of them.
    by_first = {
        name.split()[0].lower(): uid
        for uid, name in people.items()
        if name.strip() and first_names.count(name.split()[0].lower()) == 1
    }

    def action(item: _Action) -> ActionItem:
        base = moment(item)
        owner = (item.owner or "").strip()
        owner_id = by_name.get(owner.lower()) or by_first.get(
            owner.lower().split()[0] if owner else ""
        )
        return ActionItem(
            **base.model_dump(),
            owner_id=owner_id,
            owner=people.get(owner_id or -1) or owner or None,
        )

    chapters: list[Chapter] = []
    # Two chapters cited at the same sentence would make an empty chapter: the first stays.
    by_start: dict[int, _Chapter] = {}
    for c in reply.chapters:
        by_start.setdefault(at(c.time).start_ms, c)
    starts = sorted(by_start.items(), key=lambda x: x[0])
    for i, (start, c) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else end_ms
        chapters.append(
            Chapter(
                title=c.title.strip()[:120],
                # The first chapter covers the opening words too, wherever the LLM put it.
                start_ms=sentences[0].start_ms if i == 0 else start,
                end_ms=end,
                summary=c.summary.strip()[:500],
            )
        )
    abstract = reply.abstract.strip()
    if not abstract:
        raise LlmError("the LLM's abstract is empty")
    return offline.model_copy(
        update={
            "backend": "llm",
            "model": settings.llm_model,
            "computed_at": datetime.now(UTC),
            "abstract": abstract[:4000],
            "chapters": chapters or offline.chapters,
            "key_points": [moment(i) for i in reply.key_points] or offline.key_points,
            "questions": [moment(i) for i in reply.questions],
            "decisions": [moment(i) for i in reply.decisions],
            "action_items": [action(i) for i in reply.action_items],
            "topics": _topics(reply.topics) or offline.topics,
        }
    )


def _topics(labels: list[str]) -> list[Topic]:
    """The LLM lists topics most important first; the score keeps that order (1 down to 0.5)."""
    kept = list(dict.fromkeys(t.strip()[:80] for t in labels if t.strip()))[:8]
    return [Topic(label=t, score=round(1 - 0.5 * i / len(kept), 3)) for i, t in enumerate(kept)]
