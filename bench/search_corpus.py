"""Synthetic spoken English for the search benchmark: topics, vocabularies, sentence templates.

Every topic has its own nouns, verbs and adjectives; sentences are drawn from ~40 templates
(statements, questions, opinions, numbers, names), so passages read like varied talk and the
keyword index sees a long-tailed vocabulary rather than a handful of repeated words.
"""

from __future__ import annotations

import random

TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "rivers": (
        "river bridge harbour boat canal flood bank water fish dock ferry delta".split(),
        "flow flood cross sail drain dredge".split(),
        "muddy deep tidal clean wide".split(),
    ),
    "libraries": (
        "library book shelf reader librarian archive catalogue loan card novel".split(),
        "borrow read lend catalogue shelve".split(),
        "quiet public rare overdue".split(),
    ),
    "budgets": (
        "budget tax grant loan council spreadsheet invoice deficit fund audit".split(),
        "spend cut fund borrow audit balance".split(),
        "tight annual public fiscal".split(),
    ),
    "gardening": (
        "garden tomato compost seed soil greenhouse hedge orchard bulb weed".split(),
        "plant prune water harvest sow weed".split(),
        "green fertile shady organic".split(),
    ),
    "astronomy": (
        "telescope galaxy comet planet orbit nebula eclipse star moon asteroid".split(),
        "observe orbit rotate measure detect".split(),
        "distant bright faint lunar".split(),
    ),
    "cooking": (
        "recipe oven sauce onion garlic pastry broth spice knife skillet".split(),
        "bake simmer chop roast season whisk".split(),
        "crispy savoury spicy tender".split(),
    ),
    "football": (
        "goal striker referee pitch league coach penalty keeper derby stadium".split(),
        "score tackle defend pass train".split(),
        "offside brilliant rough home".split(),
    ),
    "medicine": (
        "patient vaccine nurse clinic surgeon diagnosis dose symptom ward therapy".split(),
        "treat diagnose prescribe heal vaccinate".split(),
        "chronic acute mild clinical".split(),
    ),
    "software": (
        "server database compiler bug release deploy cache thread query kernel".split(),
        "compile deploy debug refactor cache".split(),
        "slow stable buggy concurrent".split(),
    ),
    "music": (
        "guitar melody chorus drummer album concert violin rhythm lyric choir".split(),
        "play sing record compose tour".split(),
        "loud acoustic catchy classical".split(),
    ),
    "housing": (
        "rent landlord tenant mortgage apartment neighbourhood lease eviction".split(),
        "rent renovate evict build insulate".split(),
        "affordable cramped vacant damp".split(),
    ),
    "climate": (
        "carbon emission drought heatwave glacier forest solar wind turbine".split(),
        "warm melt emit reduce capture".split(),
        "renewable extreme arid coastal".split(),
    ),
    "education": (
        "school teacher pupil exam homework classroom curriculum tutor lesson".split(),
        "teach learn grade revise tutor".split(),
        "primary strict bright bored".split(),
    ),
    "railways": (
        "train station platform timetable carriage signal track freight ticket".split(),
        "commute delay board depart shunt".split(),
        "late crowded electric rural".split(),
    ),
    "farming": (
        "tractor harvest wheat barley cattle sheep barn irrigation pasture dairy".split(),
        "plough graze irrigate milk harvest".split(),
        "rural fertile muddy seasonal".split(),
    ),
    "painting": (
        "canvas brush portrait landscape gallery pigment easel fresco sketch".split(),
        "paint sketch frame exhibit restore".split(),
        "vivid abstract muted oily".split(),
    ),
    "sailing": (
        "yacht mast keel anchor harbour regatta sail crew knot compass".split(),
        "sail anchor tack moor navigate".split(),
        "windy choppy calm salty".split(),
    ),
    "elections": (
        "vote ballot candidate campaign poll mayor debate turnout party seat".split(),
        "vote campaign elect canvass debate".split(),
        "marginal local national close".split(),
    ),
    "cycling": (
        "bicycle helmet lane pedal saddle commute puncture tyre route".split(),
        "ride pedal commute repair climb".split(),
        "steep safe busy muddy".split(),
    ),
    "history": (
        "empire castle treaty war monastery manuscript revolution king siege".split(),
        "conquer rule sign besiege document".split(),
        "ancient medieval royal bloody".split(),
    ),
}
NAMES = "Ana Ben Cara Dev Eli Fatima Gus Hana Ivo Jun Kemal Lena Maya Nico Omar Priya".split()
TEMPLATES = [
    "The {a} {n} near the {n2} needs a lot of attention this year.",
    "I think the {n} will {v} more than the {n2} ever did.",
    "Why would anyone {v} the {n} before the {n2} is ready?",
    "{name} told me the {n} was {a} again last {day}.",
    "We spent {num} weeks trying to {v} the old {n}.",
    "Honestly, the {n2} matters less than people think.",
    "Every {n} in town used to {v} on {day} mornings.",
    "My grandmother kept a {a} {n} behind the {n2}.",
    "If we {v} the {n} now, the {n2} will follow.",
    "There were {num} people waiting for the {n} yesterday.",
    "Nobody expected the {n2} to become so {a}.",
    "Could the {n} and the {n2} share the same {n3}?",
    "{name} and I argued about the {n} for an hour.",
    "The council wants to {v} every {n} by {year}.",
    "People forget how {a} the {n} was in {year}.",
    "That is exactly why the {n2} had to {v}.",
    "We should ask {name} whether the {n} can {v}.",
    "In {year} the {n} was {a} and nobody cared.",
    "A {a} {n2} is better than no {n2} at all.",
    "Let me tell you what happened to the {n} last {day}.",
    "Half the {n} went missing after the {n2} closed.",
    "You cannot {v} a {n} without a proper {n2}.",
    "The report says {num} percent of the {n} is {a}.",
    "So what do we do about the {n2} now?",
    "I will {v} the {n} myself if I have to.",
    "The {n3} is what everyone remembers about the {n}.",
    "{name} says the {a} {n} reminds her of the {n2}.",
    "They decided to {v} the {n} before winter.",
    "It took {num} years to {v} that {n}.",
    "Do you remember the {a} {n2} by the {n}?",
]
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


