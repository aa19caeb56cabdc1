"""The pub/sub contract (junto.pubsub.base), run over every backend.

The Redis runs use the shared test Redis (`redis_url`); the resilience tests start a private
redis-server on a free port so that they can kill and restart it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from conftest import free_port
from helpers import eventually
from junto.pubsub import PubSub, Subscription, make_pubsub
from junto.pubsub.base import SubscriptionOverflow
from junto.pubsub.memory import MemoryPubSub
from junto.pubsub.redis import RedisPubSub
from private_redis import PrivateRedis, start_private_redis

Factory = Callable[[], Awaitable[PubSub]]


@pytest.fixture(params=["memory", "redis"])
async def new_pubsub(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Makes started pub/subs of one backend; with Redis each one is like another process."""
    url = "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")
    made: list[PubSub] = []

    async def make() -> PubSub:
        if made and request.param == "memory":
            return made[0]  # one process: every "node" shares the one in-memory bus
        pubsub = make_pubsub(url)
        await pubsub.start()
        made.append(pubsub)
        return pubsub

    yield make
    for pubsub in made:
        await pubsub.close()


@pytest.fixture
def prefix() -> str:
    """A channel prefix of its own for each test, so runs on a shared Redis never cross."""
    return f"test-{secrets.token_hex(4)}:"


async def take(sub: Subscription, count: int, timeout: float = 5.0) -> list[bytes]:
    """The next `count` messages of `sub`, failing if they do not arrive within `timeout`."""
    got: list[bytes] = []
    iterator = aiter(sub)
    async with asyncio.timeout(timeout):
        while len(got) < count:
            got.append(await anext(iterator))
    return got


async def nothing_arrives(sub: Subscription, wait: float = 0.3) -> None:
    iterator = aiter(sub)
    try:
        async with asyncio.timeout(wait):
            message = await anext(iterator)
    except TimeoutError:
        return
    raise AssertionError(f"expected no message, got {message!r}")


# ---- the contract, for every backend ------------------------------------------------------------


async def test_every_subscriber_gets_every_message_in_order(
    new_pubsub: Factory, prefix: str
) -> None:
    pubsub = await new_pubsub()
    subs = [await pubsub.subscribe(prefix + "room") for _ in range(50)]
    messages = [f"event {i}".encode() for i in range(20)]
    for message in messages:
        await pubsub.publish(prefix + "room", message)
    for sub in subs:
        assert await take(sub, 20) == messages


async def test_one_publisher_is_received_in_publish_order(new_pubsub: Factory, prefix: str) -> None:
    pubsub = await new_pubsub()
    sub = await pubsub.subscribe(prefix + "room")
    messages = [str(i).encode() for i in range(2000)]
    for message in messages:
        await pubsub.publish(prefix + "room", message)
    assert await take(sub, 2000) == messages


async def test_other_channels_are_not_delivered(new_pubsub: Factory, prefix: str) -> None:
    pubsub = await new_pubsub()
    room1 = await pubsub.subscribe(prefix + "room:1")
    room2 = await pubsub.subscribe(prefix + "room:2")
    await pubsub.publish(prefix + "room:2", b"for room 2")
    await pubsub.publish(prefix + "room:10", b"for room 10")  # nobody listens: dropped silently
    assert await take(room2, 1) == [b"for room 2"]
    await nothing_arrives(room1)


async def test_messages_before_subscribing_are_not_delivered(
    new_pubsub: Factory, prefix: str
) -> None:
    pubsub = await new_pubsub()
    early = await pubsub.subscribe(prefix + "room")
    await pubsub.publish(prefix + "room", b"before")
    assert await take(early, 1) == [b"before"]  # it has gone past by now
    late = await pubsub.subscribe(prefix + "room")
    await pubsub.publish(prefix + "room", b"after")
    assert await take(late, 1) == [b"after"]
    assert await take(early, 1) == [b"after"]


