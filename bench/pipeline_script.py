"""The conversation `bench/pipeline.py` plays: a planning call of four people, with its labels.

Written like a real call (people answer each other, ask by name, settle things in passing,
volunteer), not in the phrases any detector looks for. Turns are numbered from 0; the labels and
the search queries point at turns, and the benchmark turns a turn into seconds on the
conversation's timeline once it knows when each microphone started.

The first QUICK_TURNS turns (two speakers, about 30 s) are the `--quick` conversation; only the
labels and queries inside them count there.
"""

from __future__ import annotations

from dataclasses import dataclass

# name -> (display name, espeak-ng voice). The first is the host.
SPEAKERS: dict[str, tuple[str, str]] = {
    "priya": ("Priya Nair", "en-us"),
    "marcus": ("Marcus Webb", "en-gb"),
    "lena": ("Lena Fischer", "en+f3"),
    "tomas": ("Tomas Novak", "en-us+m3"),
}
# What the speakers call each other (normalised: lower case), counted for `names_right`.
FIRST_NAMES = ("priya", "marcus", "lena", "tomas")

TITLE = "Riverside festival planning"
TAGS = ["festival", "planning"]

# Amounts and percentages are written as Whisper writes them ("$4,500", "20%"): the scoring
# normalises both sides the same way (tests/speech_scoring.py).
TURNS: tuple[tuple[str, str], ...] = (
    (
        "priya",
        "Good morning, everyone, and thanks for joining the planning call for the riverside "
        "festival. Marcus, can you walk us through the budget?",
    ),
    (
        "marcus",
        "Sure, Priya. The city approved $4,500 for the main stage, which is 20% less than "
        "last year.",
    ),
    ("priya", "That is tighter than I hoped. Do we still have enough for a proper sound system?"),
    (
        "marcus",
        "Only if we drop the second tent. I can call the hardware store about a discount "
        "before Friday.",
    ),
    # ---- QUICK_TURNS ends here -------------------------------------------------------------
    (
        "priya",
        "Then we drop the second tent and put that money into sound. Lena, you wanted to add "
        "something?",
    ),
    ("lena", "Yes. The volunteers asked for shorter shifts this year. Three hours each, not five."),
    ("tomas", "Three hours works for the food stalls too. We have 12 stalls confirmed so far."),
    ("priya", "Good. So shifts are three hours from now on, that is settled."),
    (
        "lena",
        "Tomas, could you send me the list of stall owners by Wednesday? I need it for the "
        "volunteer schedule.",
    ),
    ("tomas", "Sure, I will get it to you on Wednesday morning."),
    (
        "marcus",
        "One more thing about the budget. Insurance went up by 15%, so it now costs $800.",
    ),
    ("priya", "Who is going to talk to the insurance broker?"),
    ("lena", "I can do that. I know the broker from the spring market."),
    ("tomas", "What happens if it rains on the Saturday?"),
    (
        "priya",
        "Good question. We move the music into the community hall. Marcus, please book the "
        "hall as a backup.",
    ),
    ("marcus", "I will book it today. The hall costs $250 for the day."),
    ("lena", "Should we also print new posters, or is the website enough?"),
    ("tomas", "Posters still bring in the older neighbours, so I would print two hundred."),
    ("priya", "Agreed, two hundred posters. Lena, can you handle the printing?"),
    ("lena", "Yes, they will be ready by the end of next week."),
    ("priya", "Great. Thanks, everyone. We meet again next Tuesday at ten."),
)
QUICK_TURNS = 4


@dataclass(frozen=True)
class Item:
    """A labelled knowledge item: its kind, the sentence(s) that carry it (turn, exact words
    from that turn) and, for action items, whose job it is."""

    kind: str  # "questions" | "decisions" | "action_items" (the Knowledge model's fields)
    said: tuple[tuple[int, str], ...]
    owner: str | None = None


ITEMS: tuple[Item, ...] = (
    Item("questions", ((0, "Marcus, can you walk us through the budget?"),)),
    Item("questions", ((2, "Do we still have enough for a proper sound system?"),)),
    Item(
        "action_items",
        ((3, "I can call the hardware store about a discount before Friday."),),
        "marcus",
    ),
    Item(
        "decisions",
        ((4, "Then we drop the second tent and put that money into sound."),),
    ),
    Item("questions", ((4, "Lena, you wanted to add something?"),)),
    Item("decisions", ((7, "So shifts are three hours from now on, that is settled."),)),
    Item(
        "action_items",
        (
            (8, "Tomas, could you send me the list of stall owners by Wednesday?"),
            (9, "Sure, I will get it to you on Wednesday morning."),
        ),
        "tomas",
    ),
    Item("questions", ((8, "Tomas, could you send me the list of stall owners by Wednesday?"),)),
    Item("questions", ((11, "Who is going to talk to the insurance broker?"),)),
    Item(
        "action_items",
        ((12, "I can do that. I know the broker from the spring market."),),
        "lena",
    ),
    Item("questions", ((13, "What happens if it rains on the Saturday?"),)),
    Item("decisions", ((14, "We move the music into the community hall."),)),
    Item(
        "action_items",
        (
            (14, "Marcus, please book the hall as a backup."),
            (15, "I will book it today."),
        ),
        "marcus",
    ),
    Item("questions", ((16, "Should we also print new posters, or is the website enough?"),)),
    Item("decisions", ((18, "Agreed, two hundred posters."),)),
    Item(
        "action_items",
        (
            (18, "Lena, can you handle the printing?"),
            (19, "Yes, they will be ready by the end of next week."),
        ),
        "lena",
    ),
    Item("decisions", ((20, "We meet again next Tuesday at ten."),)),
)

# Paraphrases, not the words said: (query, the turns whose moment should come up in the top 3).
QUERIES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("how much money did the city give for the stage", (1,)),
    ("can we afford good speakers and audio", (2, 3)),
    ("asking a shop for a cheaper price", (3,)),
    ("how long volunteers work at a time", (5, 7)),
    ("how many food vendors have signed up", (6,)),
    ("the insurance got more expensive", (10,)),
    ("plan for bad weather", (13, 14)),
    ("renting a building in case of rain", (14, 15)),
    ("advertising with printed flyers", (16, 17, 18)),
    ("when is the next meeting", (20,)),
)


def turns_for(count: int) -> tuple[tuple[str, str], ...]:
    """The first `count` turns (all of them when `count` is 0)."""
    return TURNS[:count] if count else TURNS


def items_for(count: int) -> list[Item]:
    last = len(turns_for(count))
    return [i for i in ITEMS if all(turn < last for turn, _ in i.said)]


def queries_for(count: int) -> list[tuple[str, tuple[int, ...]]]:
    last = len(turns_for(count))
    return [(q, turns) for q, turns in QUERIES if all(t < last for t in turns)]
