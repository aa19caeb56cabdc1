"""The embedded SFU's parts on their own: bounded legs, paced key-frame requests, the active
speaker, TURN credentials, and the media settings."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from helpers import eventually
from junto.config import Settings, load_settings
from junto.media import ice_servers
from junto.media.embedded import forward
from junto.media.embedded.forward import TrackFanout
from junto.media.embedded.levels import LevelMeter, pick_active
from junto.media.vp8 import is_vp8_keyframe

KEY = bytes([0x10, 0x02, 0x00]) + b"\x9d\x01\x2a" + b"\x00" * 20  # bit 0 clear: key frame
DELTA = bytes([0x31, 0x02, 0x00]) + b"\x00" * 20


class QueueTrack(MediaStreamTrack):
    """A published track fed by the test: what a pass-through receiver's track yields."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def recv(self) -> Any:
        item = await self.queue.get()
        if item is None:
            raise MediaStreamError
        return item


def packet(data: bytes, pts: int) -> av.Packet[av.stream.Stream]:
    p = av.Packet(data)
    p.pts = pts
    return p


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_vp8_keyframe_bit() -> None:
    assert is_vp8_keyframe(KEY)
    assert not is_vp8_keyframe(DELTA)
    assert not is_vp8_keyframe(b"")


async def test_new_video_leg_starts_at_a_key_frame_and_asks_for_one() -> None:
    source = QueueTrack("video")
    plis: list[float] = []
    fanout = TrackFanout(source, send_pli=lambda: plis.append(1), taps=list)
    fanout.start()
    leg = fanout.add_leg()
    assert plis, "a new video subscriber must ask the publisher for a key frame"
    for i, data in enumerate([DELTA, DELTA, KEY, DELTA]):
        source.queue.put_nowait(packet(data, i))
    await settle()
    first = await leg.recv()
    assert bytes(first) == KEY, "a subscriber must not start decoding from a delta frame"
    assert bytes(await leg.recv()) == DELTA
    assert leg.dropped == 2
    fanout.close()


async def test_a_leg_nobody_reads_stays_bounded() -> None:
    source = QueueTrack("video")
    plis: list[int] = []
    fanout = TrackFanout(source, send_pli=lambda: plis.append(1), taps=list)
    fanout.start()
    stuck = fanout.add_leg()  # never read: a subscriber that stopped consuming
    healthy = fanout.add_leg()
    received = 0
    for i in range(2000):
        source.queue.put_nowait(packet(KEY if i % 100 == 0 else DELTA, i))
        if i % 50 == 49:
            await settle()
            while healthy.queued:
                await healthy.recv()
                received += 1
    await settle()
    assert stuck.queued <= forward.MAX_VIDEO_FRAMES
    assert stuck.dropped > 1500
    assert received > 1900, "a stuck subscriber must not hold back the others"
    fanout.close()
    with pytest.raises(MediaStreamError):
        await stuck.recv()


async def test_audio_leg_drops_oldest_when_full() -> None:
    source = QueueTrack("audio")
    fanout = TrackFanout(source, send_pli=lambda: None, taps=list)
    fanout.start()
    leg = fanout.add_leg()
    total = forward.MAX_AUDIO_FRAMES + 30
    for i in range(total):
        source.queue.put_nowait(packet(b"\xfc\xff\xfe", i))
    await settle()
    await eventually(lambda: leg.queued == forward.MAX_AUDIO_FRAMES, 2, every=0.01)
    assert (await leg.recv()).pts == 30  # the 30 oldest went, the newest are kept
    fanout.close()


async def test_key_frame_requests_are_paced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forward, "PLI_MIN_INTERVAL", 0.2)
    plis: list[float] = []
    loop = asyncio.get_running_loop()
    fanout = TrackFanout(QueueTrack("video"), send_pli=lambda: plis.append(loop.time()), taps=list)
    for _ in range(20):
        fanout.request_keyframe()
    await asyncio.sleep(0.3)
    assert len(plis) == 2, "twenty joins in a burst make one request now and one after the pause"
    assert plis[1] - plis[0] >= 0.19
    fanout.close()


async def test_taps_see_every_packet_and_a_failing_tap_hurts_nobody() -> None:
    source = QueueTrack("audio")
    seen: list[int] = []

    def bad(kind: str, pkt: Any) -> None:
        raise RuntimeError("broken recorder")

    fanout = TrackFanout(
        source, send_pli=lambda: None, taps=lambda: [bad, lambda k, p: seen.append(p.pts)]
    )
    fanout.start()
    leg = fanout.add_leg()
    for i in range(10):
        source.queue.put_nowait(packet(b"\xfc", i))
    await settle()
    assert seen == list(range(10))
    assert leg.queued == 10
    source.queue.put_nowait(None)  # the publisher left
    await settle()
    assert fanout.ended.is_set()
    assert leg.readyState == "ended"


