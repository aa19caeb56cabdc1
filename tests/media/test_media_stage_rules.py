"""The node, not the browser, enforces who may be on stage: a speaker sent back to the audience,
a blocked speaker and a conversation that ends all stop publishing at once, and the others see
the stage change. Consent is stored per speaker per conversation and shown in the snapshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from media_support import start_media_node
from rtc_support import (
    Refused,
    Subscriber,
    accounts,
    live_conversation,
    loopback_ice,
    publish,
    room_socket,
    set_role,
    wait_connected,
)

from conftest import LiveNode

pytestmark = [pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    live = start_media_node(tmp_path_factory.mktemp("media-rules"))
    yield live
    live.stop()


def publishing(frame: dict[str, object]) -> set[int]:
    return {int(p["user_id"]) for p in frame["publishers"]}  # type: ignore[attr-defined]


async def test_the_stage_rules_stop_publications_the_node_no_longer_allows(node: LiveNode) -> None:
    loopback_ice()
    async with accounts(node) as new_account:
        host = await new_account("Hana Host")
        speaker = await new_account("Sami Speaker")
        slug = await live_conversation(host)
        await set_role(host, slug, speaker.id, "speaker")
        async with (
            room_socket(node, slug, host, "host") as host_sock,
            room_socket(node, slug, speaker, "speaker") as speaker_sock,
            room_socket(node, slug, None, "watcher") as watcher_sock,
        ):
            assert (await speaker_sock.request("media.consent"))["type"] == "ack"
            assert (await host_sock.request("media.consent"))["type"] == "ack"
            # Consent is announced as a room event and kept in the snapshot.
            event = await watcher_sock.wait_for(
                lambda f: (
                    f.get("type") == "stage.consent" and f["data"]["user"]["id"] == speaker.id
                ),
                "the speaker's stage.consent event",
            )
            assert event["data"]["given_at"]
            async with room_socket(node, slug, None, "late") as late:
                snap = await late.wait_for(lambda f: f.get("type") == "snapshot", "snapshot")
                consented = {p["id"]: p["consented"] for p in snap["stage"]["participants"]}
                assert consented[speaker.id] is True

            speaker_pub = await publish(speaker_sock)
            host_pub = await publish(host_sock)
            viewer = Subscriber(watcher_sock)
            try:
                await viewer.start()
                await wait_connected(speaker_pub.pc, "the speaker's publication")
                await viewer.wait_frames(speaker.id)
                await viewer.wait_frames(host.id)

                # Sent back to the audience: the node stops the publication itself.
                since = watcher_sock.mark()
                ended_at = speaker_sock.mark()
                answer = await host_sock.request("stage.remove", user_id=speaker.id)
                assert answer["type"] == "ack", answer
                ended = await speaker_sock.wait_for(
                    lambda f: f.get("type") == "media.ended", "media.ended", since=ended_at
                )
                assert ended["code"] == "stage_left" and ended["source"] == "camera"
                await watcher_sock.wait_for(
                    lambda f: f.get("type") == "media.publishers" and publishing(f) == {host.id},
                    "the stage without the speaker",
                    since=since,
                )
                # ...and may not publish again while in the audience.
                with pytest.raises(Refused) as refused:
                    await publish(speaker_sock)
                assert refused.value.code == "not_on_stage"
                # The viewer still receives the host.
                await viewer.wait_frames(host.id)

                # Brought back and blocked: blocking ends the publication too.
                await set_role(host, slug, speaker.id, "speaker")
                speaker_pub2 = await publish(speaker_sock)
                await viewer.wait_frames(speaker.id)
                ended_at = speaker_sock.mark()
                answer = await host_sock.request("participant.block", user_id=speaker.id)
                assert answer["type"] == "ack", answer
                ended = await speaker_sock.wait_for(
                    lambda f: f.get("type") == "media.ended", "media.ended", since=ended_at
                )
                assert ended["code"] in ("blocked", "stage_left"), ended
                await speaker_pub2.close()

                # The conversation ends: every publication stops.
                ended_at = host_sock.mark()
                await host.call("POST", f"/api/conversations/{slug}/end", {})
                ended = await host_sock.wait_for(
                    lambda f: f.get("type") == "media.ended", "media.ended", since=ended_at
                )
                assert ended["code"] == "conversation_ended"
                with pytest.raises(Refused) as refused:
                    await publish(host_sock)
                assert refused.value.code == "invalid_state"
            finally:
                await viewer.close()
                await speaker_pub.close()
                await host_pub.close()


async def test_screen_share_and_speaker_state_reach_the_audience(node: LiveNode) -> None:
    from rtc_support import publish_offer

    loopback_ice()
    async with accounts(node) as new_account:
        host = await new_account("Hana Host")
        slug = await live_conversation(host)
        async with (
            room_socket(node, slug, host, "host") as host_sock,
            room_socket(node, slug, None, "watcher") as watcher_sock,
        ):
            assert (await host_sock.request("media.consent"))["type"] == "ack"
            camera = await publish(host_sock)
            screen = await publish(host_sock, "screen", await publish_offer(audio_codec=None))
            viewer = Subscriber(watcher_sock)
            try:
                await viewer.start()
                await watcher_sock.wait_for(
                    lambda f: (
                        f.get("type") == "media.offer"
                        and {(t["source"], t["kind"]) for t in f["tracks"]}
                        == {("camera", "audio"), ("camera", "video"), ("screen", "video")}
                    ),
                    "an offer with the camera and the screen",
                )
                await viewer.wait_frames(host.id)
                # Mute and camera off are announced to everyone in the room.
                since = watcher_sock.mark()
                answer = await host_sock.request(
                    "media.state", audio_muted=True, video_off=True, quality="fair"
                )
                assert answer["type"] == "ack", answer
                shown = await watcher_sock.wait_for(
                    lambda f: f.get("type") == "media.publishers" and f["publishers"],
                    "the publishers after media.state",
                    since=since,
                )
                me = shown["publishers"][0]
                assert sorted(me["sources"]) == ["camera", "screen"]
                assert (me["audio_muted"], me["video_off"], me["quality"]) == (True, True, "fair")
                # Stopping the screen share leaves the camera.
                since = watcher_sock.mark()
                assert (await host_sock.request("media.unpublish", source="screen"))[
                    "type"
                ] == "ack"
                shown = await watcher_sock.wait_for(
                    lambda f: (
                        f.get("type") == "media.publishers"
                        and f["publishers"]
                        and f["publishers"][0]["sources"] == ["camera"]
                    ),
                    "the publishers without the screen",
                    since=since,
                )
                await viewer.wait_frames(host.id)
            finally:
                await viewer.close()
                await camera.close()
                await screen.close()