async def test_a_message_published_right_after_subscribe_returns_arrives(
    new_pubsub: Factory, prefix: str
) -> None:
    """No window between subscribe() returning and the subscription being live."""
    pubsub = await new_pubsub()
    for i in range(20):
        sub = await pubsub.subscribe(f"{prefix}room:{i}")
        await pubsub.publish(f"{prefix}room:{i}", b"hello")
        assert await take(sub, 1) == [b"hello"]
        await sub.close()


async def test_closing_a_subscription_ends_it_and_stops_delivery(
    new_pubsub: Factory, prefix: str
) -> None:
    pubsub = await new_pubsub()
    leaving = await pubsub.subscribe(prefix + "room")
    staying = await pubsub.subscribe(prefix + "room")
    await leaving.close()
    await pubsub.publish(prefix + "room", b"after close")
    assert [m async for m in leaving] == []  # the iterator ends instead of waiting
    assert await take(staying, 1) == [b"after close"]
    await leaving.close()  # closing twice is harmless


async def test_a_subscription_closed_while_waiting_wakes_its_reader(
    new_pubsub: Factory, prefix: str
) -> None:
    pubsub = await new_pubsub()
    sub = await pubsub.subscribe(prefix + "room")

    async def read_all() -> list[bytes]:
        return [m async for m in sub]

    reader = asyncio.create_task(read_all())
    await asyncio.sleep(0.05)
    await sub.close()
    async with asyncio.timeout(2):
        assert await reader == []


async def test_closing_the_pubsub_ends_every_subscription(new_pubsub: Factory, prefix: str) -> None:
    pubsub = await new_pubsub()
    subs = [await pubsub.subscribe(prefix + str(i)) for i in range(3)]
    await pubsub.close()
    for sub in subs:
        assert [m async for m in sub] == []
    with pytest.raises(RuntimeError, match="expected an open pub/sub, got a closed one"):
        await pubsub.publish(prefix + "0", b"late")


async def test_a_slow_subscriber_overflows_without_holding_anyone_up(
    new_pubsub: Factory, prefix: str
) -> None:
    pubsub = await new_pubsub()
    slow = await pubsub.subscribe(prefix + "room", max_pending=10)
    fast = await pubsub.subscribe(prefix + "room")
    messages = [str(i).encode() for i in range(200)]
    started = time.monotonic()
    for message in messages:
        await pubsub.publish(prefix + "room", message)
    assert time.monotonic() - started < 2.0, "publishing waited for a subscriber"
    assert await take(fast, 200) == messages
    # The slow one gets what it had buffered, then the signal to resynchronise.
    received: list[bytes] = []
    with pytest.raises(SubscriptionOverflow, match="fell more than 10 messages behind"):
        async with asyncio.timeout(5):
            async for message in slow:
                received.append(message)
    assert received == messages[:10]
    # The overflowed subscription is gone; a new one works normally.
    again = await pubsub.subscribe(prefix + "room")
    await pubsub.publish(prefix + "room", b"next")
    assert await take(again, 1) == [b"next"]
    assert await take(fast, 1) == [b"next"]


async def test_binary_payloads_arrive_byte_for_byte(new_pubsub: Factory, prefix: str) -> None:
    pubsub = await new_pubsub()
    sub = await pubsub.subscribe(prefix + "bin")
    payloads = [
        bytes(range(256)),
        b"",
        b"\r\n*3\r\n$7\r\nmessage\r\n",  # looks like the Redis protocol
        "ünïcødé ✓ 🎉".encode(),
        secrets.token_bytes(1 << 20),
    ]
    for payload in payloads:
        await pubsub.publish(prefix + "bin", payload)
    assert await take(sub, len(payloads)) == payloads


async def test_concurrent_publishers_each_keep_their_order(
    new_pubsub: Factory, prefix: str
) -> None:
    publishers = [await new_pubsub() for _ in range(3)]
    sub = await publishers[0].subscribe(prefix + "room")

    async def publish_series(pubsub: PubSub, name: str) -> None:
        for i in range(300):
            await pubsub.publish(prefix + "room", f"{name}:{i}".encode())

    await asyncio.gather(*(publish_series(publishers[n % 3], f"p{n}") for n in range(6)))
    received = await take(sub, 6 * 300, timeout=10)
    for n in range(6):
        mine = [int(m.split(b":")[1]) for m in received if m.startswith(f"p{n}:".encode())]
        assert mine == list(range(300)), f"publisher p{n} out of order or incomplete"


