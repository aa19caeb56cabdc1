"""Live caption benchmark (issue 4): caption latency, accuracy and cost against offline Whisper.

Two espeak-ng speakers (different voices) talk in turn. Each speaker's track (their sentences,
silence while the other talks) is encoded into 20 ms Opus packets, as a browser sends them, and
fed at real-time pace into the production path from the SFU tap onwards: a node built by
`junto.app.build_app` (SQLite in a temp dir), the speaker's publication put on air, and the
`LiveCaptioner` tap callbacks (the same ones the SFU calls) copying packets into the caption
worker process (VAD + faster-whisper), whose captions are stored and handed to the hub.

    caption latency = when the `caption` event is handed to the hub - when the utterance's last
                      spoken sample was fed (its end in the source audio, on the feed clock)
    rtf             = CPU time of the caption worker process / audio fed (both tracks)
    caption_wer     = WER of each speaker's captions against their script (all words; a revision
                      in place of the captions it replaces, as a listener ends up reading them)

The baseline, in the same run: plain offline faster-whisper on each speaker's whole WAV (same
model, beam 5, vad_filter=True), baseline_rtf = its CPU time / the same audio duration, and
final_wer its WER: what a second pass over the recordings gets.

    python bench/transcription.py            # 12 turns, two 54 s tracks, fed in real time
    python bench/transcription.py --quick    # a shorter conversation, fed 4x faster (smoke test)

It prints a human summary and, as its last line, one JSON object with at least
{"model", "rtf", "baseline_rtf", "caption_latency_ms_p50", "caption_latency_ms_p95",
 "caption_wer", "final_wer"}. Targets (2 cores, tiny.en): p95 under 1500 ms with two speakers
in turn; rtf within 1.5x baseline_rtf. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # speech_scoring: the tests' WER normalisation

from junto.app import build_app  # noqa: E402
from junto.config import Settings  # noqa: E402
from junto.events.log import StoredEvent  # noqa: E402
from junto.media.base import Publication  # noqa: E402
from junto.speech.caption_worker import WorkerConfig  # noqa: E402
from junto.speech.live import LiveCaptioner, percentile, worker_config  # noqa: E402
from junto.speech.models import load_model  # noqa: E402
from junto.speech.vad import VadConfig  # noqa: E402
from speech_scoring import wer  # noqa: E402

RATE = 48_000
PACKET = 960  # 20 ms

# Speaker, voice, sentence: they talk in turn, each turn one or two sentences.
CONVERSATION: list[tuple[str, str]] = [
    ("ana", "Welcome to the stage. Today we talk about rivers and the cities built beside them."),
    ("ben", "Thank you for having me. I grew up on a houseboat, so this topic is personal."),
    ("ana", "Water brought trade, and trade brought people to the banks."),
    ("ben", "People come back to the water every summer."),
    ("ana", "Some cities turned their backs on the river for a whole century."),
    ("ben", "Then the warehouses emptied, and the water was still there."),
    ("ana", "Parks replace the old docks, and children swim again in the summer."),
    ("ben", "I think we should ask who gets to live by the water now."),
    ("ana", "That is a good question. Rents near the river have doubled in ten years."),
    ("ben", "And the people who worked on the docks cannot afford to stay."),
    ("ana", "Floods are the price of living close to the water."),
    ("ben", "Thank you all for listening. It was a pleasure to be here."),
]
VOICES = {"ana": "en-us", "ben": "en-gb"}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- the conversation ---------------------------------------------------------------------------


@dataclass
class Track:
    """One speaker's audio for the whole conversation, and where their utterances end."""

    name: str
    samples: np.ndarray  # int16, 48 kHz
    script: list[str] = field(default_factory=list)
    utterance_ends: list[float] = field(default_factory=list)  # seconds into the track

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


