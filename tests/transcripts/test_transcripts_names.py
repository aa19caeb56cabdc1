"""Names come out right: the final pass hears the conversation's people and subject as hints
(junto.speech.vocabulary), so "Joaquin" is not written "don't win" and an action item addressed
to him keeps its owner."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from transcripts_support import World, speak, to_webm, world_fixture  # noqa: F401

from junto.enums import Role
from junto.speech.vocabulary import MAX_CHARS, conversation_vocabulary, vocabulary
from junto.storage.tables import TranscriptSegment

SAID = "Priya, can you check with Joaquin whether Dagny approved the budget?"


def test_the_vocabulary_names_people_then_the_subject_once_and_briefly() -> None:
    text = vocabulary(["Joaquin", "Dagny", "joaquin"], "Budget review", ["q3-budget", "ops_team"])
    assert text == "Joaquin, Dagny, Budget review, q3 budget, ops team"
    # Nothing sayable: no hint at all rather than noise in the decoder's prompt.
    assert vocabulary(["", "🦊", "42", "---"], "") == ""
    # Bidi and zero-width characters never reach the prompt; the name around them does.
    assert vocabulary(["\u202eAnna\u200b Lee"]) == "Anna Lee"
    many = vocabulary([f"Person Number{i}" for i in range(100)])
    assert 0 < len(many) <= MAX_CHARS and not many.endswith(",")


async def test_participants_names_are_transcribed_right(world: World, tmp_path: Path) -> None:
    priya = await world.member("priya", "Priya")
    joaquin = await world.member("joaquin", "Joaquin")
    dagny = await world.member("dagny", "Dagny")
    await world.member("zed", "Zed Audience")  # in the audience: not a hint
    conv = await world.ended_conversation(priya, title="Budget sign-off")
    await world.add_participant(conv, joaquin, Role.SPEAKER)
    await world.add_participant(conv, dagny, Role.COHOST)
    async with world.node.db() as db:
        assert await conversation_vocabulary(db, conv.id) == (
            "Priya, Joaquin, Dagny, Budget sign-off"
        )

    relative = f"recordings/{conv.id}/{priya.id}.webm"
    to_webm(speak(tmp_path / "names.wav", SAID), world.settings.data_dir / relative)
    await world.add_piece(conv, priya, 0.0, None, path=relative)
    await world.run_jobs("transcript.build")  # asks for the track's words, then waits
    assert await world.run_jobs("transcript.track") == 1
    assert await world.run_jobs("transcript.build") == 1
    async with world.node.db() as db:
        text = " ".join(s.text for s in (await db.execute(select(TranscriptSegment))).scalars())
    # Without the hint tiny.en writes "check with don't win whether Nagni approved".
    assert "Joaquin" in text and "Dagny" in text, text
    assert "budget" in text.lower(), text
