"""Synthetic spoken English for the search benchmark: topics, a long-tailed vocabulary, varied
sentence shapes, and the queries.

Every conversation is about two of 20 topics, each with its own nouns, verbs and adjectives, so
paraphrase queries have something to find by meaning. Around them, speakers use the rest of
English with a Zipf-like frequency: the vocabulary is the whole words of the MiniLM
tokenizer's vocabulary (real English words in roughly frequency order, used as the ranks; the
first 400, mostly function words, left out) plus a plural form of most of them, about 32,000
word forms; the word of rank r is drawn with probability proportional to 1 / r, so a few words
are everywhere and most are rare, as in speech. A sentence's everyday words are slots
(`SLOT`): they are drawn again every time the archive uses the sentence (`Filler`), so the
archive holds the whole long tail while only a pool of sentences is embedded for real (the
vector is the pooled sentence's: its topic words, which carry its meaning, stay).

Sentences come in several shapes: short replies, the topic templates with a clause of everyday
words added, long compound sentences of two to four clauses, questions, lists, and filler words
("you know", "I mean"), from 1 to about 50 words.
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


ZIPF_S = 1.0
SKIP_RANKS = 400
SLOT = "\x01"
FILLERS = ["you know,", "I mean,", "well,", "like,", "sort of", "um,", "honestly,", "basically,"]
REPLIES = ["Yes.", "Right.", "Exactly.", "No, not really.", "Okay.", "Sure.", "Hmm.",
           "That's true.", "I agree.", "Go on."]  # fmt: skip
SUBJECTS = ["I", "we", "they", "you", "she", "he", "people", "nobody", "everyone", "my neighbour"]
LINKS = ["and", "but", "because", "so", "although", "while", "until", "unless", "and then"]
PREPOSITIONS = ["in", "with", "after", "before", "near", "about", "without", "under", "for"]
VERBS = ("found saw wanted needed bought fixed lost moved kept shared tried changed noticed "
         "remember like hate mention explain build carry check follow ignore").split()  # fmt: skip
_STOP = set("the and was for with that his from her she you had were but this are not they one "
            "which have him been would has their also its who all when there can more into "
            "other some what time out only than then them two after could first made over "
            "most about did these many where may well any new just like".split())  # fmt: skip


def vocabulary() -> list[str]:
    """About 40,000 English word forms in frequency-rank order (module docstring)."""
    import json
    import re

    from junto.knowledge.embeddings import _tokenizer_file

    vocab = json.loads(_tokenizer_file().read_text())["model"]["vocab"]
    from junto.search.keyword import STOPWORDS

    base = [
        w
        for w, _ in sorted(vocab.items(), key=lambda kv: kv[1])
        if re.fullmatch(r"[a-z]{3,}", w) and w not in _STOP and w not in STOPWORDS
    ]
    base = base[SKIP_RANKS:]  # fmt: skip
    words: list[str] = []
    for w in base:  # each word, then its plural a little further down the ranks
        words.append(w)
        if len(w) > 3 and not w.endswith(("s", "y", "ing", "ed")):
            words.append(w + "s")
    return words


class Filler:
    """Fills a sentence's slots with words drawn by Zipf rank (numpy: millions of draws)."""

    def __init__(self, seed: int = 5) -> None:
        import numpy as np

        self.words = vocabulary()
        weights = 1.0 / np.arange(1, len(self.words) + 1) ** ZIPF_S
        self.cumulative = np.cumsum(weights) / weights.sum()
        self.np_rng = np.random.default_rng(seed)
        self._drawn: list[str] = []

    def draw(self) -> str:
        if not self._drawn:
            import numpy as np

            ranks = np.searchsorted(self.cumulative, self.np_rng.random(100_000))
            self._drawn = [self.words[min(int(r), len(self.words) - 1)] for r in ranks]
        return self._drawn.pop()

    def fill(self, text: str) -> str:
        if SLOT not in text:
            return text
        parts = text.split(SLOT)
        out = [parts[0]]
        for p in parts[1:]:
            out += [self.draw(), p]
        return "".join(out)


