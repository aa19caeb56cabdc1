"""A node killed mid-conversation (SIGKILL: no handler runs, nothing is flushed on the way out)
keeps what it recorded: after a restart, the speaker's recording up to at most 5 s before the
kill is recovered, plays, and is transcribed; the speaker's page comes back on its own and the
conversation goes on and ends with a transcript that includes what was said before the crash.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import jiwer
import pytest
from conversation_support import RIVERS, Track, ffprobe_seconds, make_conversation
from media_support import (
    api,
    create_live_conversation,
    enter_room,
    join_stage,
    launch_person,
    media_state,
    playwright,  # noqa: F401 - fixture
    sign_up,
    start_media_node,
    wait_until,
)
from playwright.async_api import Playwright
from speech_support import Speech

from conftest import LiveNode
from speech_scoring import normalize

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MAX_LOSS = 5.0  # s of recording a crash may lose (the promise)
KILL_AFTER = 22.0  # s of talk before the node is killed
MIN_RECALL = 0.85  # of the words said more than MAX_LOSS before the kill


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    live = start_media_node(
        tmp_path_factory.mktemp("crash-node"), JUNTO_CAPTIONS="0", JUNTO_WORKERS="1"
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def monologue(tmp_path_factory: pytest.TempPathFactory) -> Track:
    """Ana says every line of the rivers conversation herself."""
    turns = tuple(("ana", text) for _, text in RIVERS)
    return make_conversation(tmp_path_factory.mktemp("monologue"), turns)["ana"]


def pieces(node: LiveNode, slug: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(node.data_dir / "junto.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(
            "SELECT r.id, r.state, r.path, r.error, t.words FROM recordings r "
            "JOIN conversations c ON c.id = r.conversation_id "
            "LEFT JOIN track_transcripts t ON t.recording_id = r.id "
            "WHERE c.slug = ? ORDER BY r.id",
            (slug,),
        ).fetchall()
    finally:
        db.close()
    return [dict(row) for row in rows]


def recall(reference: str, hypothesis: str) -> float:
    """The share of the reference's words that the hypothesis has, in order."""
    ref = normalize(reference)
    out = jiwer.process_words(ref, normalize(hypothesis) or "<nothing>")
    return out.hits / len(ref.split())


async def test_a_killed_node_keeps_the_recording_up_to_five_seconds_before_the_kill(
    playwright: Playwright,  # noqa: F811 - the fixture imported above
    node: LiveNode,
    monologue: Track,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("crash-browser")
    mic = Speech(monologue.path, [], monologue.seconds)
    ana = await launch_person(playwright, folder / "ana", "ana", mic, node.url)
    try:
        await sign_up(ana, "Ana Host")
        slug = await create_live_conversation(ana, "Rivers, interrupted")
        await enter_room(ana, slug)
        await join_stage(ana)
        t_pub = time.monotonic()
        await asyncio.sleep(KILL_AFTER)
        node.stop(hard=True)  # SIGKILL
        t_kill = time.monotonic()
        node.start()

        # The piece the dead process was writing is found, finalized and transcribed.
        recovered = await wait_until(
            lambda: asyncio.sleep(0, pieces(node, slug)),
            lambda ps: bool(ps) and ps[0]["state"] in ("ready", "failed") and ps[0]["words"],
            "the interrupted recording to be recovered and transcribed",
            timeout=120,
            every=1.0,
        )
        first = recovered[0]
        assert first["state"] == "ready", first
        seconds = ffprobe_seconds(node.data_dir / first["path"])
        talked = t_kill - t_pub
        print(f"recovered {seconds:.2f} s of {talked:.2f} s talked before the kill")
        assert seconds >= talked - MAX_LOSS
        # The microphone opened before publishing was up, so lines that ended by this point of
        # the file were certainly said MAX_LOSS before the kill.
        said = monologue.said_before(talked - MAX_LOSS)
        assert said, "the test talks too briefly before the kill"
        heard = " ".join(word for _, _, word, _ in json.loads(first["words"]))
        share = recall(said, heard)
        print(f"recall {share:.1%} of: {said!r}\nheard: {heard!r}")
        assert share >= MIN_RECALL

        # The page reconnects and publishes again by itself: a new piece is recording.
        await wait_until(
            lambda: media_state(ana),
            lambda s: bool(s and s["publishers"].get("camera") == "connected"),
            "Ana's page to publish again after the restart",
            timeout=60,
        )
        await wait_until(
            lambda: asyncio.sleep(0, pieces(node, slug)),
            lambda ps: len(ps) >= 2,
            "a second recording piece after the restart",
        )
        await asyncio.sleep(4)

        # Ending the conversation builds a transcript of both pieces.
        status, body = await api(ana.page, "POST", f"/api/conversations/{slug}/end", {})
        assert status == 200, body

        async def transcript() -> dict[str, Any]:
            _, data = await api(ana.page, "GET", f"/api/conversations/{slug}/transcript")
            return dict(data)

        final = await wait_until(
            transcript,
            lambda t: bool(t.get("segments")),
            "the final transcript after the crash",
            timeout=180,
            every=1.0,
        )
        text = " ".join(s["text"] for s in final["segments"])
        assert recall(said, text) >= MIN_RECALL
    finally:
        await ana.close()
    assert not [e for e in ana.errors if "WebSocket" not in e], ana.errors
