"""How long making a snippet takes, end to end, against plain `ffmpeg -c copy` of the same range.

    .venv/bin/python bench/snippets.py                 # a 10-minute 1280x720 composite
    .venv/bin/python bench/snippets.py --quick         # 1 minute, 320x180 (the smoke test)

It renders a composite the way junto.compositing does (H.264 veryfast, 20 fps, a keyframe a
second, AAC 128k) plus the audio mix, puts them behind an in-process node (SQLite) as a
published conversation with a word every 0.4 s in its transcript, then, for each length
(10/30/60 s), times `POST /api/conversations/{slug}/snippets` (validate, snap, store, cut clip,
audio and thumbnail, write captions, queue the search job) at starts spread over the
recording. The baseline, measured on the same ranges, is one `ffmpeg -ss S -i composite.mp4 -t D
-c copy` process: the least any stream-copy cut costs. Also measured: the audio re-encoded to
AAC instead of copied (the alternative junto.clips decided against). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager  # type: ignore[import-not-found]

from junto.app import build_app
from junto.compositing import FPS
from junto.config import Settings
from junto.enums import ConversationState
from junto.jobs.ffmpeg import find_ffmpeg
from junto.storage.tables import Conversation, ConversationMedia, Transcript, TranscriptSegment
from junto.storage.types import utcnow


def render(ffmpeg: str, folder: Path, seconds: int, size: str) -> tuple[Path, Path]:
    video, audio = folder / "composite.mp4", folder / "audio.m4a"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={FPS}",
         "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p",
         "-r", str(FPS), "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0",
         "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-movflags", "+faststart", str(video)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-i", str(video), "-map", "0:a", "-c", "copy", str(audio)],
        check=True,
    )
    return video, audio


async def seed(
    app: Any, data_dir: Path, video: Path, audio: Path, seconds: int, user_id: int
) -> str:
    node = app.state.node
    async with node.db() as db:
        conv = Conversation(
            slug="benchconv", title="Bench", state=ConversationState.PUBLISHED,
            started_at=utcnow(), ended_at=utcnow(), published_at=utcnow(), created_by=user_id,
        )  # fmt: skip
        db.add(conv)
        await db.flush()
        db.add(Transcript(conversation_id=conv.id, model="bench"))
        for seq, at in enumerate(range(0, seconds * 1000, 10_000)):
            words = [(t, t + 350, f"w{t // 400}") for t in range(at, at + 10_000, 400)]
            db.add(
                TranscriptSegment(
                    conversation_id=conv.id, seq=seq, user_id=user_id, start_ms=at,
                    end_ms=at + 10_000, text=" ".join(w[2] for w in words),
                    words=json.dumps(words),
                )
            )  # fmt: skip
        for kind, path, mime in (("composite", video, "video/mp4"), ("audio", audio, "audio/mp4")):
            rel = str(path.relative_to(data_dir))
            db.add(
                ConversationMedia(
                    conversation_id=conv.id, kind=kind, path=rel, mime=mime,
                    duration_s=float(seconds), bytes=path.stat().st_size,
                )
            )  # fmt: skip
        await db.commit()
        return conv.slug


def timed(args: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - began


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--lengths", default="10,30,60", help="snippet lengths in seconds")
    parser.add_argument("--repeat", type=int, default=5, help="snippets per length")
    parser.add_argument("--quick", action="store_true", help="1 minute at 320x180, 2 repeats")
    opts = parser.parse_args()
    if opts.quick:
        opts.minutes, opts.size, opts.repeat, opts.lengths = 1, "320x180", 2, "10,30"
    seconds = int(opts.minutes * 60)
    lengths = [int(x) for x in opts.lengths.split(",")]
    with tempfile.TemporaryDirectory(prefix="junto-bench-snippets-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        settings = Settings(data_dir=root / "data", secret_key="bench", workers=0)
        ffmpeg = find_ffmpeg(settings)
        began = time.perf_counter()
        media_dir = settings.data_dir / "recordings" / "1"  # the conversation seed() makes
        media_dir.mkdir(parents=True)
        video, audio = render(ffmpeg, media_dir, seconds, opts.size)
        took, mb = time.perf_counter() - began, video.stat().st_size / 1e6
        print(f"composite: {seconds} s at {opts.size}, rendered in {took:.1f} s, {mb:.1f} MB")
        app = build_app(settings)
        results: dict[str, Any] = {}
        async with LifespanManager(app, startup_timeout=120):
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench"
            )
            await client.get("/healthz")
            csrf = {"X-CSRF-Token": client.cookies["junto_csrf"]}
            signed = await client.post(
                "/api/signup",
                json={"username": "bencher", "password": "correct horse battery"},
                headers=csrf,
            )
            assert signed.status_code == 201, signed.text
            me = (await client.get("/api/me")).json()
            csrf = {"X-CSRF-Token": client.cookies["junto_csrf"]}
            slug = await seed(app, settings.data_dir, video, audio, seconds, int(me["id"]))
            for length in lengths:
                create, copy, reencode = [], [], []
                span = max(seconds - length - 2, 1)
                for i in range(opts.repeat):
                    start_ms = int((1 + span * (i + 0.37) / opts.repeat) * 1000)
                    end_ms = start_ms + length * 1000
                    t0 = time.perf_counter()
                    answer = await client.post(
                        f"/api/conversations/{slug}/snippets",
                        json={"start_ms": start_ms, "end_ms": end_ms},
                        headers=csrf,
                    )
                    create.append(time.perf_counter() - t0)
                    assert answer.status_code == 201, answer.text
                    ss, dur = f"{start_ms / 1000:.3f}", str(length)
                    cut = [ffmpeg, "-v", "error", "-y", "-ss", ss]
                    copy.append(timed([*cut, "-i", str(video), "-t", dur, "-c", "copy",
                                       str(root / "base.mp4")]))  # fmt: skip
                    reencode.append(timed([*cut, "-i", str(audio), "-t", dur, "-c:a", "aac",
                                           "-b:a", "128k", str(root / "base.m4a")]))  # fmt: skip
                results[f"{length}s"] = {
                    "create_median_s": round(statistics.median(create), 3),
                    "create_max_s": round(max(create), 3),
                    "baseline_copy_median_s": round(statistics.median(copy), 3),
                    "audio_reencode_median_s": round(statistics.median(reencode), 3),
                }
                r = results[f"{length}s"]
                print(f"{length:>3} s snippet: create {r['create_median_s']:.3f} s median "
                      f"(max {r['create_max_s']:.3f}); baseline ffmpeg -c copy "
                      f"{r['baseline_copy_median_s']:.3f} s; audio re-encode alone "
                      f"{r['audio_reencode_median_s']:.3f} s")  # fmt: skip
            await client.aclose()
    print(json.dumps({"bench": "snippets", "composite_s": seconds, "size": opts.size,
                      "repeat": opts.repeat, "results": results}))  # fmt: skip


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