def spoken(folder: Path, index: int, voice: str, text: str) -> np.ndarray:
    raw, out = folder / f"t{index}-raw.wav", folder / f"t{index}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text], check=True)
    subprocess.run(
        ["sox", str(raw), "-b", "16", "-c", "1", str(out), "norm", "-3", "rate", str(RATE)],
        check=True,
    )
    with wave.open(str(out), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def build_conversation(folder: Path, turns: list[tuple[str, str]], pause_s: float) -> list[Track]:
    tracks = {name: Track(name, np.zeros(0, dtype=np.int16)) for name in VOICES}
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in VOICES}
    at = int(0.5 * RATE)  # a little silence before anybody speaks
    for name in VOICES:
        pieces[name].append(np.zeros(at, dtype=np.int16))
    for index, (who, text) in enumerate(turns):
        audio = spoken(folder, index, VOICES[who], text)
        loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 330)  # above -40 dBFS
        audio = audio[: loud[-1] + 1]  # the turn ends with its last sound
        gap = np.zeros(int(pause_s * RATE), dtype=np.int16)
        for name in VOICES:
            pieces[name].append(audio if name == who else np.zeros(len(audio), dtype=np.int16))
            pieces[name].append(gap)
        tracks[who].script.append(text)
        tracks[who].utterance_ends.append((at + len(audio)) / RATE)
        at += len(audio) + len(gap)
    for name in VOICES:
        tracks[name].samples = np.concatenate([*pieces[name], np.zeros(RATE, dtype=np.int16)])
    return list(tracks.values())


