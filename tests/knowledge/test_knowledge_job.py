"""knowledge.extract on a real database: after the transcript is built, and again after a host
corrects it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from knowledge_support import job_context, talk
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.enums import JobState
from junto.jobs.context import JobFailed, NotReady
from junto.knowledge import backends, store
from junto.knowledge.jobs import extract
from junto.knowledge.model import Knowledge


async def test_the_knowledge_follows_the_transcript(world: World) -> None:
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    conv = await talk(world, ana, ben)

    # The built transcript queued the knowledge job; a worker runs it.
    assert await world.run_jobs("knowledge.extract") == 1
    (job,) = await world.jobs("knowledge.extract")
    assert job.state == JobState.SUCCEEDED, job.error
    async with world.node.db() as db:
        first = await store.load(db, conv.id)
        row = await store.row(db, conv.id)
    assert first is not None and row is not None
    assert row.backend == "offline" and row.error is None
    assert len(first.chapters) == 2
    assert any(a.owner_id == ben.id for a in first.action_items)
    assert "We decided to ask the state for a grant." in [d.text for d in first.decisions]

    # A host corrects a segment: the decision becomes another one, and the knowledge follows.
    transcript = (await ana.client.get(f"/api/conversations/{conv.slug}/transcript")).json()
    seg = next(s for s in transcript["segments"] if s["text"].startswith("We decided"))
    fixed = "We agreed to sell the old mill to pay for it. I will write the letter next week."
    answer = await ana.patch(
        f"/api/conversations/{conv.slug}/transcript/segments/{seg['seq']}", {"text": fixed}
    )
    assert answer.status_code == 200, answer.text
    jobs = await world.jobs("knowledge.extract")
    assert len(jobs) == 2 and jobs[-1].state == JobState.QUEUED
    # A second correction in the same moment is covered by the job already waiting.
    answer = await ana.patch(
        f"/api/conversations/{conv.slug}/transcript/segments/{seg['seq']}",
        {"text": fixed.replace("old mill", "old mill and the boathouse")},
    )
    assert answer.status_code == 200, answer.text
    assert len(await world.jobs("knowledge.extract")) == 2
    await _run_now(world)
    async with world.node.db() as db:
        second = await store.load(db, conv.id)
    assert second is not None
    assert [d.text for d in second.decisions] == [
        "We agreed to sell the old mill and the boathouse to pay for it."
    ]
    assert second.computed_at > first.computed_at

    # A job that read the transcript before the corrections and finishes late (a slow LLM)
    # does not overwrite what was learnt from the corrected text.
    async with world.node.db() as db:
        newer = await store.row(db, conv.id)
        assert newer is not None and row.transcript_updated_at is not None
        assert newer.transcript_updated_at is not None
        assert newer.transcript_updated_at > row.transcript_updated_at
        assert not await store.save(db, conv.id, first, None, row.transcript_updated_at)
        await db.commit()
    async with world.node.db() as db:
        kept = await store.load(db, conv.id)
    assert kept == second


async def test_the_job_waits_for_the_transcript(world: World) -> None:
    ana = await world.member("ana", "Ana Host")
    conv = await world.ended_conversation(ana)
    with pytest.raises(NotReady):
        await extract(job_context(world, conv.id))
    async with world.node.db() as db:
        assert await store.load(db, conv.id) is None


class Glossary:
    """A third backend, as someone would plug one in: it refines what came before it."""

    name = "glossary"

    async def extract(self, sentences, people, found):  # type: ignore[no-untyped-def]
        assert found is not None and found.backend == "offline"
        said = " ".join(s.text for s in sentences)
        return found.model_copy(update={"backend": "glossary", "abstract": f"{len(said)} chars"})


class Broken:
    name = "broken"

    async def extract(self, sentences, people, found):  # type: ignore[no-untyped-def]
        raise backends.BackendError("the rules file is missing")


async def test_backends_plug_in_and_a_failing_one_keeps_what_came_before(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    conv = await talk(world, ana, ben)
    assert [b.name for b in backends.configured(world.settings)] == ["offline"]
    with_llm = replace(world.settings, llm_url="http://127.0.0.1:9/v1")
    assert [b.name for b in backends.configured(with_llm)] == ["offline", "llm"]

    chain = [backends.Offline(), Glossary(), Broken()]
    monkeypatch.setattr("junto.knowledge.jobs.configured", lambda settings: chain)
    await extract(job_context(world, conv.id))
    async with world.node.db() as db:
        found: Knowledge | None = await store.load(db, conv.id)
        row = await store.row(db, conv.id)
    assert found is not None and row is not None
    assert found.backend == "glossary" and (found.abstract or "").endswith(" chars")
    assert len(found.chapters) == 2  # the offline chapters came through
    assert row.error == "broken: the rules file is missing"

    # When the first backend fails there is nothing to keep: the job fails and says why, and
    # the knowledge stored before stays.
    monkeypatch.setattr("junto.knowledge.jobs.configured", lambda settings: [Broken()])
    with pytest.raises(JobFailed, match="broken: the rules file is missing"):
        await extract(job_context(world, conv.id))
    async with world.node.db() as db:
        kept = await store.load(db, conv.id)
    assert kept is not None and kept.backend == "glossary"


async def _run_now(world: World) -> None:
    """Run the knowledge job that waits for corrections to settle, without waiting."""
    from sqlalchemy import update

    from junto.storage.tables import Job
    from junto.storage.types import utcnow

    async with world.node.db() as db:
        await db.execute(
            update(Job)
            .where(Job.kind == "knowledge.extract", Job.state == JobState.QUEUED)
            .values(run_after=utcnow())
        )
        await db.commit()
    assert await world.run_jobs("knowledge.extract") == 1
