"""Housekeeping (issue 12): a sweep removes what expired and keeps what is live, the files of a
deleted conversation are gone after it, and several processes queue one sweep between them.
On SQLite and PostgreSQL, through a real node, real job worker and real files."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, func, select, update

from helpers import csrf_headers, guest, in_process_node, signup
from junto import accounts, housekeeping
from junto.config import Settings
from junto.enums import JobState
from junto.jobs.queue import enqueue
from junto.jobs.worker import run_worker
from junto.node import Node
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import (
    BackchannelPost,
    ChatMessage,
    Conversation,
    Job,
    Participant,
    PasswordReset,
    RateBucket,
    Reaction,
    Session,
    Snippet,
    User,
)
from junto.storage.types import utcnow

SWEEP = housekeeping.SWEEP


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    async with in_process_node(settings) as (node, client):
        yield node, client


def browser(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Another browser (cookie jar) on the same in-process node."""
    return httpx.AsyncClient(transport=client._transport, base_url="http://testserver")


async def post(client: httpx.AsyncClient, url: str, body: object = None) -> httpx.Response:
    return await client.post(url, json=body, headers=await csrf_headers(client))


async def run_sweep(settings: Settings) -> Job:
    """Queue a sweep and run it with a real worker, as the scheduler and `junto worker` do."""
    engine = make_engine(settings.effective_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            job = await enqueue(db, SWEEP, {})
            await db.commit()
        assert await run_worker(settings, "sweeper", once=True, kinds=[SWEEP]) == 1
        async with make_sessionmaker(engine)() as db:
            done = await db.get(Job, job.id)
            assert done is not None
            return done
    finally:
        await engine.dispose()


async def age(node: Node, user_ids: list[int], days: float) -> None:
    """Let `days` pass for these people: they were made, signed in and last took part then."""
    then = utcnow() - timedelta(days=days)
    async with node.db() as db:
        await db.execute(update(User).where(User.id.in_(user_ids)).values(created_at=then))
        await db.execute(
            update(Session)
            .where(Session.user_id.in_(user_ids))
            .values(created_at=then, expires_at=then + accounts.GUEST_SESSION_TTL)
        )
        await db.execute(
            update(Participant).where(Participant.user_id.in_(user_ids)).values(updated_at=then)
        )
        await db.commit()


async def ids_left(node: Node, user_ids: list[int]) -> set[int]:
    async with node.db() as db:
        return set(await db.scalars(select(User.id).where(User.id.in_(user_ids))))


async def count(node: Node, table: type[object]) -> int:
    async with node.db() as db:
        return int(await db.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[call-overload]


async def test_a_sweep_removes_what_expired_and_keeps_what_is_live(
    running: tuple[Node, httpx.AsyncClient], settings: Settings
) -> None:
    node, ana = running
    me = await signup(ana, "ana", display_name="Ana")
    slug = (await post(ana, "/api/conversations", {"title": "Open mic"})).json()["slug"]
    assert (await post(ana, f"/api/conversations/{slug}/start")).status_code == 200
    people: dict[str, httpx.AsyncClient] = {}
    ids: dict[str, int] = {}
    for name in ("gus", "bea", "rex", "nil", "pat", "new"):
        people[name] = browser(ana)
        ids[name] = (await guest(people[name], name.title()))["id"]
    # Gus chats, Bea posts to the backchannel, Rex reacts to her post, Pat accepts an invite
    # (a standing in the conversation, nothing written), Nil does nothing at all.
    chat = await post(people["gus"], f"/api/conversations/{slug}/chat", {"body": "hello all"})
    assert chat.status_code == 201, chat.text
    posted = await post(people["bea"], f"/api/conversations/{slug}/backchannel", {"body": "#q ok"})
    assert posted.status_code == 201, posted.text
    invite = (await post(ana, f"/api/conversations/{slug}/invites", {})).json()
    accepted = await post(people["pat"], "/api/invites/accept", {"token": invite["token"]})
    assert accepted.status_code == 200, accepted.text
    now = utcnow()
    async with node.db() as db:
        db.add(Reaction(post_id=posted.json()["post"]["id"], user_id=ids["rex"], kind="agree"))
        # Two of Ana's old sessions, a used and an expired reset token, a live one.
        for n in range(2):
            db.add(Session(token_hash=f"{n}" * 64, user_id=me["id"], expires_at=now))
        later = now + timedelta(hours=1)
        db.add(PasswordReset(token_hash="u" * 64, user_id=me["id"], expires_at=later, used_at=now))
        db.add(PasswordReset(token_hash="e" * 64, user_id=me["id"], expires_at=now))
        live_reset = await accounts.issue_password_reset(db, "ana")
        # A rate bucket untouched for a week (full again) and one in use.
        db.add(RateBucket(key="snippet:999", tokens=0.0, updated=time.time() - 7 * 86400))
        db.add(RateBucket(key="snippet:998", tokens=0.0, updated=time.time()))
        await db.commit()
    quiet = [ids[n] for n in ("gus", "bea", "rex", "nil", "pat")]
    await age(node, quiet, days=settings.guest_idle_days + 1)

    job = await run_sweep(settings)

    assert job.state == JobState.SUCCEEDED
    # Ana's two old sessions and the kept quiet guests' three (the deleted guests' two went
    # with them).
    assert "sessions 5" in job.progress_note
    assert "guests 2" in job.progress_note and "guests kept 3" in job.progress_note
    # Quiet guests who wrote something stay (their words keep their name); the others go.
    assert await ids_left(node, list(ids.values())) == {
        ids["gus"], ids["bea"], ids["rex"], ids["new"]
    }  # fmt: skip
    assert await count(node, ChatMessage) == 1
    assert await count(node, BackchannelPost) == 1
    assert await count(node, Reaction) == 1
    # Live sessions still work; expired ones and spent tokens are gone, a live token is not.
    assert (await ana.get("/api/me")).json()["id"] == me["id"]
    assert (await people["new"].get("/api/me")).json()["id"] == ids["new"]
    assert (await people["gus"].get("/api/me")).status_code == 401
    async with node.db() as db:
        assert set(await db.scalars(select(Session.user_id))) == {me["id"], ids["new"]}
        resets = set(await db.scalars(select(PasswordReset.token_hash)))
        assert resets == {accounts.token_hash(live_reset)}
        buckets = set(await db.scalars(select(RateBucket.key)))
        assert buckets == {"snippet:998", f"conversation:{me['id']}", f"invite:{me['id']}"}
    # Idempotent: a second sweep finds nothing more.
    again = await housekeeping.sweep(node.db, settings)
    assert (again.sessions, again.reset_tokens, again.guests, again.rate_buckets) == (0, 0, 0, 0)
    assert again.guests_kept == 3
    for client in people.values():
        await client.aclose()


def replace_fields(snippet: Snippet) -> Snippet:
    """A ready snippet's other columns, as the snippet maker stores them."""
    snippet.title, snippet.text, snippet.state = "A clip", "some words", "ready"
    snippet.start_ms, snippet.end_ms = 0, 1000
    return snippet


def plant(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"\x00" * 64)


async def test_a_deleted_conversations_files_are_gone_after_a_sweep(
    running: tuple[Node, httpx.AsyncClient], settings: Settings
) -> None:
    node, ana = running
    me = await signup(ana, "ana")
    kept_slug = (await post(ana, "/api/conversations", {"title": "Kept"})).json()["slug"]
    gone_slug = (await post(ana, "/api/conversations", {"title": "Deleted"})).json()["slug"]
    async with node.db() as db:
        by_slug = {c.slug: c for c in await db.scalars(select(Conversation))}
        kept, gone = by_slug[kept_slug], by_slug[gone_slug]
        for conv, snippet_slug in ((kept, "keptclip1"), (gone, "goneclip1")):
            snippet = Snippet(slug=snippet_slug, conversation_id=conv.id, created_by=me["id"])
            db.add(replace_fields(snippet))
        await db.commit()
    data = settings.data_dir
    files = ("1.journal", "1.webm", "composite.mp4", "audio.m4a", "thumbnail.jpg", "transcript.vtt")
    plant(data / "recordings" / str(kept.id), *files)
    plant(data / "recordings" / str(gone.id), *files)
    for slug in ("keptclip1", "goneclip1"):
        plant(data / "snippets" / slug, "clip.mp4", "audio.m4a", "thumbnail.jpg", "captions.vtt")
    # The conversation is deleted (its rows, snippets included, go by ON DELETE CASCADE);
    # its files stay on disk until a sweep.
    async with node.db() as db:
        await db.execute(delete(Conversation).where(Conversation.id == gone.id))
        await db.commit()
    assert (data / "recordings" / str(gone.id) / "composite.mp4").exists()

    job = await run_sweep(settings)

    assert job.state == JobState.SUCCEEDED
    assert "conversation folders 1" in job.progress_note
    assert "snippet folders 1" in job.progress_note
    assert not (data / "recordings" / str(gone.id)).exists()
    assert not (data / "snippets" / "goneclip1").exists()
    assert sorted(p.name for p in (data / "recordings" / str(kept.id)).iterdir()) == sorted(files)
    assert len(list((data / "snippets" / "keptclip1").iterdir())) == 4
    again = await housekeeping.sweep(node.db, settings)
    assert (again.conversation_folders, again.snippet_folders) == (0, 0)


async def sweeps(settings: Settings) -> list[Job]:
    engine = make_engine(settings.effective_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            return list(await db.scalars(select(Job).where(Job.kind == SWEEP).order_by(Job.id)))
    finally:
        await engine.dispose()


async def eventually(settings: Settings, done: Callable[[list[Job]], bool]) -> list[Job]:
    """The sweep jobs once `done(them)` holds (polled, up to 20 s)."""
    deadline = time.monotonic() + 20.0
    while True:
        found = await sweeps(settings)
        if done(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def active(jobs: list[Job]) -> list[Job]:
    return [j for j in jobs if j.state in (JobState.QUEUED, JobState.RUNNING)]


async def test_several_processes_queue_one_sweep_between_them(
    running: tuple[Node, httpx.AsyncClient], settings: Settings
) -> None:
    """Two processes' schedulers (two engines on one database) ticking fast: one sweep is
    queued at a time, and the next one only after the last has run."""
    every = timedelta(seconds=0.3)
    engines = [make_engine(settings.effective_database_url) for _ in range(2)]
    makers = [make_sessionmaker(e) for e in engines]
    try:
        # At the same moment, many times over: exactly one is queued.
        asking = (housekeeping.schedule(makers[i % 2], every) for i in range(12))
        assert sum(await asyncio.gather(*asking)) == 1
        loops = [asyncio.create_task(housekeeping.keep_scheduled(m, every)) for m in makers]
        try:
            await eventually(settings, lambda jobs: len(jobs) >= 1)
            assert await run_worker(settings, "sweeper", once=True, kinds=[SWEEP]) >= 1
            # Once it has run, both loops see that none is queued; one of them queues the next.
            jobs = await eventually(settings, lambda jobs: len(active(jobs)) == 1)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        assert len(active(jobs)) == 1 and active(jobs)[0] is jobs[-1]
        assert jobs[0].state == JobState.SUCCEEDED and jobs[0].progress_note.startswith("removed")
        for before, after in itertools.pairwise(jobs):
            # Due one interval after the one before was queued, not at once.
            assert after.run_after >= before.created_at + every - timedelta(milliseconds=5)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_running_node_queues_the_sweep_by_itself(settings: Settings) -> None:
    """Wired into the node's start: with a short interval, a sweep is queued without anyone
    asking."""
    quick = dataclasses.replace(settings, housekeeping_minutes=0.005)  # 0.3 s
    async with in_process_node(quick):
        queued = await eventually(quick, lambda jobs: len(jobs) >= 1)
    assert len(queued) == 1 and queued[0].state == JobState.QUEUED


async def test_two_sweeps_at_once_remove_everything_once(
    running: tuple[Node, httpx.AsyncClient], settings: Settings
) -> None:
    """Two workers (two engines on one database) sweeping at the same moment: no error, each
    quiet guest and expired session is removed once, and every orphaned folder goes."""
    node, ana = running
    await signup(ana, "ana")
    old = utcnow() - timedelta(days=settings.guest_idle_days + 2)
    async with node.db() as db:
        for n in range(40):
            db.add(User(display_name=f"Guest {n}", colour="#1f5fbf", is_guest=True, created_at=old))
        await db.commit()
        guests = list(await db.scalars(select(User.id).where(User.is_guest.is_(True))))
        for n, user_id in enumerate(guests):
            db.add(Session(token_hash=f"{n:064d}", user_id=user_id, expires_at=old))
        await db.commit()
    for n in range(5):
        plant(settings.data_dir / "recordings" / str(1000 + n), "composite.mp4")
    engines = [make_engine(settings.effective_database_url) for _ in range(2)]
    try:
        both = await asyncio.gather(
            *(housekeeping.sweep(make_sessionmaker(e), settings) for e in engines)
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(c.guests for c in both) == 40
    assert await ids_left(node, guests) == set()
    assert await count(node, Session) == 1  # Ana's
    assert not any((settings.data_dir / "recordings").iterdir())


def test_workers_are_given_the_nodes_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's sweep keeps a shared bucket until the node's slowest refill has passed: the
    worker process must read the node's limits, not the defaults."""
    from junto.config import Limits, load_settings, worker_environment
    from junto.ratelimit import longest_refill

    slow = Limits(conversation_create_burst=5, conversation_create_per_second=1 / 86400)
    node_settings = Settings(data_dir=Path("/tmp/junto-unused"), limits=slow)
    for name, value in worker_environment(node_settings).items():
        monkeypatch.setenv(name, value)
    assert load_settings().limits == slow
    assert longest_refill(load_settings().limits) == 5 * 86400
