"""Knowledge benchmark (issue 13): questions, decisions and action items found in the held-out
labelled meetings (src/junto/knowledge/data/meetings, `split: heldout`), by the item classifier
with owner resolution (what the offline backend runs) next to the cue phrases it replaced, in
the same run. With `--llm` (and JUNTO_LLM_URL set) the configured LLM is scored on the same
meetings too.

    python bench/knowledge.py [--split heldout|train] [--llm] [--errors]

Prints a human summary, then one JSON line:
{"f1_questions", "f1_decisions", "f1_actions", "owner_accuracy", "baseline_f1_questions",
 "baseline_f1_decisions", "baseline_f1_actions", "held_out_sentences", ...}.
Targets: F1 >= 0.8 for each kind, owners right >= 90 % (of the action items found that are
action items). A measurement, never a pass/fail test. `--errors` lists what was missed or wrong:
read it on the train split only, or the held-out figures stop meaning anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from junto.knowledge import dataset, evaluate
from junto.knowledge.embeddings import get_embedder


def _llm_method() -> evaluate.Method:
    from junto.config import load_settings
    from junto.knowledge import llm, offline

    settings = load_settings()
    if not settings.llm_url:
        raise SystemExit("--llm needs JUNTO_LLM_URL (an OpenAI-compatible server)")
    embedder = get_embedder()

    def run(m: dataset.Meeting) -> evaluate.Found:
        base = offline.extract(m.sentences, embedder, m.people)
        try:
            k = asyncio.run(llm.extract(settings, m.sentences, m.people, base))
        except llm.LlmError as e:  # a bad answer scores as finding nothing, and says so
            print(f"  llm on {m.name}: {e}", file=sys.stderr)
            return evaluate.Found()
        index = {s.start_ms: i for i, s in enumerate(m.sentences)}
        return evaluate.Found(
            questions={index[q.start_ms] for q in k.questions if q.start_ms in index},
            decisions={index[d.start_ms] for d in k.decisions if d.start_ms in index},
            actions={index[a.start_ms]: a.owner_id for a in k.action_items if a.start_ms in index},
        )

    return run


def _line(name: str, s: evaluate.Score) -> str:
    parts = [
        f"{kind} P {c.precision:.2f} R {c.recall:.2f} F1 {c.f1:.2f}" for kind, c in s.kinds.items()
    ]
    return f"{name:<11} " + " | ".join(parts) + f" | owners {s.owner_accuracy:.0%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=dataset.SPLITS, default="heldout")
    parser.add_argument("--llm", action="store_true", help="also score the configured LLM")
    parser.add_argument("--errors", action="store_true", help="list the classifier's errors")
    args = parser.parse_args()

    meetings = dataset.meetings(args.split)
    embedder = get_embedder()
    began = time.perf_counter()
    ours = evaluate.score(meetings, evaluate.classifier(embedder))
    took = time.perf_counter() - began
    base = evaluate.score(meetings, evaluate.baseline)
    llm_score = evaluate.score(meetings, _llm_method()) if args.llm else None

    labelled = [lb for m in meetings for lb in m.labels]
    print(
        f"{args.split}: {len(meetings)} meetings, {ours.sentences} sentences "
        f"({sum(lb.is_question for lb in labelled)} questions, "
        f"{sum(lb.is_decision for lb in labelled)} decisions, "
        f"{sum(lb.is_action for lb in labelled)} action items)"
    )
    print(_line("classifier", ours) + f" | {ours.sentences / took:.0f} sentences/s")
    print(_line("cues", base))
    if llm_score is not None:
        print(_line("llm", llm_score))
    if args.errors:
        print("\n".join(ours.misses))

    result: dict[str, Any] = {
        "f1_questions": round(ours.kinds["questions"].f1, 3),
        "f1_decisions": round(ours.kinds["decisions"].f1, 3),
        "f1_actions": round(ours.kinds["actions"].f1, 3),
        "owner_accuracy": round(ours.owner_accuracy, 3),
        "baseline_f1_questions": round(base.kinds["questions"].f1, 3),
        "baseline_f1_decisions": round(base.kinds["decisions"].f1, 3),
        "baseline_f1_actions": round(base.kinds["actions"].f1, 3),
        "baseline_owner_accuracy": round(base.owner_accuracy, 3),
        "held_out_sentences": ours.sentences if args.split == "heldout" else 0,
        "split": args.split,
        "precision": {k: round(c.precision, 3) for k, c in ours.kinds.items()},
        "recall": {k: round(c.recall, 3) for k, c in ours.kinds.items()},
        "owners_checked": ours.owners_checked,
    }
    if llm_score is not None:
        result |= {f"llm_f1_{k}": round(c.f1, 3) for k, c in llm_score.kinds.items()} | {
            "llm_owner_accuracy": round(llm_score.owner_accuracy, 3)
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
