"""The room page's server-rendered part: what it shows, what it hides, and how it hands data
to the scripts (a JSON block that user text cannot break out of)."""

from __future__ import annotations

import json
import re

import httpx

from helpers import csrf_headers, signup

EVIL_TITLE = '</script><script>alert("t")</script> & <b>bold</b>'


async def _create(client: httpx.AsyncClient, **fields: object) -> str:
    response = await client.post(
        "/api/conversations", json=fields, headers=await csrf_headers(client)
    )
    assert response.status_code == 201, response.text
    slug: str = response.json()["slug"]
    return slug


def _room_data(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="room-data">(.*?)</script>', html, re.S)
    assert match, "no room-data block"
    data: dict[str, object] = json.loads(match.group(1))
    return data


async def test_room_page_shows_the_conversation_and_escapes_user_text(
    app_client: httpx.AsyncClient,
) -> None:
    me = await signup(app_client, "hosty", display_name="Hosty <McHost>")
    slug = await _create(
        app_client, title=EVIL_TITLE, description="Line one\nLine two", tags=["ideas"]
    )
    response = await app_client.get(f"/c/{slug}")
    assert response.status_code == 200
    html = response.text
    # Rendered as text, never as markup, in the header and in the JSON block.
    assert "<script>alert" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert" in html
    assert "Hosty &lt;McHost&gt;" in html  # the host's name
    data = _room_data(html)
    assert data["slug"] == slug
    assert data["ws_path"] == f"/ws/conversations/{slug}"
    assert data["conversation"]["title"] == EVIL_TITLE  # type: ignore[index]
    assert data["viewer"] == {
        "id": me["id"],
        "name": "Hosty <McHost>",
        "colour": me["colour"],
        "is_guest": False,
    }
    assert data["role"] == "host"
    assert data["can_moderate"] is True
    # No inline script: the strict CSP would refuse it.
    assert re.findall(r"<script(?![^>]*(?:src=|application/json))", html) == []


async def test_anonymous_watchers_get_the_page_with_a_prompt_to_take_part(
    app_client: httpx.AsyncClient,
) -> None:
    await signup(app_client, "hoster")
    slug = await _create(app_client, title="Open to all")
    app_client.cookies.delete("junto_session")
    response = await app_client.get(f"/c/{slug}")
    assert response.status_code == 200
    assert "Sign in or pick a name to take part" in response.text
    data = _room_data(response.text)
    assert data["viewer"] is None and data["role"] is None and data["can_moderate"] is False


async def test_missing_and_invite_only_rooms_are_404_to_outsiders(
    app_client: httpx.AsyncClient,
) -> None:
    assert (await app_client.get("/c/doesnotexist")).status_code == 404
    await signup(app_client, "secretive")
    slug = await _create(app_client, title="Closed circle", visibility="invite_only")
    assert (await app_client.get(f"/c/{slug}")).status_code == 200  # the host sees it
    app_client.cookies.delete("junto_session")
    response = await app_client.get(f"/c/{slug}")
    assert response.status_code == 404
    assert "Closed circle" not in response.text


async def test_the_processing_panel_is_for_reviewers_only(app_client: httpx.AsyncClient) -> None:
    """After the end a conversation's jobs are for its reviewers (hosts, co-hosts, speakers):
    the room page gives the panel that polls them to those only, so the audience's page never
    polls into a 404 when the host ends the conversation under its eyes."""
    await signup(app_client, "panelhost")
    slug = await _create(app_client, title="Jobs later")
    host_page = await app_client.get(f"/c/{slug}")
    assert "data-processing" in host_page.text
    app_client.cookies.clear()
    await signup(app_client, "panelviewer")
    viewer_page = await app_client.get(f"/c/{slug}")
    assert viewer_page.status_code == 200 and "data-processing" not in viewer_page.text
    app_client.cookies.clear()
    assert "data-processing" not in (await app_client.get(f"/c/{slug}")).text  # anonymous
