"""Holding under load (issue 12): a burst of posts into one room must not stall the node.

200 chat and backchannel posts over the REST API and 200 over WebSockets arrive at once, from
many people, while someone else keeps opening another conversation's page. Before the fix, each
REST post held its request's database connection while the action waited for a second one, so
30 simultaneous posts exhausted the pool: the node stood still for the pool's 30 s timeout and
answered 500. Everyone here must get their post stored once, seen once by a listener, and the
other page must keep answering quickly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from ws_support import TIMEOUT, Client, LiveRoom, create_conversation, in_room, live_room

from conftest import LiveNode, make_live_node
from helpers import Person, csrf_headers

pytestmark = pytest.mark.slow

PEOPLE = 100
REST_EACH = 2  # a chat message and a backchannel post each, all at once: 200 REST posts
# A socket's frames are carried out one after another, so a few sockets sending many frames
# each: 200 WebSocket posts, without a hundred more sockets for every post to reach.
WS_PEOPLE = 25
WS_EACH = 8
PAGE_BUDGET_S = 0.5  # the target, for 95 % of the page's answers during the burst
# and for every answer: the stall was 29 s. The rest of the margin is for this shared 2-core
# machine, where other processes' scheduling alone delayed a few answers by 0.5-0.8 s.
PAGE_CEILING_S = 2.0
# Far above what a post takes under this load (well under a second), far below the 30 s that the
# old pool-exhaustion stall took, so a stall shows up as a refused post, not a hung test.
ANSWER_WITHIN_S = 15.0


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[LiveNode]:
    """A node whose per-person limits let a hundred guests post a few times at once: this test
    measures the node under a burst, not the rate limits (tested in test_actions_chat.py)."""
    live = make_live_node(
        tmp_path / "node",
        JUNTO_DATABASE_URL=database_url,
        JUNTO_LIMIT_GUEST_CREATE_BURST="1000",
        JUNTO_LIMIT_GUEST_BURST="50",
    )
    try:
        live.start()  # on a busy machine it may not answer in time: stop it all the same
        yield live
    finally:
        live.stop()


@asynccontextmanager
async def _sockets(
    node: LiveNode, room: LiveRoom, people: list[Person]
) -> AsyncIterator[list[Client]]:
    """One room socket per person, each past its snapshot."""
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(in_room(node, room.slug, person, max_queue=None))
            for person in people
        ]
        for client in clients:
            await client.wait_type("snapshot")
        yield clients


async def _guests(room: LiveRoom, count: int) -> list[Person]:
    people: list[Person] = []
    for start in range(0, count, 10):
        people += await asyncio.gather(
            *(room.guest(f"guest{i}") for i in range(start, min(count, start + 10)))
        )
    return people


def _frame(i: int, k: int, via: str) -> dict[str, Any]:
    kind = "chat.send" if k % 2 == 0 else "backchannel.post"
    return {"type": kind, "body": f"{via} post {k} from guest {i}"}


async def _post_rest(person: Person, slug: str, i: int, k: int) -> tuple[int, str]:
    frame = _frame(i, k, "rest")
    path = "chat" if frame["type"] == "chat.send" else "backchannel"
    headers = await csrf_headers(person.client)
    # A fresh connection: the person's kept-alive one may have idled past the server's
    # keep-alive timeout while the sockets were opening, and a POST is not retried on it.
    async with httpx.AsyncClient(
        base_url=str(person.client.base_url), cookies=person.client.cookies
    ) as http:
        try:
            response = await http.post(
                f"/api/conversations/{slug}/{path}",
                json={"body": frame["body"]},
                headers=headers,
                timeout=ANSWER_WITHIN_S,
            )
        except httpx.TimeoutException:
            return 0, f"no answer within {ANSWER_WITHIN_S} s"
    return response.status_code, response.text


async def _post_ws(client: Client, i: int) -> list[dict[str, Any]]:
    refs = [f"g{i}-{k}" for k in range(WS_EACH)]
    try:
        for k, ref in enumerate(refs):
            await client.send(ref=ref, **_frame(i, k, "ws"))
        return [await _answer(client, ref) for ref in refs]
    except ConnectionClosed as exc:
        return [{"type": "closed", "code": client.ws.close_code, "reason": str(exc)}]


async def _answer(client: Client, ref: str) -> dict[str, Any]:
    try:
        return await client.wait_for(
            lambda f: f.get("type") in ("ack", "error") and f.get("ref") == ref,
            timeout=ANSWER_WITHIN_S,
            what=f"the answer to {ref}",
        )
    except AssertionError as exc:
        return {"type": "error", "ref": ref, "message": str(exc)[:200]}


class PageWatch:
    """Opens another conversation's page again and again from its own thread (so the test's
    busy event loop does not add to the times), recording how long each answer took."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.times: list[float] = []
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=ANSWER_WITHIN_S) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = http.get(self.url).status_code
                except httpx.TimeoutException:
                    status = 0
                self.times.append(time.monotonic() - started)
                self.statuses.append(status)
                self._stop.wait(0.05)  # a reader clicking around, not a flood

    def __enter__(self) -> PageWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(ANSWER_WITHIN_S + 5)


