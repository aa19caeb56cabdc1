"""Bad input is a 422 that names the field, and stores nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conv_support import world_fixture  # noqa: F401 - fixture

from helpers import Person, World

LONG = "x" * 201
FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()


def fields_of(response_json: dict[str, Any]) -> set[str]:
    return {str(error["loc"][1]) for error in response_json["detail"] if len(error["loc"]) > 1}


async def listed(person: Person) -> list[dict[str, Any]]:
    conversations: list[dict[str, Any]] = (await person.client.get("/api/conversations")).json()[
        "conversations"
    ]
    return conversations


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": LONG}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"title": "ok", "description": "d" * 5001}, "description"),
        ({"title": "ok", "tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"title": "ok", "tags": ["fine", "no spaces allowed? no: punctuation!"]}, "tags"),
        ({"title": "ok", "tags": ["x" * 41]}, "tags"),
        ({"title": "ok", "tags": ["###"]}, "tags"),
        ({"title": "ok", "tags": "not-a-list"}, "tags"),
        ({"title": "ok", "language": "e"}, "language"),
        ({"title": "ok", "language": "english (uk)"}, "language"),
        ({"title": "ok", "language": "en-" + "a" * 20}, "language"),
        ({"title": "ok", "visibility": "secret"}, "visibility"),
        ({"title": "ok", "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"title": "ok", "scheduled_at": "2030-01-01T10:00:00"}, "scheduled_at"),  # no offset
        ({"title": "ok", "scheduled_at": "2001-01-01T10:00:00Z"}, "scheduled_at"),  # past
        ({"title": "ok", "surprise": 1}, "surprise"),
    ],
)
async def test_create_rejects_bad_fields_by_name(
    world: World, body: dict[str, Any], field: str
) -> None:
    ana = await world.member("ana")
    response = await ana.post("/api/conversations", body)
    assert response.status_code == 422, response.text
    assert field in fields_of(response.json())
    assert await listed(ana) == []


async def test_tags_are_normalised(world: World) -> None:
    ana = await world.member("ana")
    created = await ana.create(tags=["#Open Source", "café", "open_source", " AI ", "a--b-"])
    assert created["tags"] == ["a-b", "ai", "cafe", "open-source"]


async def test_patch_rejects_bad_fields_and_keeps_the_old_values(world: World) -> None:
    ana = await world.member("ana")
    created = await ana.create(title="Original", tags=["keep"], scheduled_at=FUTURE)
    url = f"/api/conversations/{created['slug']}"
    for body, field in [
        ({"title": None}, "title"),
        ({"title": LONG}, "title"),
        ({"tags": ["ok", "<b>"]}, "tags"),
        ({"visibility": None}, "visibility"),
        ({"scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),
        ({"title": "New", "language": "!!"}, "language"),
    ]:
        response = await ana.patch(url, body)
        assert response.status_code == 422, (body, response.text)
        assert field in fields_of(response.json()), body
    after = (await ana.client.get(url)).json()
    assert {k: after[k] for k in ("title", "tags", "scheduled_at", "language")} == {
        k: created[k] for k in ("title", "tags", "scheduled_at", "language")
    }


async def test_malformed_json_is_400_and_the_wrong_body_422(world: World) -> None:
    ana = await world.member("ana")
    headers = {**(await ana.headers()), "content-type": "application/json"}
    response = await ana.client.post("/api/conversations", content=b"{not json", headers=headers)
    # Not JSON at all is a malformed request (junto.strict_json); JSON of the wrong shape is 422.
    assert response.status_code == 400 and response.json()["error"] == "bad_json"
    assert (await ana.post("/api/conversations", ["a", "list"])).status_code == 422


async def test_listing_rejects_bad_parameters(world: World) -> None:
    anonymous = world.anonymous()
    for query in ("state=published", "state=nope", "limit=0", "limit=101", "limit=x"):
        assert (await anonymous.client.get(f"/api/conversations?{query}")).status_code == 422
    assert (await anonymous.client.get("/api/conversations?cursor=%%%")).status_code == 400
    assert (await anonymous.client.get("/api/conversations?cursor=bm90IGpzb24")).status_code == 400
    assert (await anonymous.client.get("/api/conversations?tag=%3Cb%3E")).status_code == 400
