"""Bad media input, and connections that die, get a clear `error`; the room goes on working.

Python clients speak the media signaling of docs/protocol.md over the room socket; a real
aiortc publisher (the host) and a real aiortc viewer keep exchanging frames through the node's
SFU the whole time, and after every refusal we check that they still do and that chat still
flows, and that the refused socket itself is still usable. The seat limit has a node of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiortc import RTCSessionDescription
from media_support import start_media_node
from rtc_support import (
    Account,
    Frame,
    Publisher,
    Refused,
    RoomSocket,
    Subscriber,
    accounts,
    live_conversation,
    loopback_ice,
    new_pc,
    publish,
    publish_offer,
    room_socket,
    set_role,
    vanish,
    wait_connected,
)

from conftest import LiveNode

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

CONSENT_EXPIRY = 60.0  # s: ICE consent (RFC 7675) expires after about 30 s in aioice

# An SDP answer where the node expects an offer.
SOME_ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@dataclass
class Room:
    node: LiveNode
    slug: str
    new_account: Callable[[str], Any]
    host: Account
    host_sock: RoomSocket
    publisher: Publisher
    viewer_sock: RoomSocket
    viewer: Subscriber
    stack: AsyncExitStack

    async def socket(self, who: Account | None, name: str = "") -> RoomSocket:
        return await self.stack.enter_async_context(room_socket(self.node, self.slug, who, name))

    async def still_works(self, refused: RoomSocket | None = None) -> None:
        """The healthy pair still exchanges frames, chat still flows, and the socket that was
        refused is still usable (the protocol keeps a connection open after an error)."""
        await self.viewer.wait_frames(self.host.id, minimum=15)
        since = self.viewer_sock.mark()
        answer = await self.host_sock.request("chat.send", body="still here?")
        assert answer["type"] == "ack", f"chat after a media error: expected ack, got {answer}"
        await self.viewer_sock.wait_for(
            lambda f: (
                f.get("type") == "chat.message" and f["data"]["message"]["body"] == "still here?"
            ),
            "the host's chat message",
            since=since,
        )
        if refused is not None:
            since = refused.mark()
            await refused.send(type="ping")
            await refused.wait_for(lambda f: f.get("type") == "pong", "pong", since=since)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    live = start_media_node(tmp_path_factory.mktemp("media-errors"))
    yield live
    live.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def room(node: LiveNode) -> AsyncIterator[Room]:
    loopback_ice()
    async with AsyncExitStack() as stack, accounts(node) as new_account:
        host = await new_account("Hana Host")
        slug = await live_conversation(host)
        host_sock = await stack.enter_async_context(room_socket(node, slug, host, "host"))
        consent = await host_sock.request("media.consent")
        assert consent["type"] == "ack", f"media.consent: expected ack, got {consent}"
        publisher = await publish(host_sock)
        stack.push_async_callback(publisher.close)
        await wait_connected(publisher.pc, "the host's publishing connection")
        member = await new_account("Vera Viewer")
        viewer_sock = await stack.enter_async_context(room_socket(node, slug, member, "viewer"))
        viewer = Subscriber(viewer_sock)
        stack.push_async_callback(viewer.close)
        await viewer.start()
        await viewer.wait_frames(host.id, minimum=15)
        yield Room(node, slug, new_account, host, host_sock, publisher, viewer_sock, viewer, stack)


async def test_garbage_sdp_is_bad_sdp(room: Room) -> None:
    answer = await room.host_sock.request(
        "media.publish", source="screen", sdp="v=0\r\nthis is not a session description\r\n"
    )
    assert answer["type"] == "error" and answer["code"] == "bad_sdp", answer
    assert answer["message"], "the error should say what is wrong"
    await room.still_works(room.host_sock)
    # An answer where an offer belongs is the wrong shape too.
    answer = await room.host_sock.request("media.publish", source="screen", sdp=SOME_ANSWER)
    assert answer["type"] == "error" and answer["code"] == "bad_sdp", answer
    await room.still_works(room.host_sock)


async def test_offer_from_the_audience_is_not_on_stage(room: Room) -> None:
    someone = await room.new_account("Aud Ience")
    sock = await room.socket(someone, "audience")
    pc = await publish_offer()
    try:
        with pytest.raises(Refused) as refused:
            await publish(sock, pc=pc)
        assert refused.value.code == "not_on_stage", refused.value.frame
    finally:
        await pc.close()
    # Anonymous watchers cannot publish either.
    anonymous = await room.socket(None, "anonymous")
    pc = await publish_offer()
    try:
        with pytest.raises(Refused) as refused:
            await publish(anonymous, pc=pc)
        assert refused.value.code in ("not_on_stage", "not_signed_in"), refused.value.frame
    finally:
        await pc.close()
    await room.still_works(sock)


async def test_publishing_without_consent_is_refused_until_consent(room: Room) -> None:
    speaker = await room.new_account("Sam Speaker")
    await set_role(room.host, room.slug, speaker.id, "speaker")
    sock = await room.socket(speaker, "speaker")
    with pytest.raises(Refused) as refused:
        await publish(sock)
    assert refused.value.code == "consent_required", refused.value.frame
    await room.still_works(sock)

    since = room.viewer_sock.mark()
    consent = await sock.request("media.consent")
    assert consent["type"] == "ack", consent
    await room.viewer_sock.wait_for(
        lambda f: f.get("type") == "stage.consent" and f["data"]["user"]["id"] == speaker.id,
        "the stage.consent room event",
        since=since,
    )
    publisher = await publish(sock)
    try:
        await wait_connected(publisher.pc, "the speaker's publishing connection")
        # The viewer follows everyone on stage by default: the new speaker arrives.
        await room.viewer.wait_frames(speaker.id, minimum=10)
    finally:
        await publisher.close()
    await room.still_works()


async def test_offer_without_vp8_or_opus_is_unsupported_codec(room: Room) -> None:
    pc = await publish_offer(video_codec="video/H264", audio_codec="audio/PCMU")
    try:
        with pytest.raises(Refused) as refused:
            await publish(room.host_sock, source="screen", pc=pc)
        assert refused.value.code == "unsupported_codec", refused.value.frame
    finally:
        await pc.close()
    await room.still_works(room.host_sock)


async def test_subscribing_to_someone_not_publishing_is_no_such_track(room: Room) -> None:
    someone = await room.new_account("Curious Person")
    sock = await room.socket(someone, "curious")
    answer = await sock.request("media.subscribe", user_ids=[999])
    assert answer["type"] == "error" and answer["code"] == "no_such_track", answer
    await room.still_works(sock)


async def test_answer_to_an_offer_that_does_not_exist_is_no_such_track(room: Room) -> None:
    someone = await room.new_account("Late Answer")
    sock = await room.socket(someone, "late")
    subscriber = Subscriber(sock, answer=False)
    scratch = new_pc()
    try:
        offer = await subscriber.start()
        # A real answer to the real offer, so that only the version is wrong.
        await scratch.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await scratch.setLocalDescription(await scratch.createAnswer())
        sdp = scratch.localDescription.sdp
        answer = await sock.request("media.answer", version=offer["version"] + 41, sdp=sdp)
        assert answer["type"] == "error" and answer["code"] == "no_such_track", answer
        # From a socket that has no subscription at all.
        other = await room.socket(await room.new_account("No Subscription"), "unsubscribed")
        answer = await other.request("media.answer", version=offer["version"], sdp=sdp)
        assert answer["type"] == "error" and answer["code"] == "no_such_track", answer
    finally:
        await scratch.close()
        await subscriber.close()
    await room.still_works(sock)


async def test_peers_that_vanish_get_ice_failed_and_leave_the_stage(room: Room) -> None:
    """A publisher and a viewer whose network goes silent (sockets gone, room sockets open) are
    told `ice_failed` once ICE consent expires, and the others see them leave."""
    speaker = await room.new_account("Gone Speaker")
    await set_role(room.host, room.slug, speaker.id, "speaker")
    speaker_sock = await room.socket(speaker, "gone speaker")
    assert (await speaker_sock.request("media.consent"))["type"] == "ack"
    publisher = await publish(speaker_sock)
    viewer_sock = await room.socket(await room.new_account("Gone Viewer"), "gone viewer")
    viewer = Subscriber(viewer_sock)
    try:
        await wait_connected(publisher.pc, "the speaker's publishing connection")
        await viewer.start()
        await viewer.wait_frames(speaker.id)
        await room.viewer.wait_frames(speaker.id)
        since = room.viewer_sock.mark()
        vanish(publisher.pc)
        viewer.vanish()

        def lost(f: Frame) -> bool:
            return f.get("type") == "error" and f.get("code") == "ice_failed"

        # Consent checks run every 5 s and give up after 6 misses (aioice): about 30 s.
        await asyncio.gather(
            viewer_sock.wait_for(lost, "ice_failed for the vanished viewer", CONSENT_EXPIRY),
            speaker_sock.wait_for(lost, "ice_failed for the vanished speaker", CONSENT_EXPIRY),
        )
        ended = await speaker_sock.wait_for(
            lambda f: f.get("type") == "media.ended", "media.ended for the vanished speaker"
        )
        assert ended["source"] == "camera" and ended["code"] == "ice_failed", ended
        await room.viewer_sock.wait_for(
            lambda f: (
                f.get("type") == "media.publishers"
                and speaker.id not in {p["user_id"] for p in f["publishers"]}
            ),
            "media.publishers without the vanished speaker",
            since=since,
        )
    finally:
        await viewer.close()
        await publisher.close()
    await room.still_works(viewer_sock)


# ---- the node's live seat limit --------------------------------------------------------------


@pytest.fixture
def capped_node(tmp_path: Path) -> Iterator[LiveNode]:
    live = start_media_node(tmp_path / "capped", JUNTO_MEDIA_MAX_VIEWERS="1")
    yield live
    live.stop()


async def test_viewers_beyond_the_seat_limit_get_seats_full_speakers_never(
    capped_node: LiveNode,
) -> None:
    loopback_ice()
    node = capped_node
    async with AsyncExitStack() as stack, accounts(node) as new_account:
        host = await new_account("Hana Host")
        slug = await live_conversation(host)
        host_sock = await stack.enter_async_context(room_socket(node, slug, host, "host"))
        assert host_sock.welcome["media"]["max_viewers"] == 1, host_sock.welcome.get("media")
        assert (await host_sock.request("media.consent"))["type"] == "ack"
        publisher = await publish(host_sock)
        stack.push_async_callback(publisher.close)

        first = await stack.enter_async_context(
            room_socket(node, slug, await new_account("First Viewer"), "first")
        )
        seated = Subscriber(first)
        stack.push_async_callback(seated.close)
        await seated.start()
        await seated.wait_frames(host.id)
        await first.wait_for(
            lambda f: f.get("type") == "media.viewers" and f.get("viewers") == 1,
            "media.viewers counting the first viewer",
        )

        # The second viewer, signed in or anonymous, is told the seats are taken.
        second = await stack.enter_async_context(
            room_socket(node, slug, await new_account("Second Viewer"), "second")
        )
        answer = await second.request("media.subscribe")
        assert answer["type"] == "error" and answer["code"] == "seats_full", answer
        assert "1" in answer["message"], f"the message should give the limit: {answer}"
        anonymous = await stack.enter_async_context(room_socket(node, slug, None, "anonymous"))
        answer = await anonymous.request("media.subscribe")
        assert answer["type"] == "error" and answer["code"] == "seats_full", answer

        # A speaker is never capped: on stage, they subscribe and receive the host.
        speaker = await new_account("Sam Speaker")
        await set_role(host, slug, speaker.id, "speaker")
        speaker_sock = await stack.enter_async_context(room_socket(node, slug, speaker, "speaker"))
        assert (await speaker_sock.request("media.consent"))["type"] == "ack"
        own = await publish(speaker_sock)
        stack.push_async_callback(own.close)
        on_stage = Subscriber(speaker_sock)
        stack.push_async_callback(on_stage.close)
        await on_stage.start()
        await on_stage.wait_frames(host.id)

        # The seated viewer still receives, and when they leave the seat is free again.
        await seated.wait_frames(host.id)
        assert (await first.request("media.unsubscribe"))["type"] == "ack"
        late = Subscriber(second)
        stack.push_async_callback(late.close)
        await late.start()
        await late.wait_frames(host.id)


async def test_harness_peers_gather_loopback() -> None:
    """The harness itself: aiortc peers made here offer 127.0.0.1, the node's only address."""
    loopback_ice()
    pc = new_pc()
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert "127.0.0.1" in pc.localDescription.sdp, pc.localDescription.sdp
    finally:
        await pc.close()
