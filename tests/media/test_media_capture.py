"""What the page asks of the microphone, in real Chromium: echo cancellation for people without
headphones, but neither noise suppression nor automatic gain control, which cost recognition
accuracy on the way to captions and the transcript (measured with bench/pipeline.py, see
bench/README.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from media_support import (
    create_live_conversation,
    enter_room,
    join_stage,
    launch_person,
    playwright,  # noqa: F401 - fixture
    sign_up,
    speech,
    start_media_node,
)
from playwright.async_api import Playwright

from conftest import LiveNode

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

# The published microphone track's settings as Chromium applied them (not what was asked).
SETTINGS_JS = """() => {
  const stream = window.juntoMedia && window.juntoMedia.localStream;
  const track = stream && stream.getAudioTracks()[0];
  return track ? track.getSettings() : null;
}"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    live = start_media_node(tmp_path_factory.mktemp("capture-node"))
    yield live
    live.stop()


async def test_the_published_microphone_keeps_echo_cancellation_without_noise_suppression_or_agc(
    playwright: Playwright,  # noqa: F811 - the fixture imported above
    node: LiveNode,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("capture-browser")
    ana = await launch_person(
        playwright, folder / "ana", "ana", speech(tmp_path_factory, "ana"), node.url
    )
    try:
        await sign_up(ana, "Ana Host")
        slug = await create_live_conversation(ana, "What the microphone sends")
        await enter_room(ana, slug)
        await join_stage(ana)
        settings: dict[str, Any] | None = await ana.page.evaluate(SETTINGS_JS)
        assert settings is not None, "the page publishes no microphone track"
        assert settings["echoCancellation"] is True
        assert settings["noiseSuppression"] is False
        assert settings["autoGainControl"] is False
    finally:
        await ana.close()
    assert not ana.errors, f"the page raised: {ana.errors}"