def opus_packets(samples: np.ndarray) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = RATE, "mono", "s16", 32_000
    out: list[bytes] = []
    for start in range(0, len(samples) - len(samples) % PACKET, PACKET):
        frame = av.AudioFrame.from_ndarray(
            samples[start : start + PACKET].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = RATE, start
        out += [bytes(p) for p in enc.encode(frame)]
    return out


# ---- the live pipeline --------------------------------------------------------------------------


@dataclass
class LiveResult:
    latencies_ms: list[float]
    missing: int
    captions: dict[str, list[str]]
    worker_cpu_s: float
    partials: int
    dropped: int
    restarts: int
    load_s: float
    rss_mb: float = 0.0
    revisions: int = 0


async def live_pipeline(
    tracks: list[Track], workdir: Path, config: WorkerConfig, speed: float
) -> LiveResult:
    settings = Settings(
        data_dir=workdir / "data", secret_key="bench", workers=0, recording=False, captions=False
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        node = app.state.node
        captioner = LiveCaptioner(node, config)
        node.on_air.add(captioner)
        await captioner.start()
        process = captioner.process
        assert process is not None  # start() made it, and it restarts its worker in place
        delivered: list[tuple[float, StoredEvent]] = []
        deliver = node.hub.deliver

        async def timed_deliver(event: StoredEvent) -> None:
            await deliver(event)
            if event.type == "caption":
                delivered.append((time.time(), event))

        node.hub.deliver = timed_deliver  # the captioner's last step, timed
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            users, conv_id, started_at = await live_conversation(http, node, tracks)
        publications = [Publication(users[t.name], "camera", True, True) for t in tracks]
        node.on_air.publications_changed(conv_id, publications)
        taps = await wait_for_taps(node, conv_id, [users[t.name] for t in tracks])
        started = time.monotonic()
        while not process.ready:
            await asyncio.sleep(0.05)
        load_s = time.monotonic() - started
        worker = psutil.Process(process.pid)
        cpu_before = sum(worker.cpu_times()[:2])

        packets = [opus_packets(t.samples) for t in tracks]
        t0 = await feed(packets, taps, speed)
        await asyncio.sleep(1.0)
        node.on_air.publications_changed(conv_id, [])  # everybody stops: last utterances end
        async with asyncio.timeout(120):
            await captioner.drain()
        cpu_s = sum(worker.cpu_times()[:2]) - cpu_before
        rss_mb = worker.memory_info().rss / 1e6
        process.request_stats()
        for _ in range(50):
            await asyncio.sleep(0.02)
            if captioner.stats.worker:
                break
        log(f"worker: {captioner.stats.worker}")
        restarts = process.restarts
        result = score_live(tracks, users, delivered, t0, started_at, speed)
        result.worker_cpu_s, result.load_s, result.rss_mb = cpu_s, load_s, rss_mb
        result.partials, result.dropped, result.restarts = (
            int(captioner.stats.worker.get("partials", 0)),
            process.dropped,
            restarts,
        )
        result.revisions = captioner.stats.revisions
        await captioner.stop()
    return result


async def live_conversation(
    http: httpx.AsyncClient, node: Any, tracks: list[Track]
) -> tuple[dict[str, int], int, float]:
    """Members for the speakers and a live conversation (the host is the first speaker)."""
    from junto.conversations import get_by_slug

    users: dict[str, int] = {}
    await http.get("/healthz")
    for track in tracks:
        http.cookies.clear()
        await http.get("/healthz")
        headers = {"X-CSRF-Token": http.cookies["junto_csrf"]}
        body = {"username": track.name, "password": "bench password 1", "display_name": track.name}
        r = await http.post("/api/signup", json=body, headers=headers)
        r.raise_for_status()
        users[track.name] = (await http.get("/api/me")).json()["id"]
    headers = {"X-CSRF-Token": http.cookies["junto_csrf"]}
    r = await http.post("/api/conversations", json={"title": "Rivers"}, headers=headers)
    r.raise_for_status()
    slug = r.json()["slug"]
    (await http.post(f"/api/conversations/{slug}/start", headers=headers)).raise_for_status()
    async with node.db() as db:
        conv = await get_by_slug(db, slug)
    assert conv is not None and conv.started_at is not None  # made and started just above
    return users, conv.id, conv.started_at.timestamp()


async def wait_for_taps(node: Any, room: int, user_ids: list[int]) -> list[list[Any]]:
    for _ in range(200):
        r = node.media.rooms.get(room)
        if r is not None and all(r.taps.get((u, "camera")) for u in user_ids):
            return [r.taps[(u, "camera")] for u in user_ids]
        await asyncio.sleep(0.05)
    raise RuntimeError("the captioner never tapped the speakers")


async def feed(packets: list[list[bytes]], taps: list[list[Any]], speed: float) -> float:
    """Hand every speaker's packet i to their taps at t0 + 20 ms * (i + 1) / speed, as the SFU
    does when a browser's packet arrives. Returns t0 (wall clock of the tracks' first sample)."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    t0 = time.time() + 0.2
    step = 0.02 / speed
    for i in range(max(len(p) for p in packets)):
        delay = start + (i + 1) * step - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        for track_packets, callbacks in zip(packets, taps, strict=True):
            if i < len(track_packets):
                for tap in callbacks:
                    tap("audio", av.Packet(track_packets[i]))
    return t0


def score_live(
    tracks: list[Track],
    users: dict[str, int],
    delivered: list[tuple[float, StoredEvent]],
    t0: float,
    started_at: float,
    speed: float,
) -> LiveResult:
    latencies: list[float] = []
    missing = 0
    captions: dict[str, list[str]] = {}
    for track in tracks:
        everything = [(at, e) for at, e in delivered if e.data["user"]["id"] == users[track.name]]
        captions[track.name] = as_read([e for _, e in everything])
        # Latency is the first version's: a revision (`replaces`) comes later by design.
        mine = [(at, e) for at, e in everything if not e.data.get("replaces")]
        # Caption end on the track's clock: the worker's timeline counts samples from the first
        # packet's arrival (t0), so it is audio time even when the feed runs faster.
        ends = [(started_at + e.data["end_ms"] / 1000) - t0 for _, e in mine]
        for utterance_end in track.utterance_ends:
            # The caption whose end is closest to where this utterance stopped (within 2 s; the
            # caption's end includes 100 ms of padding after the last word).
            near = [
                (abs(end - utterance_end - 0.1), at)
                for end, (at, _) in zip(ends, mine, strict=True)
                if abs(end - utterance_end) < 2.0
            ]
            if not near:
                missing += 1
                continue
            at = min(near)[1]
            latencies.append((at - (t0 + utterance_end / speed)) * 1000)
    return LiveResult(latencies, missing, captions, 0.0, 0, 0, 0, 0.0)


def as_read(events: list[StoredEvent]) -> list[str]:
    """The caption texts a listener ends with: each revision in place of what it `replaces`
    (docs/protocol.md, "Captions"), in time order."""
    standing: dict[int, tuple[int, str]] = {}
    for event in events:
        for replaced in event.data.get("replaces", ()):
            standing.pop(replaced, None)
        standing[event.id] = (event.data["start_ms"], event.data["text"])
    return [text for _, text in sorted(standing.values())]


# ---- the baseline -------------------------------------------------------------------------------


def baseline(
    tracks: list[Track], workdir: Path, model_name: str, threads: int
) -> tuple[float, dict[str, str]]:
    """Offline faster-whisper over each speaker's whole WAV: (CPU seconds, text per speaker)."""
    settings = Settings(data_dir=workdir / "data")
    model = load_model(model_name, settings, cpu_threads=threads)
    texts: dict[str, str] = {}
    cpu = 0.0
    for track in tracks:
        path = workdir / f"{track.name}-track.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(track.samples.tobytes())
        before = time.process_time()
        segments, _ = model.transcribe(str(path), language="en", beam_size=5, vad_filter=True)
        texts[track.name] = " ".join(s.text.strip() for s in segments)
        cpu += time.process_time() - before
    return cpu, texts


# ---- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam", type=int, default=1, help="caption beam (the node's default 1)")
    parser.add_argument("--threads", type=int, default=2, help="worker cpu_threads")
    parser.add_argument("--min-silence-ms", type=int, default=400, help="VAD end of utterance")
    parser.add_argument("--no-partials", action="store_true", help="no partial captions")
    parser.add_argument("--pause", type=float, default=0.8, help="seconds between turns")
    parser.add_argument("--speed", type=float, default=1.0, help="feed speed (1 = real time)")
    parser.add_argument("--quick", action="store_true", help="4 turns at 4x speed (smoke test)")
    args = parser.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is required")
    turns = CONVERSATION[:4] if args.quick else CONVERSATION
    speed = 4.0 if args.quick else args.speed

    with tempfile.TemporaryDirectory(prefix="junto-bench-tr-") as tmp:
        workdir = Path(tmp)
        tracks = build_conversation(workdir, turns, args.pause)
        audio_s = sum(t.seconds for t in tracks)
        log(f"conversation: {len(turns)} turns, 2 tracks of {tracks[0].seconds:.1f} s")
        base = worker_config(Settings(data_dir=workdir / "data", caption_model=args.model))
        config = WorkerConfig(
            model=base.model,
            english_only=base.english_only,
            beam=args.beam,
            cpu_threads=args.threads,
            partials=not args.no_partials,
            vad=VadConfig(min_silence_ms=args.min_silence_ms),
        )
        live = asyncio.run(live_pipeline(tracks, workdir, config, speed))
        baseline_cpu, baseline_texts = baseline(tracks, workdir, args.model, args.threads)

    scripts = {t.name: " ".join(t.script) for t in tracks}
    reference = " ".join(scripts[t.name] for t in tracks)
    caption_wer = wer(reference, " ".join(" ".join(live.captions[t.name]) for t in tracks))
    final_wer = wer(reference, " ".join(baseline_texts[t.name] for t in tracks))
    result = {
        "model": args.model,
        "rtf": round(live.worker_cpu_s / audio_s, 4),
        "baseline_rtf": round(baseline_cpu / audio_s, 4),
        "caption_latency_ms_p50": percentile(live.latencies_ms, 50),
        "caption_latency_ms_p95": percentile(live.latencies_ms, 95),
        "caption_latency_ms_max": round(max(live.latencies_ms), 1) if live.latencies_ms else None,
        "caption_wer": round(caption_wer, 4),
        "final_wer": round(final_wer, 4),
        "audio_s": round(audio_s, 1),
        "speakers": len(tracks),
        "utterances": sum(len(t.utterance_ends) for t in tracks),
        "missing_utterances": live.missing,
        "partials": live.partials,
        "revisions": live.revisions,
        "dropped_packets": live.dropped,
        "worker_restarts": live.restarts,
        "worker_cpu_s": round(live.worker_cpu_s, 2),
        "baseline_cpu_s": round(baseline_cpu, 2),
        "worker_start_s": round(live.load_s, 2),
        "worker_rss_mb": round(live.rss_mb),
        "beam": args.beam,
        "threads": args.threads,
        "min_silence_ms": args.min_silence_ms,
        "feed_speed": speed,
        "targets": {"caption_latency_ms_p95": 1500, "rtf_over_baseline_max": 1.5},
    }
    ratio = result["rtf"] / result["baseline_rtf"] if result["baseline_rtf"] else float("nan")
    print(f"model {args.model}, {len(turns)} turns, {audio_s:.1f} s of audio in 2 tracks")
    print(
        f"live captions: latency p50 {result['caption_latency_ms_p50']} ms, "
        f"p95 {result['caption_latency_ms_p95']} ms (target < 1500), WER {caption_wer:.1%}, "
        f"rtf {result['rtf']} ({live.partials} partials, {live.missing} utterances uncaptioned)"
    )
    print(
        f"baseline (offline, beam 5, vad_filter): rtf {result['baseline_rtf']}, "
        f"WER {final_wer:.1%}; live/baseline cost {ratio:.2f}x (target <= 1.5x)"
    )
    for track in tracks:
        print(f"  {track.name} captions: {' | '.join(live.captions[track.name])}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
