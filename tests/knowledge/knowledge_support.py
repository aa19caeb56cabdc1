"""A realistic two-topic conversation as transcript rows, for knowledge, search and page tests.

Ana hosts, Ben speaks: first about rivers and cities, then about paying for a library. It has a
question, a decision and action items with owners, and lasts about four minutes, so it has
chapters. Words are 0.4 s apart; each line starts after a pause (a new transcript segment).
"""

from __future__ import annotations

from typing import Any

from transcripts_support import World, words_at

from helpers import Person
from junto.config import Settings
from junto.enums import Role
from junto.jobs.context import JobContext
from junto.storage.tables import Conversation

RIVERS = [
    ("ana", "Welcome to the stage. Today we talk about rivers and the cities built beside them."),
    ("ben", "Thank you for having me. I grew up on a river, so this topic is personal."),
    ("ana", "Rivers brought trade, and trade brought people. Bridges came later, much later."),
    ("ben", "Every old harbour city grew where boats could unload grain, timber and wool."),
    ("ana", "Then the railways came and the waterfront became a place of warehouses."),
    ("ben", "Now we have gardens beside the river, and people swim again in summer."),
    ("ana", "The water is clean again because the factories upstream were closed."),
    ("ben", "Fish came back within ten years, which surprised every biologist."),
]
LIBRARY = [
    ("ana", "Let us talk about money. How will the city pay for the new library?"),
    ("ben", "The budget for books and buildings is tight this year."),
    ("ana", "Loans from the bank would cost the council too much interest."),
    ("ben", "We decided to ask the state for a grant. I will write the letter next week."),
    ("ana", "Ben, can you send the budget spreadsheet to the council before Friday?"),
    ("ben", "Yes. The library will open in the spring, with free books for every child."),
    ("ana", "Reading programs for children are what the council likes to fund."),
    ("ben", "We need to find volunteers for the reading hours on Saturday mornings."),
]
TALK = RIVERS + LIBRARY
GAP_S = 3.0


def said_at() -> list[tuple[str, float, str]]:
    """(speaker, seconds after going live, line) for every line of TALK."""
    out = []
    t = 0.0
    for speaker, line in TALK:
        out.append((speaker, t, line))
        t += len(line.split()) * 0.4 + GAP_S
    return out


async def talk(world: World, host: Person, guest: Person, **fields: Any) -> Conversation:
    """An ended conversation of `host` (Ana) and `guest` (Ben) with TALK built as its
    transcript (the transcript.build job ran)."""
    conv = await world.ended_conversation(host, **fields)
    await world.add_participant(conv, guest, Role.SPEAKER)
    words: dict[str, list[list[Any]]] = {"ana": [], "ben": []}
    for speaker, at, line in said_at():
        words[speaker] += words_at(at, line)
    await world.add_piece(conv, host, 0.0, words["ana"])
    await world.add_piece(conv, guest, 0.0, words["ben"])
    assert await world.run_jobs("transcript.build") == 1
    return conv


def job_context(world: World, conversation_id: int, settings: Settings | None = None) -> JobContext:
    """A `knowledge.extract` job's context, to run the handler directly (as a worker would)."""
    return JobContext(
        job_id=0,
        kind="knowledge.extract",
        payload={"conversation_id": conversation_id},
        conversation_id=conversation_id,
        attempt=1,
        settings=settings or world.settings,
        db=world.node.db,
        worker="test",
    )