async def test_publishing_text_instead_of_bytes_is_refused(
    new_pubsub: Factory, prefix: str
) -> None:
    pubsub = await new_pubsub()
    with pytest.raises(TypeError, match="expected bytes to publish, got str"):
        await pubsub.publish(prefix + "room", "text")  # type: ignore[arg-type]


async def test_backend_names() -> None:
    assert MemoryPubSub.name == "memory"
    assert RedisPubSub.name == "redis"
    with pytest.raises(ValueError, match="expected memory:// or redis://"):
        make_pubsub("kafka://localhost")


# ---- Redis: several processes --------------------------------------------------------------------


@pytest.mark.redis
async def test_two_processes_see_each_others_messages(redis_url: str, prefix: str) -> None:
    node_a, node_b = RedisPubSub(redis_url), RedisPubSub(redis_url)
    await node_a.start()
    await node_b.start()
    try:
        on_a = await node_a.subscribe(prefix + "room:1")
        on_b = await node_b.subscribe(prefix + "room:1")
        await node_a.publish(prefix + "room:1", b"from a")
        await node_b.publish(prefix + "room:1", b"from b")
        assert await take(on_a, 2) == [b"from a", b"from b"]
        assert await take(on_b, 2) == [b"from a", b"from b"]
    finally:
        await node_a.close()
        await node_b.close()


@pytest.mark.redis
async def test_redis_follows_the_first_and_last_local_subscriber(
    redis_url: str, prefix: str
) -> None:
    pubsub = RedisPubSub(redis_url)
    await pubsub.start()
    try:
        first = await pubsub.subscribe(prefix + "room")
        second = await pubsub.subscribe(prefix + "room")
        assert pubsub.redis_channels == {prefix + "room"}
        await first.close()
        await asyncio.sleep(0.1)
        assert pubsub.redis_channels == {prefix + "room"}, "unsubscribed while one remained"
        await second.close()
        await eventually(lambda: not pubsub.redis_channels, 2, every=0.01)
        # Resubscribing right after the last one left works (UNSUBSCRIBE then SUBSCRIBE).
        third = await pubsub.subscribe(prefix + "room")
        await pubsub.publish(prefix + "room", b"back")
        assert await take(third, 1) == [b"back"]
    finally:
        await pubsub.close()


# ---- Redis: a private server that the tests may kill -------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = start_private_redis(tmp_path)
    yield server
    server.kill()


@pytest.mark.redis
async def test_each_process_uses_two_connections_however_many_channels(
    private_redis: PrivateRedis, prefix: str
) -> None:
    pubsub = RedisPubSub(private_redis.url)
    await pubsub.start()
    try:
        subs = [await pubsub.subscribe(f"{prefix}room:{i}") for i in range(100)]
        for i in range(100):
            await pubsub.publish(f"{prefix}room:{i}", b"x")
        for sub in subs:
            assert await take(sub, 1) == [b"x"]
        assert private_redis.client_count() == 2  # one publishing, one subscribed
    finally:
        await pubsub.close()


