"""Load generator for `realtime_fanout.py`: many WebSocket watchers in one process.

Run by the benchmark as a separate process (so the clients' CPU is not the server's), it opens
`--clients` connections to one conversation's WebSocket, says `hello` (protocol 1) on each and
records, for every backchannel post whose body carries the marker `bench#<seq>#`, when each
client received it (CLOCK_MONOTONIC, which every process on a Linux machine shares, so the
poster's send time and these receipt times are comparable).

Why not the `websockets` client: at 5,000 connections on a 2-core machine the load generator
competes with the server for CPU, and a client that costs tens of microseconds per frame would
measure itself. This is a minimal RFC 6455 client on a bare `asyncio.Protocol` (uvloop when
installed): it parses frame headers, answers pings, inflates permessage-deflate frames (RFC 7692)
when the server negotiated it, and looks for the marker with one substring search, parsing JSON
only for the first frames of each connection.

Talks to its parent over pipes, one JSON object per line:
  stdout  {"event": "connected", "ready": n, "failed": f, "seconds": s, "errors": {...}}
          {"event": "post", "seq": k, "count": n, "min_ns": t0, "max_ns": t1}  (all ready clients
          received post k)
          {"event": "report", "posts": {"k": [count, min_ns, max_ns]}, "ready": n, "closed": c}
  stdin   "report" (print the report line), "quit" (close every connection and exit)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import sys
import time
import zlib
from collections import Counter
from typing import Any, cast
from urllib.parse import urlsplit

import orjson

MARKER = b"bench#"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 section 7.2.2: appended before inflating


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.buffer.flush()


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client-to-server frame: clients must mask (RFC 6455 section 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    # XOR the payload with the repeated mask in one big-integer operation (fast for small frames).
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + body


class Fleet:
    """Everything the connections share: counters and the per-post receipt records."""

    def __init__(self, hello: bytes) -> None:
        self.hello = hello
        self.ready = 0
        self.closed = 0
        self.deflated = 0  # connections on which the server agreed to permessage-deflate
        self.errors: Counter[str] = Counter()
        # seq -> [count, min_ns, max_ns]
        self.posts: dict[int, list[int]] = {}
        self.announced: set[int] = set()

    def received(self, seq: int, now: int) -> None:
        rec = self.posts.get(seq)
        if rec is None:
            self.posts[seq] = rec = [0, now, now]
        rec[0] += 1
        if now > rec[2]:
            rec[2] = now
        # Clients that were closed under us can never receive it: they are reported apart.
        if rec[0] >= self.ready - self.closed and seq not in self.announced:
            self.announced.add(seq)
            emit({"event": "post", "seq": seq, "count": rec[0], "min_ns": rec[1], "max_ns": rec[2]})


class Client(asyncio.Protocol):
    """One watcher connection."""

    def __init__(self, fleet: Fleet, host: str, path: str, origin: str, deflate: bool) -> None:
        self.fleet = fleet
        self.key = base64.b64encode(os.urandom(16)).decode()
        ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
            f"{ext if deflate else ''}\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.inflater: Any = None
        self.fragments: list[bytes] = []
        self.fragment_compressed = False
        self.is_ready = False
        self.ready_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.is_ready:
            self.fleet.closed += 1
        self._fail("connection closed before ready")

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not self._upgrade(buf[:end]):
                return
            buf = buf[end + 4 :]
        self.buf = self._frames(buf, now)

    # -- internals --------------------------------------------------------------------------
    def _upgrade(self, head: bytes) -> bool:
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            self._fail(f"handshake refused: {status.decode(errors='replace')}")
            return False
        self.upgraded = True
        if b"permessage-deflate" in head.lower():
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self.fleet.deflated += 1
        assert self.transport is not None
        self.transport.write(masked_frame(_OP_TEXT, self.fleet.hello))
        return True

    def _frames(self, buf: bytes, now: int) -> bytes:
        i, n = 0, len(buf)
        while n - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - i < 4:
                    break
                length, head = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
            elif length == 127:
                if n - i < 10:
                    break
                length, head = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            if n - i < head + length:
                break
            payload = buf[i + head : i + head + length]
            i += head + length
            self._frame(b0, payload, now)
        return buf[i:]

    def _frame(self, b0: int, payload: bytes, now: int) -> None:
        opcode = b0 & 0x0F
        if opcode >= _OP_CLOSE:
            if opcode == _OP_PING and self.transport is not None:
                self.transport.write(masked_frame(_OP_PONG, payload))
            elif opcode == _OP_CLOSE and self.transport is not None:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.fleet.errors[f"closed by server: {code}"] += 1
                self.transport.close()
            return
        if opcode != _OP_CONT:
            self.fragment_compressed = bool(b0 & 0x40)
        if not b0 & 0x80:  # a fragment: keep until the final frame of the message
            self.fragments.append(payload)
            return
        if self.fragments:
            payload = b"".join([*self.fragments, payload])
            self.fragments = []
        if self.fragment_compressed:
            payload = self.inflater.decompress(payload + _DEFLATE_TAIL)
        self._message(payload, now)

    def _message(self, payload: bytes, now: int) -> None:
        at = payload.find(MARKER)
        if at >= 0:
            start = at + len(MARKER)
            self.fleet.received(int(payload[start : payload.index(b"#", start)]), now)
            return
        if self.is_ready:
            return
        # Until the snapshot arrives, frames are parsed for real (a handful per connection).
        msg = orjson.loads(payload)
        kind = msg.get("type")
        if kind == "snapshot":
            self.is_ready = True
            self.fleet.ready += 1
            if not self.ready_future.done():
                self.ready_future.set_result(None)
        elif kind == "error":
            self.fleet.errors[f"error frame: {msg.get('code')}"] += 1

    def _fail(self, why: str) -> None:
        if not self.ready_future.done():
            self.ready_future.set_exception(ConnectionError(why))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(masked_frame(_OP_CLOSE, (1000).to_bytes(2, "big")))
            self.transport.close()


async def connect_all(args: argparse.Namespace, fleet: Fleet) -> list[Client]:
    """Open every connection, at most `--concurrency` handshakes in flight (no SYN storm)."""
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    origin = f"http://{url.netloc}"
    path = url.path + (f"?{url.query}" if url.query else "")
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.concurrency)
    clients: list[Client] = []

    async def one() -> None:
        async with gate:
            client = Client(fleet, url.netloc, path, origin, args.deflate)
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: client, host, port), args.timeout
                )
                await asyncio.wait_for(client.ready_future, args.timeout)
                clients.append(client)
            except (OSError, ConnectionError, TimeoutError) as exc:
                fleet.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                client.close()

    await asyncio.gather(*(one() for _ in range(args.clients)))
    return clients


async def serve_commands(fleet: Fleet, clients: list[Client]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).strip():
        if line == b"report":
            emit(
                {
                    "event": "report",
                    "posts": {str(k): v for k, v in fleet.posts.items()},
                    "ready": fleet.ready,
                    "closed": fleet.closed,
                    "errors": dict(fleet.errors),
                }
            )
        elif line == b"quit":
            break
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)


async def main_async(args: argparse.Namespace) -> None:
    hello = orjson.dumps({"type": "hello", "protocol": 1, "resume_from": None})
    fleet = Fleet(hello)
    started = time.monotonic()
    clients = await connect_all(args, fleet)
    emit(
        {
            "event": "connected",
            "ready": fleet.ready,
            "failed": args.clients - len(clients),
            "seconds": round(time.monotonic() - started, 2),
            "deflated": fleet.deflated,
            "errors": dict(fleet.errors),
        }
    )
    await serve_commands(fleet, clients)


def raise_fd_limit() -> None:
    """Each connection is a file descriptor; the default soft limit (1024) is far too low."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
    except (ValueError, OSError):  # not root: the hard limit is as far as we may go
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--url", required=True, help="ws://host:port/ws/conversations/SLUG")
    p.add_argument("--clients", type=int, default=100, help="connections to open")
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight at once")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per connection to be ready")
    p.add_argument(
        "--deflate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="offer permessage-deflate as browsers do (default: on)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:  # plain asyncio works, only slower
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