def test_level_meter_averages_rfc6464_levels() -> None:
    meter = LevelMeter()
    assert meter.take() == 0.0
    for dbov in (0, 0, 127, 127):
        meter.add(dbov)
    assert meter.take() == pytest.approx(0.5)
    assert meter.take() == 0.0  # each take starts a new window


def test_active_speaker_has_hysteresis() -> None:
    assert pick_active({}, None) is None
    assert pick_active({1: 0.05, 2: 0.1}, None) is None  # nobody clearly speaking
    assert pick_active({1: 0.6, 2: 0.1}, None) == 1
    assert pick_active({1: 0.5, 2: 0.55}, 1) == 1  # a slight edge does not steal the highlight
    assert pick_active({1: 0.3, 2: 0.7}, 1) == 2
    assert pick_active({1: 0.0, 2: 0.0}, 2) == 2  # silence keeps the last speaker
    assert pick_active({1: 0.0}, 2) is None  # who left is not the active speaker


def test_turn_credentials_follow_the_coturn_rest_scheme() -> None:
    user, password = ice_servers.turn_credentials("s3cret", "peer.1", 3600, now=1_000_000)
    assert user == "1003600:peer.1"
    expected = base64.b64encode(hmac.new(b"s3cret", user.encode(), hashlib.sha1).digest())
    assert password == expected.decode()


def test_browser_ice_servers(tmp_path: Any) -> None:
    plain = Settings(data_dir=tmp_path)
    assert ice_servers.for_browser(plain, "x") == []
    full = Settings(
        data_dir=tmp_path,
        stun_urls=("stun:stun.example.org:3478",),
        turn_urls=("turn:turn.example.org:3478?transport=udp",),
        turn_secret="s3cret",
    )
    servers = ice_servers.for_browser(full, "x")
    assert servers[0] == {"urls": ["stun:stun.example.org:3478"]}
    assert servers[1]["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    assert servers[1]["username"].endswith(":x") and servers[1]["credential"]
    assert len(ice_servers.for_node(full)) == 2


def test_media_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUNTO_MEDIA_ADDRESSES", "127.0.0.1, 10.0.0.5")
    monkeypatch.setenv("JUNTO_MEDIA_MAX_VIEWERS", "7")
    monkeypatch.setenv("JUNTO_STUN_URLS", "stun:a:3478 stun:b:3478")
    settings = load_settings()
    assert settings.media_addresses == ("127.0.0.1", "10.0.0.5")
    assert settings.media_max_viewers == 7
    assert settings.stun_urls == ("stun:a:3478", "stun:b:3478")
    assert settings.media_backend == "embedded"


class Heard:
    """A MediaListener that keeps what the SFU told it."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, str]] = []

    def subscription_offer(self, room: int, peer: str, offer: Any) -> None:
        pass

    def publications_changed(self, room: int, publications: list[Any]) -> None:
        pass

    def active_speaker(self, room: int, user_id: int | None, levels: dict[int, float]) -> None:
        pass

    def peer_failed(self, room: int, peer: str, target: str, message: str) -> None:
        self.failed.append((peer, target))


async def test_a_viewer_who_never_answers_gives_back_the_seat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import VideoStreamTrack

    from junto.media.embedded import sfu as sfu_module
    from junto.media.embedded.ice import use_addresses

    monkeypatch.setattr(sfu_module, "ANSWER_TIMEOUT", 0.5)
    use_addresses(["127.0.0.1"])
    sfu = sfu_module.EmbeddedSfu()
    heard = Heard()
    sfu.set_listener(heard)
    await sfu.start()
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        publisher.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await publisher.setLocalDescription(await publisher.createOffer())
        answer = await sfu.publish(1, "speaker", 7, "camera", publisher.localDescription.sdp)
        await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        offer = await sfu.subscribe(1, "viewer", None)
        assert offer is not None and [t.user_id for t in offer.tracks] == [7]
        assert sfu.viewer_count() == 1
        # No answer comes: the SFU gives up on the viewer after ANSWER_TIMEOUT.
        await eventually(lambda: heard.failed == [("viewer", "subscribe")], 5)
        assert sfu.viewer_count() == 0
    finally:
        await sfu.stop()
        await publisher.close()


def test_every_media_error_code_is_a_protocol_error_code() -> None:
    from junto.media.base import MediaErrorCode
    from junto.room.protocol import ErrorCode

    assert {c.value for c in MediaErrorCode} <= {c.value for c in ErrorCode}
