"""Knowledge backends: one interface, run in order, each refining what the one before found.

A backend gets the transcript's sentences, the participants' names and the knowledge found so
far (None for the first) and returns the conversation's knowledge. `Offline` always runs first:
it needs no network and its result stands whatever happens later. `Llm` runs when JUNTO_LLM_URL
is set and writes an abstract and structured items over it. A backend that cannot deliver
raises BackendError with a reason fit to store and show (never a secret); the knowledge found so
far is kept, with that reason beside it.

To add a backend (a different model, a hosted service, a rules file): write a class with `name`
and `extract` and list it in `configured()`; `junto.knowledge.jobs` needs no change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Protocol

from junto.config import Settings
from junto.knowledge import llm, offline
from junto.knowledge.embeddings import get_embedder
from junto.knowledge.model import BackendError, Knowledge
from junto.knowledge.sentences import Sentence

__all__ = ["Backend", "BackendError", "Llm", "Offline", "configured"]


class Backend(Protocol):
    name: str

    async def extract(
        self, sentences: Sequence[Sentence], people: Mapping[int, str], found: Knowledge | None
    ) -> Knowledge: ...


class Offline:
    """Extractive summary, chapters, topics, and items by the classifier on the node's CPU."""

    name = "offline"

    async def extract(
        self, sentences: Sequence[Sentence], people: Mapping[int, str], found: Knowledge | None
    ) -> Knowledge:
        # Embedding a transcript is seconds of CPU: off the event loop.
        return await asyncio.to_thread(offline.extract, sentences, get_embedder(), people)


class Llm:
    """Any OpenAI-compatible server (junto.knowledge.llm), over the offline result."""

    name = "llm"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def extract(
        self, sentences: Sequence[Sentence], people: Mapping[int, str], found: Knowledge | None
    ) -> Knowledge:
        base = found if found is not None else await Offline().extract(sentences, people, None)
        if not sentences:
            return base  # nothing to ask about
        return await llm.extract(self.settings, sentences, people, base)


def configured(settings: Settings) -> list[Backend]:
    """The backends this node runs, in order."""
    chosen: list[Backend] = [Offline()]
    if settings.llm_url:
        chosen.append(Llm(settings))
    return chosen
