"""Bidirectional controls (embeddings, overrides, isolates) are refused in everything people write.

A right-to-left override in a title, a name or a chat line makes the text after it render
backwards, so "evil\u202eeman" shows as someone else's name (CVE-2021-42574, "Trojan Source").
Every input path refuses them with a message naming the character; bidi marks (LRM, RLM, ALM),
which right-to-left writing needs and which reorder nothing after them, are still accepted.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from helpers import csrf_headers, guest, signup
from junto import corrections, snippets
from junto.conversations import ConversationError

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
BIDI_CONTROLS = [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]]


async def _send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    return await client.request(method, path, json=body, headers=await csrf_headers(client))


def _names_the_character(answer: httpx.Response, char: str) -> bool:
    return f"U+{ord(char):04X}" in answer.text and "bidirectional" in answer.text


async def test_conversation_titles_and_descriptions_refuse_bidi_controls(
    app_client: httpx.AsyncClient,
) -> None:
    await signup(app_client, "hosta")
    for char in BIDI_CONTROLS:
        description = f"Line one\n{char}Line two"
        for fields in ({"title": f"Rivers {char}and cities"},
                       {"title": "Rivers", "description": description}):  # fmt: skip
            answer = await _send(app_client, "POST", "/api/conversations", fields)
            assert answer.status_code == 422, (fields, answer.text)
            assert _names_the_character(answer, char), answer.text
    created = await _send(app_client, "POST", "/api/conversations", {"title": "Rivers"})
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]
    for fields in ({"title": f"{RLO}srevir"}, {"description": f"a{RLO}b"}):
        answer = await _send(app_client, "PATCH", f"/api/conversations/{slug}", fields)
        assert answer.status_code == 422 and _names_the_character(answer, RLO), answer.text
    stored = (await app_client.get(f"/api/conversations/{slug}")).json()
    assert stored["title"] == "Rivers" and stored["description"] == ""


async def test_right_to_left_text_with_marks_is_accepted(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "hostb", display_name="\u05d3\u05e0\u05d4\u200f (Dana)")
    title = "\u05e9\u05dc\u05d5\u05dd\u200f 2024 \u0645\u0631\u062d\u0628\u0627\u061c!"
    created = await _send(app_client, "POST", "/api/conversations", {"title": title})
    assert created.status_code == 201, created.text
    assert created.json()["title"] == title


async def test_names_and_bios_refuse_bidi_controls(app_client: httpx.AsyncClient) -> None:
    answer = await _send(app_client, "POST", "/api/guest", {"display_name": f"evil{RLO}eman"})
    assert answer.status_code in (400, 422) and _names_the_character(answer, RLO), answer.text
    await guest(app_client, "Plain Guest")
    for field, char in (("display_name", "\u2067"), ("bio", "\u202a")):
        answer = await _send(app_client, "PATCH", "/api/me", {field: f"x{char}y"})
        assert answer.status_code in (400, 422), answer.text
        assert _names_the_character(answer, char), answer.text
    assert (await app_client.get("/api/me")).json()["name"] == "Plain Guest"


async def test_chat_and_backchannel_refuse_bidi_controls(app_client: httpx.AsyncClient) -> None:
    await signup(app_client, "hostc")
    slug = (await _send(app_client, "POST", "/api/conversations", {"title": "Live"})).json()["slug"]
    started = await _send(app_client, "POST", f"/api/conversations/{slug}/start", None)
    assert started.status_code == 200, started.text
    for path in ("chat", "backchannel"):
        for char in (RLO, "\u2066"):
            body = {"body": f"see {char}gnp.exe"}
            answer = await _send(app_client, "POST", f"/api/conversations/{slug}/{path}", body)
            assert answer.status_code == 422, (path, answer.text)
            assert _names_the_character(answer, char), answer.text
        fine = await _send(
            app_client, "POST", f"/api/conversations/{slug}/{path}", {"body": "\u05e9\u200f ok"}
        )
        assert fine.status_code == 201, fine.text
    chat = (await app_client.get(f"/api/conversations/{slug}/chat")).json()
    assert [m["body"] for m in chat["messages"]] == ["\u05e9\u200f ok"]


@pytest.mark.parametrize("char", [RLO, "\u2069"])
def test_snippet_titles_and_transcript_corrections_name_the_problem(char: str) -> None:
    with pytest.raises(ConversationError) as refused:
        snippets.clean_title(f"clip {char}title")
    assert f"U+{ord(char):04X}" in refused.value.message and refused.value.field == "title"
    with pytest.raises(ConversationError) as refused:
        corrections.clean_text(f"what was {char}said")
    assert f"U+{ord(char):04X}" in refused.value.message and refused.value.field == "text"
