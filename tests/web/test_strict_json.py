"""Request bodies and WebSocket frames are strict JSON (RFC 8259), and errors do not echo input.

Python's json module accepts `NaN`, `Infinity`, numbers that overflow to infinity and unpaired
UTF-16 surrogates (`"\\ud800"`); none of these can be encoded back, so the node used to fail
with a 500 while writing the 422 that echoed them.
"""

from __future__ import annotations

import httpx
from ws_support import in_room, live_room

from conftest import LiveNode
from helpers import csrf_headers

NOT_STRICT_JSON = {
    "NaN": b'{"username": "ann_nan", "password": NaN}',
    "Infinity": b'{"username": "ann_inf", "password": Infinity}',
    "-Infinity": b'{"username": "ann_minf", "password": -Infinity}',
    "overflow to infinity": b'{"username": "ann_big", "password": 1e999}',
    "lone high surrogate": b'{"username": "ann_sur", "password": "\\ud800 and more"}',
    "lone low surrogate": b'{"username": "ann_low", "password": "\\udc00"}',
    "surrogate in a key": b'{"username": "ann_key", "\\ud800": "x"}',
    "invalid UTF-8": b'{"username": "ann_utf", "password": "\xff\xfe long enough"}',
    "UTF-16": '{"username": "ann_u16", "password": "long enough"}'.encode("utf-16"),
    "not JSON at all": b"{not json",
}


async def _post(client: httpx.AsyncClient, path: str, body: bytes) -> httpx.Response:
    headers = {**(await csrf_headers(client)), "content-type": "application/json"}
    return await client.post(path, content=body, headers=headers)


async def test_bodies_that_are_not_strict_json_are_a_400_bad_json(
    app_client: httpx.AsyncClient,
) -> None:
    for what, body in NOT_STRICT_JSON.items():
        answer = await _post(app_client, "/api/signup", body)
        assert answer.status_code == 400, (what, answer.status_code, answer.text)
        error = answer.json()
        assert error["error"] == "bad_json", what
        assert "JSON" in error["message"], what
    # Nothing was created on the way: every one of those usernames is still free, and a
    # well-formed body with the same fields still works.
    for what, body in NOT_STRICT_JSON.items():
        if b'"username": "ann_' in body:
            name = body.split(b'"username": "')[1].split(b'"')[0].decode()
            good = f'{{"username": "{name}", "password": "long enough"}}'.encode()
            answer = await _post(app_client, "/api/signup", good)
            assert answer.status_code == 201, (what, answer.text)
            await app_client.post("/api/signout", headers=await csrf_headers(app_client))


async def test_a_surrogate_pair_is_text_not_an_error(app_client: httpx.AsyncClient) -> None:
    body = b'{"display_name": "Ann \\ud83d\\ude00"}'
    answer = await _post(app_client, "/api/guest", body)
    assert answer.status_code == 201, answer.text
    assert (await app_client.get("/api/me")).json()["name"] == "Ann \N{GRINNING FACE}"


async def test_validation_errors_do_not_echo_the_input(app_client: httpx.AsyncClient) -> None:
    huge = "a" * 90_000
    body = f'{{"username": "{huge}", "password": "long enough", "{huge}b": 1}}'.encode()
    answer = await _post(app_client, "/api/signup", body)
    assert answer.status_code == 422, answer.text
    assert len(answer.content) < 2_000, f"the 422 body echoes input: {len(answer.content)} bytes"
    detail = answer.json()["detail"]
    assert {tuple(item["loc"][:2]) for item in detail} >= {("body", "username")}
    for item in detail:
        assert set(item) == {"type", "loc", "msg"}, item
    too_long = next(item for item in detail if item["loc"] == ["body", "username"])
    assert too_long["type"] == "string_too_long" and "32 characters" in too_long["msg"]


async def test_room_frames_are_strict_json_and_the_socket_stays_usable(
    live_node: LiveNode,
) -> None:
    async with live_room(live_node) as room:
        ana = await room.member("ana")
        async with in_room(live_node, room.slug, ana) as client:
            await client.wait_type("snapshot")
            for raw in (
                '{"type": "chat.send", "ref": "n", "body": NaN}',
                '{"type": "chat.send", "ref": "i", "body": "x", "n": Infinity}',
                '{"type": "chat.send", "ref": "s", "body": "\\ud800"}',
            ):
                await client.ws.send(raw)
                error = await client.wait_type("error")
                assert error["code"] == "bad_message", (raw, error)
                assert "JSON" in error["message"], (raw, error)
            ack = await client.act("ok", type="chat.send", body="still here")
            assert ack["type"] == "ack", ack