def _bodies(events: list[dict[str, Any]]) -> Counter[str]:
    found: Counter[str] = Counter()
    for event in events:
        if event["type"] == "chat.message":
            found[event["data"]["message"]["body"]] += 1
        elif event["type"] == "backchannel.post":
            found[event["data"]["post"]["body"]] += 1
    return found


async def _stored_events(room: LiveRoom) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        response = await room.host.client.get(
            f"/api/conversations/{room.slug}/events", params={"after": after, "limit": 1000}
        )
        assert response.status_code == 200, response.text
        page = response.json()["events"]
        if not page:
            return events
        events += page
        after = page[-1]["id"]


async def _wait_for_bodies(listener: Client, expected: set[str]) -> Counter[str]:
    """Read the listener's socket until every expected post arrived (or the deadline)."""
    deadline = time.monotonic() + TIMEOUT
    while not expected <= set(_bodies(listener.room_events())) and time.monotonic() < deadline:
        try:
            await listener.recv(max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
    await listener.drain(0.3)  # anything doubled would arrive right behind
    return _bodies(listener.room_events())


async def test_a_burst_of_posts_is_stored_and_delivered_once_without_stalling_the_node(
    node: LiveNode,
) -> None:
    async with live_room(node) as room:
        other = await create_conversation(room.host, title="Another room")
        people = await _guests(room, PEOPLE)
        expected = {
            _frame(i, k, via)["body"]
            for i in range(PEOPLE)
            for via, each in (("rest", REST_EACH), ("ws", WS_EACH if i < WS_PEOPLE else 0))
            for k in range(each)
        }
        async with (
            in_room(node, room.slug) as listener,
            _sockets(node, room, people[:WS_PEOPLE]) as sockets,
        ):
            await listener.wait_type("snapshot")
            with PageWatch(f"{node.url}/c/{other}") as pages:
                rest = asyncio.gather(
                    *(
                        _post_rest(person, room.slug, i, k)
                        for i, person in enumerate(people)
                        for k in range(REST_EACH)
                    )
                )
                ws = asyncio.gather(*(_post_ws(client, i) for i, client in enumerate(sockets)))
                rest_answers, ws_answers = await asyncio.gather(rest, ws)
            received = await _wait_for_bodies(listener, expected)
        stored = _bodies(await _stored_events(room))

    refused = [(status, text) for status, text in rest_answers if status != 201]
    assert refused == [], f"{len(refused)} REST posts refused, e.g. {refused[:3]}"
    errors = [a for answers in ws_answers for a in answers if a["type"] != "ack"]
    assert errors == [], f"{len(errors)} WebSocket posts refused, e.g. {errors[:3]}"
    assert stored == Counter(expected), "every post is stored exactly once"
    assert received == Counter(expected), "the listener sees every post exactly once"
    assert pages.times, "the other page was requested during the burst"
    assert set(pages.statuses) == {200}
    ordered = sorted(pages.times)
    p95, slowest = ordered[int(len(ordered) * 0.95)], ordered[-1]
    summary = f"p95 {p95:.2f} s, slowest {slowest:.2f} s of {len(ordered)} requests"
    assert p95 < PAGE_BUDGET_S, f"another conversation's page was slow during the burst: {summary}"
    assert slowest < PAGE_CEILING_S, f"another conversation's page stalled: {summary}"
