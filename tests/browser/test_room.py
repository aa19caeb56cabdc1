"""The conversation room in a real browser: a host, a member and a guest in one live room.

Each person is a separate Chromium context on one shared node. The tests run in file order
against the same room, as a real session would: talk, raise a hand, moderate, try an injection.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from browser_support import (  # noqa: F401 - fixtures
    Person,
    api,
    browser,
    create_live_conversation,
    node,
    open_person,
    screenshot,
    sign_up,
)
from playwright.async_api import Browser, Page, expect

from conftest import LiveNode

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TIMEOUT = 10_000  # ms: generous for a loaded 2-core machine, far above the usual < 1 s


@dataclass
class Room:
    slug: str
    host: Person
    member: Person
    guest: Person

    @property
    def everyone(self) -> list[Person]:
        return [self.host, self.member, self.guest]


async def connected(page: Page) -> None:
    await expect(page.locator("#conn-status")).to_have_attribute(
        "data-status", "open", timeout=TIMEOUT
    )


async def say(page: Page, text: str) -> None:
    box = page.locator("#chat-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("", timeout=TIMEOUT)  # cleared once the server acked


async def post(page: Page, text: str) -> None:
    box = page.locator("#bc-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("", timeout=TIMEOUT)


def chat_message(page: Page, text: str):  # type: ignore[no-untyped-def]
    return page.locator(".chat-list .msg", has_text=text)


def bc_post(page: Page, text: str):  # type: ignore[no-untyped-def]
    return page.locator(".bc-list .post", has_text=text)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def room(browser: Browser, node: LiveNode) -> AsyncIterator[Room]:  # noqa: F811
    host = await open_person(browser, node, "host")
    member = await open_person(browser, node, "member")
    guest = await open_person(browser, node, "guest")
    await sign_up(host, "Hana Host")
    await sign_up(member, "Mo Member")
    slug = await create_live_conversation(
        host,
        "Is attention the new currency?",
        description="A conversation about attention.\nBring your questions.",
        tags=["attention", "economics"],
    )
    for person in (host, member, guest):
        await person.page.goto(f"/c/{slug}")
        await connected(person.page)
    # The guest arrives anonymous, reads, then picks a name in the page's join form.
    await expect(guest.page.locator(".join-bar")).to_be_visible()
    await expect(guest.page.locator("#chat-input")).to_be_hidden()
    await guest.page.get_by_label("Your display name").fill("Gil Guest")
    await guest.page.get_by_role("button", name="Join as guest").click()
    await expect(guest.page.locator("#chat-input")).to_be_visible(timeout=TIMEOUT)
    await expect(guest.page.locator(".join-bar")).to_be_hidden()
    _status, guest.me = await api(guest.page, "GET", "/api/me")
    yield Room(slug, host, member, guest)
    for person in (host, member, guest):
        person.assert_no_script_errors()
        await person.context.close()


async def test_three_people_chat_post_and_see_each_other(room: Room) -> None:
    await say(room.host.page, "Welcome, everyone!")
    await say(room.member.page, "Glad to be here.\nSecond line.")
    await say(room.guest.page, "Hello from a guest")
    await post(room.member.page, "Attention is finite #economics https://example.org/attention.")
    await post(room.guest.page, "What about #focus?")

    for person in room.everyone:
        page = person.page
        for text in ("Welcome, everyone!", "Second line.", "Hello from a guest"):
            await expect(chat_message(page, text)).to_be_visible(timeout=TIMEOUT)
        member_post = bc_post(page, "Attention is finite")
        await expect(member_post).to_be_visible(timeout=TIMEOUT)
        # Hashtags and links become links; the link is safe and leaves the trailing full stop.
        await expect(member_post.locator("a.hashtag")).to_have_text("#economics")
        link = member_post.locator("a.ext")
        await expect(link).to_have_attribute("href", "https://example.org/attention")
        await expect(link).to_have_attribute("rel", "noopener nofollow ugc")
        # The time since the start, as m:ss.
        await expect(member_post.locator("time.offset")).to_have_text(re.compile(r"^\d+:\d\d$"))
        # Each person's messages carry their own colour.
        host_msg = chat_message(page, "Welcome, everyone!")
        colour = await host_msg.evaluate("el => el.style.getPropertyValue('--person')")
        assert colour == room.host.me["colour"]
        # Presence: everyone named, the guest counted as a guest.
        people = page.locator(".people-list")
        for name in ("Hana Host", "Mo Member", "Gil Guest"):
            await expect(people).to_contain_text(name, timeout=TIMEOUT)
        await expect(page.locator('.presence-summary [data-count="guests"]')).to_have_text(
            "1 guest", timeout=TIMEOUT
        )

    # A reaction from the guest is counted on everyone's page.
    insight = bc_post(room.guest.page, "Attention is finite").get_by_role(
        "button", name=re.compile("^Insight")
    )
    await insight.click()
    await expect(insight).to_have_attribute("aria-pressed", "true", timeout=TIMEOUT)
    for person in room.everyone:
        button = bc_post(person.page, "Attention is finite").get_by_role(
            "button", name="Insight: 1"
        )
        await expect(button).to_be_visible(timeout=TIMEOUT)
    # A hashtag filters the backchannel in place (and the address says so, to share it).
    host = room.host.page
    await bc_post(host, "Attention is finite").locator("a.hashtag").click()
    await expect(bc_post(host, "What about #focus?")).to_be_hidden()
    await expect(host.locator(".bc-filter")).to_contain_text("#economics")
    assert host.url.endswith(f"/c/{room.slug}?tag=economics")
    await host.get_by_role("button", name="Show all").click()
    await expect(bc_post(host, "What about #focus?")).to_be_visible()
    await screenshot(room.host.page, "room-desktop-host")


async def test_guest_raises_hand_and_host_brings_them_on_stage(room: Room) -> None:
    guest_page = room.guest.page
    await guest_page.get_by_role("button", name="Raise your hand").click()
    await expect(guest_page.get_by_role("button", name="Lower your hand")).to_have_attribute(
        "aria-pressed", "true", timeout=TIMEOUT
    )
    hand = room.host.page.locator(".hands-list li", has_text="Gil Guest")
    await expect(hand).to_be_visible(timeout=TIMEOUT)
    await hand.get_by_role("button", name="Bring Gil Guest on stage").click()

    for person in room.everyone:
        tile = person.page.locator(".stage-tiles .tile", has_text="Gil Guest")
        await expect(tile).to_be_visible(timeout=TIMEOUT)
        await expect(tile).to_contain_text("Speaker")
        await expect(person.page.locator(".hands-list li", has_text="Gil Guest")).to_have_count(0)
    # Told politely, once, to the person it concerns; their controls follow.
    await expect(guest_page.locator("#announcer")).to_have_text(
        "You are now on stage as speaker.", timeout=TIMEOUT
    )
    await expect(room.member.page.locator("#announcer")).not_to_contain_text("on stage")
    await expect(guest_page.get_by_role("button", name="Leave the stage")).to_be_visible()
    await expect(guest_page.locator(".hand-button")).to_be_hidden()


async def test_host_deletes_a_message_and_it_disappears_everywhere(room: Room) -> None:
    await say(room.member.page, "This message will be removed")
    await post(room.member.page, "This post will be removed too")
    for person in room.everyone:
        await expect(chat_message(person.page, "will be removed")).to_be_visible(timeout=TIMEOUT)
        await expect(bc_post(person.page, "removed too")).to_be_visible(timeout=TIMEOUT)
    # Others cannot delete it: no delete control on the guest's page.
    guest_view = chat_message(room.guest.page, "will be removed")
    await expect(guest_view.get_by_role("button", name=re.compile("Delete"))).to_have_count(0)

    delete = chat_message(room.host.page, "will be removed").get_by_role(
        "button", name="Delete message by Mo Member"
    )
    await delete.click()  # first press asks
    await room.host.page.get_by_role(
        "button", name="Really delete? Delete message by Mo Member"
    ).click()
    delete_post = bc_post(room.host.page, "removed too").get_by_role(
        "button", name="Delete post by Mo Member"
    )
    await delete_post.click()
    await room.host.page.get_by_role(
        "button", name="Really delete? Delete post by Mo Member"
    ).click()
    for person in room.everyone:
        await expect(chat_message(person.page, "will be removed")).to_have_count(0, timeout=TIMEOUT)
        await expect(bc_post(person.page, "removed too")).to_have_count(0, timeout=TIMEOUT)
        # The rest of the conversation is untouched.
        await expect(chat_message(person.page, "Welcome, everyone!")).to_be_visible()


async def test_a_dropped_connection_resumes_without_loss_or_repeats(room: Room) -> None:
    page = room.member.page
    # Drop the member's socket and hold the retry back while the host keeps talking.
    await page.evaluate(
        """() => {
            const c = window.junto.room.client;
            c.minDelay = 2500;
            c.ws.close(4000, "test");
        }"""
    )
    await expect(page.locator("#conn-status")).to_contain_text("Reconnecting", timeout=TIMEOUT)
    missed = [f"Said while you were away {i}" for i in range(3)]
    for text in missed:
        await say(room.host.page, text)
    await expect(page.locator("#conn-status")).to_have_attribute(
        "data-status", "open", timeout=TIMEOUT
    )
    for text in missed:
        await expect(chat_message(page, text)).to_have_count(1, timeout=TIMEOUT)
    bodies = await page.locator(".chat-list .msg .msg-body").all_inner_texts()
    assert [b for b in bodies if b.startswith("Said while")] == missed  # in order, once each
    assert await page.evaluate("() => window.junto.room.client.welcome.resume") == "replay"
    await page.evaluate("() => { window.junto.room.client.minDelay = 500; }")


async def test_slow_mode_refusal_shows_by_the_chat_box_and_edits_reach_everyone(
    room: Room,
) -> None:
    member = room.member.page
    await say(member, "A thought worth waiting for")
    await room.host.page.get_by_label("Slow mode").select_option("30")
    await expect(member.locator(".slow-mode-note")).to_have_text(
        "Slow mode: one message every 30 s.", timeout=TIMEOUT
    )
    box = member.locator("#chat-input")
    await box.fill("Too soon")
    await box.press("Enter")
    error = member.locator(".chat-composer .field-error")
    await expect(error).to_have_text(re.compile(r"^Slow mode: wait \d+ s$"), timeout=TIMEOUT)
    await expect(box).to_have_value("Too soon")  # nothing typed is lost
    await room.host.page.get_by_label("Slow mode").select_option("0")
    await expect(member.locator(".slow-mode-note")).to_be_hidden(timeout=TIMEOUT)
    await box.press("Enter")
    await expect(box).to_have_value("", timeout=TIMEOUT)

    message_id = await chat_message(member, "A thought worth waiting for").get_attribute("data-id")
    mine = member.locator(f'.chat-list .msg[data-id="{message_id}"]')
    await mine.get_by_role("button", name="Edit your message").click()
    editor = mine.get_by_label("New text of your message")
    await editor.fill("A thought worth waiting for, edited")
    await editor.press("Enter")
    for person in room.everyone:
        edited = chat_message(person.page, "worth waiting for, edited")
        await expect(edited).to_be_visible(timeout=TIMEOUT)
        await expect(edited.locator(".edited")).to_have_text("(edited)")


PAYLOADS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned='img';alert('img')\">",
    '<a href="javascript:window.__pwned=1">click</a> javascript:alert(1)',
]


async def test_script_payloads_show_as_text_and_never_run(room: Room) -> None:
    for person in room.everyone:
        await person.page.evaluate("() => { delete window.__pwned; }")
    for payload in PAYLOADS:
        await say(room.guest.page, payload)
        await post(room.member.page, payload[:280])
    for person in room.everyone:
        page = person.page
        for payload in PAYLOADS:
            await expect(chat_message(page, payload)).to_have_count(1, timeout=TIMEOUT)
            await expect(bc_post(page, payload)).to_have_count(1, timeout=TIMEOUT)
        # Shown literally, as text: no element was made from it.
        for where in (".chat-list", ".bc-list"):
            assert await page.locator(f"{where} script, {where} img").count() == 0
            hrefs = await page.locator(f"{where} a").evaluate_all("els => els.map(a => a.href)")
            assert all(h.startswith(("http://", "https://")) for h in hrefs), hrefs
        assert await page.evaluate("() => window.__pwned") is None
        assert person.dialogs == []


async def test_host_blocks_and_unblocks_a_guest(room: Room) -> None:
    guest = room.guest.page
    row = room.host.page.locator(".people-list li", has_text="Gil Guest")
    await row.get_by_role("button", name="Block Gil Guest").click()
    await expect(guest.locator("#announcer")).to_have_text(
        "A host has blocked you from posting in this room.", timeout=TIMEOUT
    )
    await expect(guest.locator("#chat-input")).to_be_disabled()
    await expect(guest.locator(".chat-composer .composer-note")).to_have_text(
        "A host has blocked you from posting here."
    )
    await expect(room.member.page.locator(".people-list li", has_text="Gil Guest")).to_contain_text(
        "blocked", timeout=TIMEOUT
    )
    await row.get_by_role("button", name="Unblock Gil Guest").click()
    await expect(guest.locator("#chat-input")).to_be_enabled(timeout=TIMEOUT)
    await say(guest, "Thanks for letting me back in")


async def test_host_ends_the_conversation_for_everyone(room: Room) -> None:
    await room.host.page.get_by_role("button", name="End the conversation").click()
    for person in room.everyone:
        page = person.page
        await expect(page.locator("#room-state")).to_have_text("Ended", timeout=TIMEOUT)
        await expect(page.locator("#chat-input")).to_be_hidden()
        await expect(page.locator("#bc-input")).to_be_hidden()
        await expect(page.locator(".panel-chat .over-note")).to_be_visible()
        # What was said stays readable.
        await expect(chat_message(page, "Welcome, everyone!")).to_be_visible()