class Speech:
    """Sentences of every shape, with slots for the long tail's words."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = random.Random(seed)

    def word(self) -> str:
        return SLOT

    def noun(self, topic: str) -> str:
        """Half the time the topic's own word, else any word of the long tail."""
        return self.rng.choice(TOPICS[topic][0]) if self.rng.random() < 0.5 else self.word()

    def clause(self, topic: str) -> str:
        rng = self.rng
        _, verbs, adjectives = TOPICS[topic]
        verb = rng.choice(verbs) if rng.random() < 0.5 else rng.choice(VERBS)
        parts = [rng.choice([*SUBJECTS, rng.choice(NAMES)]), verb, "the"]
        if rng.random() < 0.4:
            parts.append(rng.choice(adjectives) if rng.random() < 0.5 else self.word())
        parts.append(self.noun(topic))
        if rng.random() < 0.6:
            parts += [rng.choice(PREPOSITIONS), "the", self.noun(topic)]
        if rng.random() < 0.2:
            parts.insert(1, rng.choice(FILLERS))
        return " ".join(parts)

    def sentence(self, topic: str) -> str:
        rng = self.rng
        shape = rng.random()
        if shape < 0.08:  # a short reply
            text = rng.choice(REPLIES)
            return text if rng.random() < 0.5 else f"{text[:-1]}, {self.noun(topic)}."
        if shape < 0.40:  # a topic template with everyday words around it
            text = template(rng, topic)
            if rng.random() < 0.6:
                extra = f" {rng.choice(LINKS)} {self.clause(topic)}."
                text = text[:-1] + extra
            return text
        if shape < 0.70:  # a long compound sentence
            clauses = [self.clause(topic) for _ in range(rng.randint(2, 4))]
            text = clauses[0]
            for c in clauses[1:]:
                text += f", {rng.choice(LINKS)} {c}"
            return text[0].upper() + text[1:] + "."
        if shape < 0.85:  # a question
            text = f"{rng.choice(['Did', 'Why did', 'When did', 'How did'])} {self.clause(topic)}"
            return text + "?"
        # a list
        items = [self.noun(topic) for _ in range(rng.randint(3, 6))]
        return f"We need {', '.join(items[:-1])} and {items[-1]}."


def template(rng: random.Random, topic: str) -> str:
    nouns, verbs, adjectives = TOPICS[topic]
    n, n2, n3 = rng.sample(nouns, 3)
    return rng.choice(TEMPLATES).format(
        n=n, n2=n2, n3=n3, v=rng.choice(verbs), a=rng.choice(adjectives), name=rng.choice(NAMES),
        day=rng.choice(DAYS), num=rng.randint(2, 90), year=rng.randint(1890, 2025),
    )  # fmt: skip


def pool(size: int, seed: int = 5) -> tuple[list[str], list[str]]:
    """`size` distinct sentences (with slots) and the topic of each, spread evenly over the
    topics."""
    speech = Speech(seed)
    texts: list[str] = []
    topics: list[str] = []
    seen: set[str] = set()
    names = list(TOPICS)
    while len(texts) < size:
        topic = names[len(texts) % len(names)]
        text = speech.sentence(topic)
        if text not in seen:
            seen.add(text)
            texts.append(text)
            topics.append(topic)
    return texts, topics


def word_queries(texts: list[str], count: int = 20, seed: int = 11) -> list[str]:
    """Queries of one to three words taken from the archive's own sentences, mostly from its
    long tail (words in fewer than 1 % of the sentences), as people search for a name or a
    thing they heard."""
    import re

    rng = random.Random(seed)
    df: dict[str, int] = {}
    for t in texts:
        for w in set(re.findall(r"[a-z]{4,}", t.lower())):
            df[w] = df.get(w, 0) + 1
    rare = sorted(w for w, n in df.items() if n < max(2, len(texts) // 100) and w not in _STOP)
    common = sorted(w for w, n in df.items() if n >= len(texts) // 100 and w not in _STOP)
    out: list[str] = []
    while len(out) < count and rare:
        k = rng.randint(1, 3)
        words = rng.sample(rare, min(k, len(rare)))
        if common and rng.random() < 0.3:
            words.append(rng.choice(common))
        out.append(" ".join(words))
    return out


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
