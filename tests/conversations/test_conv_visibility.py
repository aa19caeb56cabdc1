"""Who can see a conversation: public (listed), unlisted (by link), invite-only (participants)."""

from __future__ import annotations

from conv_support import world_fixture  # noqa: F401 - fixture

from helpers import World


async def test_invite_only_does_not_exist_for_outsiders(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    root = await world.member("root", admin=True)
    visitor = await world.guest("Visitor")
    anonymous = world.anonymous()
    slug = (await ana.create(title="Closed circle", visibility="invite_only"))["slug"]
    await ana.post(f"/api/conversations/{slug}/start")
    base = f"/api/conversations/{slug}"

    for outsider in (bob, visitor, anonymous):
        for response in (
            await outsider.client.get(base),
            await outsider.client.get(f"{base}/participants"),
            await outsider.client.get(f"{base}/invites"),
        ):
            # Same answer as for a slug that never existed, so probing reveals nothing.
            assert response.status_code in (404, 401), response.text
        if outsider is not anonymous:
            for response in (
                await outsider.patch(base, {"title": "x"}),
                await outsider.post(f"{base}/end"),
                await outsider.post(f"{base}/invites", {}),
                await outsider.put(
                    f"{base}/participants/{outsider.me['id']}/role", {"role": "cohost"}
                ),
            ):
                assert response.status_code == 404, response.text
        lobby = await outsider.client.get("/")
        assert "Closed circle" not in lobby.text
        listed = (await outsider.client.get("/api/conversations")).json()["conversations"]
        assert listed == []
        edit_page = await outsider.client.get(f"/c/{slug}/edit")
        assert edit_page.status_code in (404, 303)

    nothing = await bob.client.get("/api/conversations/doesnotexist")
    hidden = await bob.client.get(base)
    assert nothing.json()["error"] == hidden.json()["error"] == "not_found"

    # Participants and admins see it (admins still not in the public lobby).
    assert (await ana.client.get(base)).json()["title"] == "Closed circle"
    assert (await root.client.get(base)).status_code == 200
    assert "Closed circle" not in (await root.client.get("/")).text


async def test_unlisted_is_reachable_but_not_listed(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create(title="Side room", visibility="unlisted", tags=["quiet"]))["slug"]
    await ana.post(f"/api/conversations/{slug}/start")

    assert "Side room" not in (await bob.client.get("/")).text
    for query in ("", "?state=live", "?tag=quiet"):
        assert (await bob.client.get(f"/api/conversations{query}")).json()["conversations"] == []
    got = await world.anonymous().client.get(f"/api/conversations/{slug}")
    assert got.status_code == 200 and got.json()["title"] == "Side room"
    assert got.json()["your_role"] is None and got.json()["can_manage"] is False


async def test_changing_visibility_takes_effect_at_once(world: World) -> None:
    ana = await world.member("ana")
    bob = await world.member("bob")
    slug = (await ana.create(title="Opening up", visibility="invite_only"))["slug"]
    assert (await bob.client.get(f"/api/conversations/{slug}")).status_code == 404
    await ana.patch(f"/api/conversations/{slug}", {"visibility": "public"})
    assert (await bob.client.get(f"/api/conversations/{slug}")).status_code == 200
    assert "Opening up" in (await bob.client.get("/")).text
