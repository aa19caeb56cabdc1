"""Hosts correct the transcript: words and speakers, with history; bad input changes nothing."""

from __future__ import annotations

import itertools
from typing import Any

from transcripts_support import World, words_at, world_fixture  # noqa: F401

from helpers import Person
from junto.enums import Role, Visibility
from junto.transcripts import vtt


async def transcribed(world: World, **fields: Any) -> tuple[Person, Person, str]:
    """Ana (host) and Ben (speaker) talked; the transcript is built. Returns (ana, ben, slug)."""
    ana = await world.member("ana", "Ana")
    ben = await world.member("ben", "Ben")
    conv = await world.ended_conversation(ana, **fields)
    await world.add_participant(conv, ben, Role.SPEAKER)
    await world.add_piece(conv, ana, 0.0, words_at(0.0, "Welcome to the stage."))
    await world.add_piece(conv, ben, 3.0, words_at(0.0, "Thank you for having me."))
    assert await world.run_jobs("transcript.build") == 1
    return ana, ben, conv.slug


async def transcript(person: Person, slug: str) -> dict[str, Any]:
    answer = await person.client.get(f"/api/conversations/{slug}/transcript")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_same_word_count_keeps_each_words_timing(world: World) -> None:
    ana, _ben, slug = await transcribed(world)
    before = (await transcript(ana, slug))["segments"][0]
    answer = await ana.patch(
        f"/api/conversations/{slug}/transcript/segments/0", {"text": "Welcome to the show."}
    )
    assert answer.status_code == 200, answer.text
    seg = answer.json()
    assert seg["text"] == "Welcome to the show." and seg["edited"] is True
    assert [w[:2] for w in seg["words"]] == [w[:2] for w in before["words"]]
    assert [w[2] for w in seg["words"]] == ["Welcome", "to", "the", "show."]
    assert (await transcript(ana, slug))["segments"][0] == seg


async def test_a_different_word_count_spreads_the_span_by_length(world: World) -> None:
    ana, _ben, slug = await transcribed(world)
    before = (await transcript(ana, slug))["segments"][1]  # Ben: 3000..4950 ms
    text = "Thanks, a pleasure to be here tonight."
    answer = await ana.patch(f"/api/conversations/{slug}/transcript/segments/1", {"text": text})
    assert answer.status_code == 200, answer.text
    words = answer.json()["words"]
    assert [w[2] for w in words] == text.split()
    assert words[0][0] == before["start_ms"] and words[-1][1] == before["end_ms"]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(words))  # contiguous
    # "pleasure" (8 letters) takes longer than "a" (1 letter).
    length = {w[2]: w[1] - w[0] for w in words}
    assert length["pleasure"] > 4 * length["a"]


async def test_speaker_change_and_history(world: World) -> None:
    ana, ben, slug = await transcribed(world)
    url = f"/api/conversations/{slug}/transcript/segments/0"
    assert (await ana.patch(url, {"speaker_id": ben.id})).json()["speaker"] == {
        "id": ben.id,
        "name": "Ben",
    }
    assert (await ana.patch(url, {"text": "Welcome, everyone."})).status_code == 200
    assert (
        await ana.patch(url, {"speaker_id": ana.id, "text": "Welcome, all."})
    ).status_code == 200

    body = await transcript(ana, slug)
    assert body["segments"][0]["speaker"]["name"] == "Ana"
    assert body["segments"][0]["text"] == "Welcome, all."
    assert body["edited"] is True
    history = (await ana.client.get(f"/api/conversations/{slug}/transcript/history")).json()
    got = [
        (e["seq"], e["field"], e["before"], e["after"], e["editor"]["name"])
        for e in history["edits"]
    ]
    assert got == [
        (0, "speaker", "Ana", "Ben", "Ana"),
        (0, "text", "Welcome to the stage.", "Welcome, everyone.", "Ana"),
        (0, "text", "Welcome, everyone.", "Welcome, all.", "Ana"),
        (0, "speaker", "Ben", "Ana", "Ana"),
    ]
    assert history["edits"][0]["before_id"] == ana.id and history["edits"][0]["after_id"] == ben.id
    one = await ana.client.get(f"/api/conversations/{slug}/transcript/history?seq=1")
    assert one.json() == {"edits": []}
    # The WebVTT download follows the corrections.
    served = await ana.client.get(f"/c/{slug}/transcript.vtt")
    assert "<v Ana>Welcome, all." in served.text


