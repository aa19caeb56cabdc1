"""From voices to published knowledge, end to end: two Chromium speakers talk about two topics;
after the end the node's workers build the transcript, the video, the knowledge and the search
index; the host publishes; a listener reads the page, clicks a word, makes a snippet, searches
with other words than were said, and a podcast app plays the episode.

Ana (host) and Ben (speaker) have espeak-ng microphone files (conversation_support); Cy listens.
Nothing here is scripted on the server's side: every figure comes from real speech through real
WebRTC, Whisper, ffmpeg, the MiniLM embeddings and the search index.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import feedparser  # type: ignore[import-untyped]
import httpx
import jiwer
import pytest
from conversation_support import Track, make_conversation
from media_support import (
    MediaPerson,
    api,
    create_live_conversation,
    enter_room,
    join_stage,
    keep_screenshot,
    launch_person,
    playwright,  # noqa: F401 - fixture
    screenshot,
    set_role,
    sign_up,
    start_media_node,
    wait_until,
)
from playwright.async_api import Playwright, expect
from speech_support import Speech

from conftest import LiveNode
from junto.config import Settings
from junto.speech.offline import transcribe_file
from speech_scoring import normalize, wer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

JOBS = {"transcript.build", "composite.render", "knowledge.extract", "search.index"}
JOBS_TIMEOUT = 300.0  # s: finalize, transcribe, render, summarize, index on a loaded machine
SEEK_TOLERANCE = 0.5  # s, the bound for a click on a word
SNIPPET_MAX_WER = 0.20
SEARCH_TOLERANCE_MS = 3000

# Two topics (rivers, then paying for a library) so that the knowledge has something to find:
# a question, a decision, an action item with its owner. Lines espeak-ng says clearly.
TALK: tuple[tuple[str, str], ...] = (
    ("ana", "Welcome to the stage. Today we talk about rivers and the cities built beside them."),
    ("ben", "Thank you for having me. I grew up on a river, so this is personal."),
    ("ana", "Rivers brought trade, and trade brought people. Bridges came later, much later."),
    ("ben", "Now we have gardens beside the river, and people swim again in summer."),
    ("ana", "Let us talk about money. How will the city pay for the new library?"),
    ("ben", "We decided to ask the state for help. I will write the letter next week."),
    ("ana", "Good. The library will open in the spring, with free books for every child."),
)
SAID = TALK[3][1]
# The same thought in other words: no content word of SAID appears in it.
PARAPHRASE = "green spaces along the waterfront where residents bathe during the warm months"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    live = start_media_node(tmp_path_factory.mktemp("published-node"), JUNTO_WORKERS="1")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def tracks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Track]:
    return make_conversation(tmp_path_factory.mktemp("talk"), TALK)


async def api_json(person: MediaPerson, method: str, path: str, body: Any = None) -> Any:
    status, data = await api(person.page, method, path, body)
    assert 200 <= status < 300, f"{method} {path}: {status} {data}"
    return data


def best_segment(segments: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """The transcript segment that reads most like `text`."""
    target = normalize(text)
    return max(
        segments,
        key=lambda s: jiwer.process_words(target, normalize(s["text"]) or "x").hits,
    )


async def test_a_recorded_conversation_is_published_searched_and_clipped(
    playwright: Playwright,  # noqa: F811 - the fixture imported above
    node: LiveNode,
    tracks: dict[str, Track],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("published-browsers")
    mic = {name: Speech(t.path, [], t.seconds) for name, t in tracks.items()}
    ana, ben, cy = await asyncio.gather(
        launch_person(playwright, folder / "ana", "ana", mic["ana"], node.url),
        launch_person(playwright, folder / "ben", "ben", mic["ben"], node.url),
        launch_person(playwright, folder / "cy", "cy", None, node.url),
    )
    people = (ana, ben, cy)
    try:
        await sign_up(ana, "Ana Host")
        await sign_up(ben, "Ben Speaker")
        await sign_up(cy, "Cy Listener")
        slug = await create_live_conversation(ana, "Rivers, gardens and a library")
        await set_role(ana, slug, ben.id, "speaker")
        await asyncio.gather(enter_room(ana, slug), enter_room(ben, slug))
        await asyncio.gather(join_stage(ana), join_stage(ben))
        await asyncio.sleep(max(t.seconds for t in tracks.values()) + 1.0)
        await api_json(ana, "POST", f"/api/conversations/{slug}/end", {})

        async def jobs() -> list[dict[str, Any]]:
            data = await api_json(ana, "GET", f"/api/conversations/{slug}/jobs")
            return list(data["jobs"] if isinstance(data, dict) else data)

        done = await wait_until(
            jobs,
            lambda js: (
                JOBS <= {j["kind"] for j in js}
                and all(j["state"] in ("succeeded", "failed") for j in js)
            ),
            "every job of the conversation to finish",
            timeout=JOBS_TIMEOUT,
            every=1.0,
        )
        assert not [j for j in done if j["state"] != "succeeded"], done

        # ---- the host reviews and publishes ---------------------------------------------
        await ana.page.goto(f"/c/{slug}")
        publish = ana.page.get_by_role("button", name="Publish")
        await expect(publish).to_be_visible()
        await publish.click()
        await expect(ana.page.get_by_text("Published", exact=False).first).to_be_visible()
        state = await api_json(ana, "GET", f"/api/conversations/{slug}")
        assert state["state"] == "published", state

        # ---- a listener reads the page ----------------------------------------------------
        page = cy.page
        await page.goto(f"/c/{slug}")
        await expect(page.locator("#summary")).to_contain_text("river", ignore_case=True)
        await expect(page.locator("#chapters li").first).to_be_visible()
        words = page.locator("#transcript span.w")
        assert await words.count() >= 60
        await expect(page.locator("#transcript")).to_contain_text("library", ignore_case=True)
        await keep_screenshot(cy, "published-page")
        await screenshot(page, "media-published-cy", full_page=True)

        # A click on a word moves the player to it.
        player = page.locator("#player")
        await page.wait_for_function(
            "() => document.querySelector('#player').readyState >= 1", timeout=20_000
        )
        for index in (12, await words.count() - 8):
            word = words.nth(index)
            start_s = int(await word.get_attribute("data-start") or "0") / 1000
            await word.click()
            await page.wait_for_function(
                "(t) => Math.abs(document.querySelector('#player').currentTime - t) <= 0.5",
                arg=start_s,
                timeout=5_000,
            )
            now = float(await player.evaluate("(p) => p.currentTime"))
            print(f"clicked a word at {start_s:.2f} s: the player is at {now:.2f} s")
            assert abs(now - start_s) <= SEEK_TOLERANCE

        # ---- a snippet of selected words plays exactly those words ------------------------
        transcript = await api_json(cy, "GET", f"/api/conversations/{slug}/transcript")
        segment = best_segment(transcript["segments"], TALK[6][1])
        # Ana's last line: "Good. The library will open in the spring, with free books for
        # every child." (a whole turn: Whisper needs a few seconds of context).
        chosen = segment["words"]
        chosen_text = " ".join(w[2] for w in chosen)
        began = time.monotonic()
        snippet = await api_json(
            cy,
            "POST",
            f"/api/conversations/{slug}/snippets",
            {"start_ms": chosen[0][0], "end_ms": chosen[-1][1], "title": "Trade and people"},
        )
        print(f"snippet created in {time.monotonic() - began:.2f} s: {snippet}")
        clip = await page.request.get(f"/s/{snippet['slug']}/audio.m4a")
        assert clip.ok
        audio = folder / "snippet.m4a"
        audio.write_bytes(await clip.body())
        heard = " ".join(
            w.text
            for w in await asyncio.to_thread(
                transcribe_file, audio, "tiny.en", 5, Settings(data_dir=folder / "models")
            )
        )
        snippet_wer = wer(chosen_text, heard)
        print(f"snippet: selected {chosen_text!r}, heard {heard!r}: WER {snippet_wer:.0%}")
        assert snippet_wer <= SNIPPET_MAX_WER
        await page.goto(f"/s/{snippet['slug']}")
        await expect(page.locator("video, audio").first).to_be_visible()
        await expect(page.get_by_text("Ana Host").first).to_be_visible()
        await keep_screenshot(cy, "snippet-page")

        # ---- a search in other words finds the moment -------------------------------------
        said = best_segment(transcript["segments"], SAID)
        said_ms = int(said["words"][0][0])
        began = time.monotonic()
        found = await api_json(cy, "GET", "/api/search?q=" + PARAPHRASE.replace(" ", "+"))
        print(f"search took {1000 * (time.monotonic() - began):.0f} ms (with the page's fetch)")
        top = [h for h in found["results"][:3] if h["conversation"] == slug]
        print(f"top hits: {[(h['start_ms'], h['text']) for h in found['results'][:3]]}")
        assert any(abs(int(h["start_ms"]) - said_ms) <= SEARCH_TOLERANCE_MS for h in top), (
            f"'{SAID}' (said at {said_ms} ms) is not among the top 3 for '{PARAPHRASE}'"
        )
        await page.goto("/search?q=" + PARAPHRASE.replace(" ", "+"))
        first_hit = page.locator(".search-hit .hit-link").first
        await expect(first_hit).to_be_visible()
        await keep_screenshot(cy, "search")
        # A hit plays from its moment: the conversation page, at the second it was said.
        await first_hit.click()
        await page.wait_for_function(
            "() => document.querySelector('#player').currentTime > 1", timeout=10_000
        )

        # ---- the podcast feed's episode plays ----------------------------------------------
        feed = feedparser.parse(httpx.get(node.url + "/feeds/podcast.rss", timeout=10).content)
        assert not feed.bozo, feed.bozo_exception
        episode = next(e for e in feed.entries if e.link.endswith(f"/c/{slug}"))
        enclosure = episode.enclosures[0]["href"]
        await page.goto("/healthz")
        played = await page.evaluate(
            """async (src) => {
                const a = new Audio(src);
                a.muted = true;
                await a.play();
                await new Promise((r) => setTimeout(r, 1500));
                return {time: a.currentTime, duration: a.duration};
            }""",
            enclosure,
        )
        print(f"podcast episode: {played}")
        assert played["time"] > 0.5 and played["duration"] > 20
    finally:
        for person in people:
            await person.close()
    for person in people:
        assert not person.errors, f"{person.name}'s page raised: {person.errors}"
