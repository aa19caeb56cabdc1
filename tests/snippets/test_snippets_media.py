"""A snippet of real speech: what its clip says, how long it lasts, how Chromium plays it.

Three sentences spoken by espeak-ng become a composite video (as the compositor writes it: H.264
with a keyframe a second, AAC); the real tiny.en model makes the transcript's words; the middle
sentence is cut. Its audio, transcribed again, must give back that sentence and none of its
neighbours' words; ffprobe must find it as long as asked; Chromium must start it at its first
frame (the edit list hides the frames from the keyframe before it).
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NotRequired, TypedDict, cast

import pytest
from conversation_support import ffprobe_seconds
from snippets_support import attach_media, consent, ffmpeg, make_media
from transcripts_support import World, join_with_silence, speak, wav_seconds, world_fixture  # noqa: F401

from helpers import need_tool
from junto.speech.offline import transcribe_file
from speech_scoring import normalize, wer

FIRST = "Welcome to the stage. Today we talk about rivers and the cities built beside them."
MIDDLE = "Many towns forget the river when the money stops. But forgetting is not losing."
LAST = "Now we have parks beside the river, and people swim again in summer."
NEIGHBOURS = {"welcome", "stage", "today", "cities", "built", "parks", "swim", "summer"}


@pytest.fixture(name="served")
def served_fixture(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server over a folder, for Chromium (file: URLs cannot play media here)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_clip_says_the_chosen_words_and_plays_from_its_start(
    world: World, tmp_path: Path, served: tuple[str, Path]
) -> None:
    need_tool("ffprobe", "Debian package ffmpeg")
    parts = [
        speak(tmp_path / f"s{i}.wav", text, wpm=140) for i, text in enumerate((FIRST, MIDDLE, LAST))
    ]
    speech = join_with_silence(tmp_path / "ab.wav", parts[0], 0.0, parts[1])
    speech = join_with_silence(tmp_path / "abc.wav", speech, 0.0, parts[2])
    first_s, middle_s = wav_seconds(parts[0]), wav_seconds(parts[1])
    seconds = wav_seconds(speech) + 1.0
    video, audio = make_media(tmp_path / "media", seconds, wav=speech, size="640x360")

    # The transcript's words, as the transcript job would find them.
    heard = await asyncio.to_thread(transcribe_file, audio, "tiny.en", 5, world.settings)
    ana = await world.member("ana", "Ana")
    viewer = await world.member("viewer", "Viewer")
    conv = await world.ended_conversation(ana)
    words = [[w.start_s, w.end_s, w.text.strip(), w.probability] for w in heard]
    await world.add_piece(conv, ana, 0.0, words)
    assert await world.run_jobs("transcript.build") == 1
    await attach_media(world, conv, video, audio, seconds)
    await consent(world, conv, ana)
    assert (await ana.post(f"/api/conversations/{conv.slug}/publish")).status_code == 200

    # From the silence before the middle sentence to the silence after it.
    start_ms, end_ms = round(first_s * 1000), round((first_s + middle_s) * 1000)
    made = await viewer.post(
        f"/api/conversations/{conv.slug}/snippets", {"start_ms": start_ms, "end_ms": end_ms}
    )
    assert made.status_code == 201, made.text
    snippet = made.json()
    assert snippet["speakers"][0]["name"] == "Ana"
    assert wer(MIDDLE, snippet["text"]) <= 0.2, snippet["text"]
    length_s = (snippet["end_ms"] - snippet["start_ms"]) / 1000
    folder = world.settings.data_dir / "snippets" / snippet["slug"]

    said = " ".join(
        w.text for w in transcribe_file(folder / "audio.m4a", "tiny.en", 5, world.settings)
    )
    assert wer(MIDDLE, said) <= 0.2, said
    assert not NEIGHBOURS & set(normalize(said).split()), said
    clip_said = transcribe_file(folder / "clip.mp4", "tiny.en", 5, world.settings)
    assert wer(MIDDLE, " ".join(w.text for w in clip_said)) <= 0.2
    for name in ("clip.mp4", "audio.m4a"):
        assert abs(ffprobe_seconds(folder / name) - length_s) <= 0.3, name

    # Chromium: starts at 0, lasts as long, and its first frame is the frame at the start
    # (the thumbnail, decoded by ffmpeg exactly there), not an earlier one: without the edit
    # list a player would show the keyframe before the start, up to a second earlier.
    www = served[1]
    shutil.copy(folder / "clip.mp4", www / "clip.mp4")
    shutil.copy(folder / "thumbnail.jpg", www / "start.jpg")
    # Half a second earlier: a frame the clip must not start with (the hue has turned 45°).
    earlier_s = f"{max(0.0, snippet['start_ms'] / 1000 - 0.5):.3f}"
    subprocess.run(
        [ffmpeg(), "-v", "error", "-y", "-ss", earlier_s, "-i", str(video),
         "-frames:v", "1", "-vf", "scale=640:-2", str(www / "keyframe.jpg")],
        check=True,
    )  # fmt: skip
    (www / "index.html").write_text(PAGE)
    result = await _play_in_chromium(served[0] + "/index.html")
    assert result["error"] is None, result
    assert result["currentTime"] == 0
    assert abs(result["duration"] - length_s) <= 0.3, result
    assert result["played"] > 0.3, result  # it plays on
    # The first frame looks like the start, clearly more than like half a second before it.
    assert result["diffStart"] < 12, result
    assert result["diffStart"] * 2 < result["diffKeyframe"], result


PAGE = """<!doctype html><meta charset="utf-8">
<video id="v" src="clip.mp4" muted playsinline preload="auto"></video>
<canvas id="c" width="640" height="360"></canvas>
<script>
function pixels(source) {
  const c = document.getElementById("c"), g = c.getContext("2d");
  g.drawImage(source, 0, 0, 640, 360);
  return g.getImageData(0, 0, 640, 360).data;
}
function diff(a, b) { let s = 0; for (let i = 0; i < a.length; i += 4) {
  s += Math.abs(a[i] - b[i]) + Math.abs(a[i+1] - b[i+1]) + Math.abs(a[i+2] - b[i+2]); }
  return s / (a.length / 4) / 3; }
function image(src) { return new Promise((ok, bad) => { const i = new Image();
  i.onload = () => ok(i); i.onerror = bad; i.src = src; }); }
window.result = (async () => {
  const v = document.getElementById("v");
  try {
    await new Promise((ok, bad) => { v.onloadeddata = ok; v.onerror = () => bad(v.error); });
    const first = pixels(v), at = v.currentTime, duration = v.duration;
    const start = pixels(await image("start.jpg")), key = pixels(await image("keyframe.jpg"));
    await v.play(); await new Promise(r => setTimeout(r, 800));
    return { error: null, currentTime: at, duration, played: v.currentTime,
             diffStart: diff(first, start), diffKeyframe: diff(first, key) };
  } catch (e) { return { error: String(e && (e.message || e.code) || e) }; }
})();
</script>"""


class Playback(TypedDict):
    """What PAGE's script reports: only an error if the clip did not play."""

    error: str | None
    currentTime: NotRequired[float]
    duration: NotRequired[float]
    played: NotRequired[float]
    diffStart: NotRequired[float]
    diffKeyframe: NotRequired[float]


async def _play_in_chromium(url: str) -> Playback:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            return cast(Playback, await page.evaluate("window.result"))
        finally:
            await browser.close()