async def test_bad_input_and_strangers_change_nothing(world: World) -> None:
    ana, ben, slug = await transcribed(world)
    stranger = await world.member("carol", "Carol")
    url = f"/api/conversations/{slug}/transcript/segments/0"
    original = await transcript(ana, slug)

    refused = {
        "empty": (ana, {"text": "   \n "}, 422, "must not be empty"),
        "huge": (ana, {"text": "word " * 1500}, 422, "at most 5000 characters"),
        "control": (ana, {"text": "bell\x07here"}, 422, "control characters (found U+0007)"),
        "nothing": (ana, {}, 422, "send the corrected text"),
        "stranger speaker": (ana, {"speaker_id": stranger.id}, 422, "not a participant"),
        "no such user": (ana, {"speaker_id": 999_999}, 422, "not a participant"),
        "unknown field": (ana, {"text": "x", "html": "<b>"}, 422, ""),
        "speaker (not a host)": (ben, {"text": "I said this."}, 403, "only hosts and co-hosts"),
        "member (not a host)": (stranger, {"text": "Mine now."}, 403, "only hosts and co-hosts"),
        "anonymous": (world.anonymous(), {"text": "Hello."}, 401, "sign in"),
    }
    for name, (who, body, status, message) in refused.items():
        answer = await who.patch(url, body)
        assert answer.status_code == status, (name, answer.text)
        assert message in answer.text, (name, answer.text)
        if status == 422:
            assert answer.json()["detail"][0]["loc"][0] == "body", name
    missing = await ana.patch(f"/api/conversations/{slug}/transcript/segments/99", {"text": "x"})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"

    assert await transcript(ana, slug) == original
    history = await ana.client.get(f"/api/conversations/{slug}/transcript/history")
    assert history.json() == {"edits": []}
    # The history shows what corrections removed: hosts only.
    assert (
        await ben.client.get(f"/api/conversations/{slug}/transcript/history")
    ).status_code == 403
    assert (
        await world.anonymous().client.get(f"/api/conversations/{slug}/transcript/history")
    ).status_code == 401


async def test_no_transcript_yet_is_a_conflict(world: World) -> None:
    ana = await world.member("ana", "Ana")
    created = await ana.post("/api/conversations", {"title": "Soon"})
    slug = created.json()["slug"]
    answer = await ana.patch(f"/api/conversations/{slug}/transcript/segments/0", {"text": "Hi"})
    assert answer.status_code == 409 and "no transcript yet" in answer.json()["message"]
    assert (await transcript(ana, slug))["status"] == "none"


async def test_a_rebuild_keeps_the_edited_transcript(world: World) -> None:
    ana, _ben, slug = await transcribed(world)
    url = f"/api/conversations/{slug}/transcript/segments/1"
    assert (await ana.patch(url, {"text": "Thanks for having me."})).status_code == 200
    conv = await world.conversation(slug)
    async with world.node.db() as db:
        from junto.jobs import queue

        await queue.enqueue(db, "transcript.build", {"conversation_id": conv.id})
        await db.commit()
    assert await world.run_jobs("transcript.build") == 1
    jobs = await world.jobs("transcript.build")
    assert jobs[-1].progress_note == "kept the edited transcript"
    assert (await transcript(ana, slug))["segments"][1]["text"] == "Thanks for having me."
    assert "Thanks for having me." in vtt.file_path(world.settings.data_dir, conv.id).read_text()


async def test_invite_only_transcripts_are_hidden_from_outsiders(world: World) -> None:
    _ana, ben, slug = await transcribed(world, visibility=Visibility.INVITE_ONLY.value)
    stranger = await world.member("carol", "Carol")
    assert (await transcript(ben, slug))["status"] == "ready"
    for who in (stranger, world.anonymous()):
        for path in (f"/api/conversations/{slug}/transcript", f"/c/{slug}/transcript.vtt"):
            assert (await who.client.get(path)).status_code == 404, path
    answer = await stranger.patch(f"/api/conversations/{slug}/transcript/segments/0", {"text": "x"})
    assert answer.status_code == 404
