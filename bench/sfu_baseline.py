"""The SFU benchmark's baseline: the naive aiortc SFU, built on `MediaRelay`.

Each publisher's tracks are decoded once (aiortc's receivers always decode), `MediaRelay` hands
the decoded frames to every subscriber's sender, and each sender encodes them again for its
subscriber: VP8 and Opus, per subscriber. That is what aiortc's own examples do and what the
embedded SFU must beat by forwarding encoded packets instead.

Signaling is as small as it can be, on the same server stack as the node (Starlette on uvicorn):
- `POST /publish` `{"sdp": offer}` -> `{"id", "sdp": answer}`: a publisher's offer (audio+video).
- `POST /subscribe` `{"sdp": offer}` -> `{"id", "sdp": answer}`: the subscriber offers one
  recvonly audio and one recvonly video transceiver per publisher (in publishing order); the
  server attaches a relay of each publisher's tracks to them.
- `POST /close` `{"id"}` closes a peer connection; `GET /healthz`.

Each publisher track also feeds a drain reader, so decoding runs (and is measured) even with no
subscriber, as in any SFU that must keep a source's decoder state current. Relays are
`buffered=False` (a slow encoder sees the latest frame, not a growing queue).

    python bench/sfu_baseline.py --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
from typing import Any

import uvicorn
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from sfu_media import loopback_ice


class Relay:
    """Every peer connection of the one room and the relayed tracks."""

    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.ids = itertools.count(1)
        self.pcs: dict[int, RTCPeerConnection] = {}
        self.publishers: list[dict[str, MediaStreamTrack]] = []
        self.drains: list[asyncio.Task[None]] = []

    def new_pc(self) -> tuple[int, RTCPeerConnection]:
        # max-bundle: aiortc's "balanced" answerer mis-routes a second bundled video m-line
        # (see sfu_clients.new_pc).
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        peer_id = next(self.ids)
        self.pcs[peer_id] = pc
        return peer_id, pc

    async def publish(self, offer_sdp: str) -> dict[str, Any]:
        peer_id, pc = self.new_pc()
        tracks: dict[str, MediaStreamTrack] = {}

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            tracks[track.kind] = track
            self.drains.append(asyncio.create_task(self._drain(self.relay.subscribe(track))))

        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self.publishers.append(tracks)
        return {"id": peer_id, "sdp": pc.localDescription.sdp}

    @staticmethod
    async def _drain(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    async def subscribe(self, offer_sdp: str) -> dict[str, Any]:
        peer_id, pc = self.new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for tracks in self.publishers:
            for kind in ("audio", "video"):
                if kind in tracks:
                    # addTrack takes the offer's next unused transceiver of this kind.
                    pc.addTrack(self.relay.subscribe(tracks[kind], buffered=False))
        await pc.setLocalDescription(await pc.createAnswer())
        return {"id": peer_id, "sdp": pc.localDescription.sdp}

    async def close(self, peer_id: int) -> None:
        pc = self.pcs.pop(peer_id, None)
        if pc is not None:
            await pc.close()

    async def close_all(self) -> None:
        for task in self.drains:
            task.cancel()
        await asyncio.gather(*(pc.close() for pc in self.pcs.values()), return_exceptions=True)
        self.pcs.clear()


def build_app() -> Starlette:
    room = Relay()

    async def publish(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse(await room.publish(str(body["sdp"])))

    async def subscribe(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse(await room.subscribe(str(body["sdp"])))

    async def close(request: Request) -> JSONResponse:
        body = await request.json()
        await room.close(int(body["id"]))
        return JSONResponse({"ok": True})

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        await room.close_all()

    return Starlette(
        routes=[
            Route("/publish", publish, methods=["POST"]),
            Route("/subscribe", subscribe, methods=["POST"]),
            Route("/close", close, methods=["POST"]),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    loopback_ice()
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
