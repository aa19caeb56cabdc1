"""How long people wait for the transcript after a conversation ends (issue 13, item 3).

An ended conversation of `--speakers` speakers, each with one WebM piece of `--seconds` (a VP8
test picture and espeak-ng speech, as the recorder writes them), and its jobs queued in the order
ending queues them: the composite video and the transcript build at the end
(`processing.after_end`), then one `transcript.track` per piece (as finalizing each piece does).
ONE worker (what `JUNTO_WORKERS=auto` starts on 2 cores) runs everything, in this process, with
the real handlers: Whisper per track, the merge, knowledge, the search index, the ffmpeg
composite. Measured from the worker's start:

    transcript_ready_s  until the transcript exists (transcript.build succeeded)
    knowledge_ready_s   until the summary and the search index exist
    all_done_s          until every job has finished (the video too)

The baseline, in the same run on a fresh database: the same conversation with every job at one
priority, so the worker takes them first in, first out (the queue before issue 13). The models
are loaded before either run, so neither pays for it.

    python bench/job_order.py                      # 4 speakers x 30 s (a 2-minute conversation)
    python bench/job_order.py --speakers 1 --seconds 4   # smoke test

It prints a human summary, with each job's timeline (queued, last started, finished, from the
worker's start: where the seconds go), and, as its last line, one JSON object with at least
{"transcript_ready_s", "baseline_transcript_ready_s", "knowledge_ready_s",
 "baseline_knowledge_ready_s", "all_done_s", "baseline_all_done_s"}. A measurement, never a
pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from junto import processing
from junto.config import Settings
from junto.enums import ConversationState, JobState, RecordingState
from junto.jobs import queue, registry
from junto.jobs.ffmpeg import find_ffmpeg
from junto.jobs.worker import run_worker
from junto.knowledge.embeddings import get_embedder
from junto.speech.models import load_model
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade
from junto.storage.tables import Conversation, Job, Recording, User
from junto.storage.types import utcnow

VOICES = ("en-us", "en-gb", "en+f3", "en-us+m3")
LINES = (
    "Thanks for joining. The budget for the river project is about four thousand dollars.",
    "We agreed to start the survey in March, and the city will send its maps next week.",
    "The boats need new engines before the summer, which costs more than we planned.",
    "Let us meet again on Thursday to decide who writes the report for the council.",
)


def speech_wav(path: Path, voice: str, seconds: float) -> None:
    """espeak-ng saying LINES over and over, cut to `seconds`."""
    text = " ".join(LINES * max(1, int(seconds // 15) + 1))
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", str(path), "trim", "0",
                    f"{seconds}"], check=True)  # fmt: skip
    raw.unlink()


def piece_webm(settings: Settings, wav: Path, out: Path, seconds: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [find_ffmpeg(settings), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc=size=320x240:rate=20", "-i", str(wav),
         "-t", f"{seconds}", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
         "-b:v", "400k", "-c:a", "libopus", "-b:a", "32k", str(out)],
        check=True,
    )  # fmt: skip


async def seed(settings: Settings, pieces: list[Path], seconds: float) -> int:
    """An ended conversation whose speakers talked in turn, one piece each; its jobs queued as
    ending and finalizing queue them. Returns the conversation's id."""
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    start = utcnow() - timedelta(hours=1)
    try:
        async with sessions() as db:
            host = User(display_name="Host", colour="#000000")
            db.add(host)
            await db.flush()
            conv = Conversation(
                slug=secrets.token_hex(4), title="River project", state=ConversationState.ENDED,
                started_at=start, ended_at=start + timedelta(seconds=seconds * len(pieces)),
                created_by=host.id,
            )  # fmt: skip
            db.add(conv)
            await db.flush()
            recordings = []
            for i, webm in enumerate(pieces):
                speaker = User(display_name=f"Speaker {i + 1}", colour="#336699")
                db.add(speaker)
                await db.flush()
                relative = f"recordings/{conv.id}/piece{i}.webm"
                (settings.data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
                webm.replace(settings.data_dir / relative)
                rec = Recording(
                    conversation_id=conv.id, user_id=speaker.id, source="camera",
                    state=RecordingState.READY, journal_path=relative + ".journal", path=relative,
                    started_at=start + timedelta(seconds=seconds * i), duration_s=seconds,
                    has_audio=True, has_video=True,
                )  # fmt: skip
                db.add(rec)
                recordings.append(rec)
            await processing.after_end(db, conv.id)  # the video and the build, at the end
            await db.flush()
            for rec in recordings:  # then a track per piece, as finalizing queues them
                await queue.enqueue(db, "transcript.track", {"recording_id": rec.id},
                                    conversation_id=conv.id, unique=True)  # fmt: skip
            await db.commit()
            return conv.id
    finally:
        await engine.dispose()


def one_priority(fifo: bool) -> None:
    """The baseline: every kind at one priority, so the worker (in this process) takes jobs
    first in, first out, as before issue 13. Rebinds the name the queue imported, so mypy
    sees an assignment to an attribute the module does not export."""
    queue.priority_of = (lambda kind: 30) if fifo else registry.priority_of  # type: ignore[assignment,attr-defined]


async def run(settings: Settings) -> tuple[dict[str, float], list[str]]:
    """Run one worker until every job has finished; when each milestone was reached."""
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    stop = asyncio.Event()
    began = time.perf_counter()
    wall_start = utcnow()
    worker = asyncio.create_task(run_worker(settings, "bench-worker", stop_event=stop))
    marks: dict[str, float] = {}
    try:
        while True:
            async with sessions() as db:
                jobs = list((await db.scalars(select(Job))).all())
            done = {j.kind for j in jobs if j.state == JobState.SUCCEEDED}
            failed = [f"{j.kind}: {j.error}" for j in jobs if j.state == JobState.FAILED]
            if failed:
                raise SystemExit(f"a job failed: {failed}")
            at = time.perf_counter() - began
            if "transcript.build" in done:
                marks.setdefault("transcript_ready_s", at)
            if {"knowledge.extract", "search.index"} <= done:
                marks.setdefault("knowledge_ready_s", at)
            if jobs and all(j.state == JobState.SUCCEEDED for j in jobs):
                marks["all_done_s"] = at
                return marks, _timeline(jobs, wall_start)
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await worker
        await engine.dispose()


def _timeline(jobs: list[Job], origin: datetime) -> list[str]:
    """Each job, in the order they finished: when it was queued, last started and finished,
    in seconds from the worker's start (where the seconds between the end and the transcript
    go: waiting in the queue, postponed, or working)."""

    def at(when: datetime | None) -> str:
        return "-" if when is None else f"{(when - origin).total_seconds():6.1f}"

    ran = sorted(jobs, key=lambda j: j.finished_at or j.updated_at)
    return [
        f"{j.kind:<18} queued {at(j.created_at)}  started {at(j.started_at)}  "
        f"finished {at(j.finished_at)}  ({_took(j):.1f} s)"
        for j in ran
    ]


def _took(job: Job) -> float:
    if job.started_at is None or job.finished_at is None:
        return 0.0
    return (job.finished_at - job.started_at).total_seconds()


def prepare(folder: Path, speakers: int, seconds: float) -> Settings:
    settings = Settings(data_dir=folder / "data", secret_key="bench", workers=0)
    settings.data_dir.mkdir(parents=True)
    upgrade(settings.effective_database_url)
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    orders: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm = Settings(data_dir=root / "warm", secret_key="bench", workers=0)
        load_model(warm.transcript_model, warm)  # both runs find the models loaded
        get_embedder()
        wavs = []
        for i in range(args.speakers):
            wav = root / f"speaker{i}.wav"
            speech_wav(wav, VOICES[i % len(VOICES)], args.seconds)
            wavs.append(wav)
        for label, fifo in (("baseline", True), ("priorities", False)):
            settings = prepare(root / label, args.speakers, args.seconds)
            webms = []
            for i, wav in enumerate(wavs):
                webm = root / label / f"piece{i}.webm"
                piece_webm(settings, wav, webm, args.seconds)
                webms.append(webm)
            one_priority(fifo)
            asyncio.run(seed(settings, webms, args.seconds))
            results[label], orders[label] = asyncio.run(run(settings))
    new, old = results["priorities"], results["baseline"]
    minutes = args.speakers * args.seconds / 60
    print(f"{args.speakers} speakers x {args.seconds:.0f} s ({minutes:.1f} min), one worker")
    for key, name in (
        ("transcript_ready_s", "transcript ready"),
        ("knowledge_ready_s", "summary and search ready"),
        ("all_done_s", "everything done (video too)"),
    ):
        print(f"  {name}: {new[key]:.1f} s (first in, first out baseline: {old[key]:.1f} s)")
    for label, order in orders.items():
        print(f"  {label}, in the order they finished (s from the worker's start):")
        for line in order:
            print(f"    {line}")
    summary = {
        "speakers": args.speakers,
        "seconds_each": args.seconds,
        "workers": 1,
        **{k: round(v, 2) for k, v in new.items()},
        **{f"baseline_{k}": round(v, 2) for k, v in old.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