@pytest.mark.redis
async def test_losing_redis_cuts_subscriptions_off_and_they_recover(
    private_redis: PrivateRedis, prefix: str
) -> None:
    pubsub = RedisPubSub(private_redis.url, reconnect_max_delay=0.2)
    await pubsub.start()
    try:
        sub = await pubsub.subscribe(prefix + "room")
        await pubsub.publish(prefix + "room", b"before")
        assert await take(sub, 1) == [b"before"]

        private_redis.kill()
        # The owner learns at once that messages may be missing, to resynchronise from storage.
        with pytest.raises(SubscriptionOverflow, match="lost the connection to Redis"):
            await take(sub, 1)
        with pytest.raises(ConnectionError, match=r"expected Redis at .* to accept PUBLISH"):
            await pubsub.publish(prefix + "room", b"lost")

        # Subscribing during the outage waits for Redis instead of returning a dead subscription.
        pending = asyncio.create_task(pubsub.subscribe(prefix + "room"))
        await asyncio.sleep(0.3)
        assert not pending.done()
        await asyncio.to_thread(private_redis.start)
        async with asyncio.timeout(10):
            again = await pending
        await pubsub.publish(prefix + "room", b"after")
        assert await take(again, 1) == [b"after"]
        assert pubsub.reconnects == 1
    finally:
        await pubsub.close()


@pytest.mark.redis
async def test_a_restart_between_messages_is_noticed_by_every_process(
    private_redis: PrivateRedis, prefix: str
) -> None:
    """An idle restart still cuts subscriptions off: messages sent in between were lost."""
    node_a = RedisPubSub(private_redis.url, reconnect_max_delay=0.2)
    node_b = RedisPubSub(private_redis.url, reconnect_max_delay=0.2)
    await node_a.start()
    await node_b.start()
    try:
        on_b = await node_b.subscribe(prefix + "room")
        private_redis.kill()
        await asyncio.to_thread(private_redis.start)
        with pytest.raises(SubscriptionOverflow):
            await take(on_b, 1)
        on_b = await node_b.subscribe(prefix + "room")
        # node_a's idle publishing connection died too; it reconnects on the next publish.
        await node_a.publish(prefix + "room", b"after restart")
        assert await take(on_b, 1) == [b"after restart"]
    finally:
        await node_a.close()
        await node_b.close()


@pytest.mark.redis
async def test_a_silent_redis_is_detected_by_the_keepalive(
    private_redis: PrivateRedis, prefix: str
) -> None:
    """A Redis that stops answering (paused, network gone) is treated like a lost one."""
    assert private_redis.proc is not None
    pubsub = RedisPubSub(private_redis.url, ping_interval=0.2, command_timeout=0.5)
    await pubsub.start()
    try:
        sub = await pubsub.subscribe(prefix + "room")
        private_redis.proc.send_signal(19)  # SIGSTOP: the socket stays open, nothing answers
        try:
            with pytest.raises(SubscriptionOverflow, match="no answer"):
                await take(sub, 1, timeout=5)
        finally:
            private_redis.proc.send_signal(18)  # SIGCONT
    finally:
        await pubsub.close()


async def test_starting_without_redis_fails_loudly() -> None:
    pubsub = RedisPubSub(f"redis://:secret@127.0.0.1:{free_port()}/0", start_timeout=0.5)
    with pytest.raises(ConnectionError, match=r"expected Redis at redis://:\*\*\*@127") as info:
        await pubsub.start()
    assert "secret" not in str(info.value)


async def test_subscribing_before_start_is_a_clear_error(redis_url: str) -> None:
    pubsub = RedisPubSub(redis_url)
    with pytest.raises(RuntimeError, match="expected a started pub/sub"):
        await pubsub.subscribe("never")
    await pubsub.close()


async def test_subscribers_coming_and_going_never_miss_a_later_message(
    new_pubsub: Factory, prefix: str
) -> None:
    """Channels often lose their last subscriber and gain a first one while commands are in
    flight (UNSUBSCRIBE, then SUBSCRIBE); still no live subscriber misses a message."""
    listener, publisher = await new_pubsub(), await new_pubsub()

    async def visitor(n: int) -> None:
        for round_ in range(15):
            channel = f"{prefix}room:{(n * 7 + round_) % 10}"
            sub = await listener.subscribe(channel)
            marker = f"{n}/{round_}".encode()
            await publisher.publish(channel, marker)
            async with asyncio.timeout(5):
                async for message in sub:  # others' markers may come first
                    if message == marker:
                        break
            await sub.close()
            await asyncio.sleep(0)

    await asyncio.gather(*(visitor(n) for n in range(12)))