def sentence(rng: random.Random, topic: str) -> str:
    nouns, verbs, adjectives = TOPICS[topic]
    n, n2, n3 = rng.sample(nouns, 3)
    return rng.choice(TEMPLATES).format(
        n=n, n2=n2, n3=n3, v=rng.choice(verbs), a=rng.choice(adjectives), name=rng.choice(NAMES),
        day=rng.choice(DAYS), num=rng.randint(2, 90), year=rng.randint(1890, 2025),
    )  # fmt: skip


def pool(size: int, seed: int = 5) -> tuple[list[str], list[str]]:
    """`size` distinct sentences and the topic of each, spread evenly over the topics."""
    rng = random.Random(seed)
    texts: list[str] = []
    topics: list[str] = []
    seen: set[str] = set()
    names = list(TOPICS)
    while len(texts) < size:
        topic = names[len(texts) % len(names)]
        text = sentence(rng, topic)
        if text not in seen:
            seen.add(text)
            texts.append(text)
            topics.append(topic)
    return texts, topics


# Queries people type: words from the talk, and paraphrases that share no content word with it.
KEYWORD_QUERIES = [
    "harbour ferry",
    "overdue library book",
    "council grant budget",
    "compost greenhouse",
    "comet eclipse telescope",
    "garlic broth recipe",
    "penalty referee",
    "vaccine clinic nurse",
    "database server bug",
    "violin concert",
    "landlord eviction",
    "glacier drought",
    "homework exam",
    "platform timetable delay",
    "barley harvest tractor",
    "portrait gallery",
    "yacht regatta",
    "ballot turnout",
    "bicycle puncture",
    "castle siege",
    "Priya",
    "1987",
]
PARAPHRASE_QUERIES = [
    "boats carrying people across the water",
    "lending novels to the public",
    "money from the government for the town",
    "growing vegetables under glass",
    "looking at the night sky through a lens",
    "making soup in the kitchen",
    "the match official gave a spot kick",
    "giving injections to people who are ill",
    "software that crashes because of a defect",
    "an orchestra performing on stage",
    "kicked out of the flat by the owner",
    "ice melting as the world gets hotter",
    "children studying for their tests",
    "the locomotive did not leave on time",
    "gathering grain with farm machines",
    "a picture of someone's face in a museum",
    "a race of sailing boats",
    "how many citizens took part in the vote",
    "a flat tyre on the way to work",
    "soldiers surrounding a fortress",
]
