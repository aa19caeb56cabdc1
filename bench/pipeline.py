"""End-to-end speech benchmark (issue 13): real Chromium speakers, through the node, to knowledge
and search, against faster-whisper on the speakers' source audio in the same run.

Four people (bench/pipeline_script.py: a planning call with decisions, offers, requests by name,
amounts) each run a Chromium of their own whose fake microphone plays their espeak-ng WAV
(`--use-file-for-fake-audio-capture=<wav>%noloop`, tests/media/conversation_support: their own
turns, silence while the others talk, so all start together and speak in turn). They go on the
stage of a live conversation on a real `junto serve` process (captions and one job worker on),
talk, and the host ends the conversation. Then the node's jobs build the final transcript and
the knowledge (`knowledge.extract`), the host publishes, and paraphrase queries go to the
search API.

    python bench/pipeline.py            # 4 speakers, 21 turns (about 2 minutes)
    python bench/pipeline.py --quick    # 2 speakers, 4 turns (about 30 s): a smoke test

Measured (human summary, then one JSON line):

- `final_wer`: the final transcript's segments of each speaker against their script (corpus
  WER over speakers, tests/speech_scoring normalisation). `baseline_final_wer`: faster-whisper,
  same model and beam as the final pass, `vad_filter=True`, on each speaker's source WAV.
  `recording_wer`: the same plain faster-whisper on each speaker's recorded WebM (what the
  browser -> WebRTC -> recording path loses, without the final pass's own processing).
- `caption_wer`: the captions the host's page received, per speaker, the same way.
- caption latency per utterance (a turn): from the end of its speech in the speaker's WAV (the
  last sample above -40 dBFS) to when the `caption` event arrived on the host page's room
  WebSocket (Playwright's `framereceived`, stamped on arrival). The WAV's clock is put on the
  node's wall clock through the speaker's recording: the recording's t = 0 is `started_at`, the
  wall clock of its first packet at the node (junto.recording.webm), and the recording's audio
  is cross-correlated with the source WAV (20 ms loudness contours, speech_support.features)
  to find which second of the WAV that was. So a WAV time t happened at
  `started_at + t - lag` as the node hears it. This leaves out the browser's capture, encode
  and send time; the correlation's step is 20 ms. The page's own getUserMedia time (a second
  anchor, `anchor_gum_minus_rec_ms`; `caption_latency_ms_p95_mic_anchor` is the p95 from it)
  shows how far the two anchors disagree. The caption of a turn is found by its words (see
  `caption_latencies`).
- `transcript_ready_s`: from the host's "end" call to the `transcript.build` job's finish.
- `names_right`: the share of the participants' first names in the scripts that the final
  transcript has at the same place (a jiwer alignment, equal words only).
- `knowledge_f1`: mean over kinds (questions, decisions, action items) of the F1 of the
  `knowledge.extract` output against the labelled items. A found item matches a labelled one of
  the same kind when its time overlaps (within 1.5 s) one of the turns that carry the label AND
  it shares at least half the content words (not stop words) of that turn's labelled sentence,
  so a misheard word does not lose the match, but another sentence of the same turn does not
  win it. Precision: found items that match a label; recall: labels matched. `owner_accuracy`:
  matched action items whose owner is the labelled person.
- `search_recall_at_3`: share of the paraphrase queries whose top 3 passages (search API, the
  published conversation) include one overlapping (within 1 s) a turn labelled for the query.

A what-if for the clean speech path (item 1): `--audio "echoCancellation=true,noiseSuppression=
true,autoGainControl=true"` overrides the capture constraints media.js asks for (in every page,
before its scripts run), so each constraint can be measured without editing the page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in ("tests", "tests/media", "tests/browser"):
    sys.path.insert(0, str(ROOT / folder))

from conversation_support import Track, make_conversation  # noqa: E402
from media_support import (  # noqa: E402
    MediaPerson,
    api,
    enter_room,
    join_stage,
    launch_person,
    set_role,
    sign_up,
    start_media_node,
    wait_until,
)
from playwright.async_api import async_playwright  # noqa: E402
from speech_support import Speech  # noqa: E402

from junto.config import Settings  # noqa: E402
from junto.speech.live import percentile  # noqa: E402
from junto.speech.models import load_model  # noqa: E402
from pipeline_scoring import (  # noqa: E402
    Anchor,
    KindScore,
    find_anchor,
    knowledge_scores,
    names_right,
    search_hit,
    shown_captions,
    speech_ends,
    turn_spans,
)
from pipeline_script import (  # noqa: E402
    QUICK_TURNS,
    SPEAKERS,
    TAGS,
    TITLE,
    items_for,
    queries_for,
    turns_for,
)
from speech_scoring import corpus_wer, normalize, wer  # noqa: E402

RATE = 48_000
WPM = 150
JOBS_TIMEOUT = 600.0  # s: a loaded 2-core machine renders the composite first


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- the browsers ------------------------------------------------------------------------------

# Runs in every page before its own scripts: notes when getUserMedia opened the microphone (the
# file capture starts then), and applies the benchmark's what-if to the capture constraints.
HOOKS_JS = """(() => {
  const cfg = %s;
  window.__juntoMicAt = [];
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const open = md.getUserMedia.bind(md);
    md.getUserMedia = async (c) => {
      if (cfg.audio && c && c.audio) {
        const base = typeof c.audio === 'object' ? c.audio : {};
        c = Object.assign({}, c, {audio: Object.assign({}, base, cfg.audio)});
      }
      if (cfg.video === 'off' && c && c.video) {
        c = Object.assign({}, c, {video: false});
      } else if (cfg.video && c && c.video) {
        c = Object.assign({}, c, {video: cfg.video});
      }
      const stream = await open(c);
      if (c && c.audio) {
        window.__juntoMicAt.push(Date.now());
        window.__juntoAudioSettings = stream.getAudioTracks().map((t) => t.getSettings());
      }
      return stream;
    };
  }
})();"""


def parse_constraints(text: str) -> dict[str, bool] | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip().lower() in ("1", "true", "yes", "on")
    return out


def parse_video(text: str) -> dict[str, int] | str | None:
    """ "320x180@10" as getUserMedia video constraints; "" leaves what media.js asks; "off":
    speakers without cameras (microphones only)."""
    if not text:
        return None
    if text == "off":
        return "off"
    size, _, rate = text.partition("@")
    width, _, height = size.partition("x")
    return {"width": int(width), "height": int(height), "frameRate": int(rate or 20)}


@dataclass
class Live:
    """What the node did with the conversation, as the host's browser and the node's files saw
    it."""

    slug: str
    conv_started: float  # wall clock of the conversation's t = 0
    ids: dict[str, int]  # speaker -> user id
    captions: list[tuple[float, dict[str, Any]]]  # (wall clock of arrival, caption data)
    segments: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    ended_at: float
    knowledge: dict[str, Any] | None
    search: dict[str, list[dict[str, Any]]]
    recordings: dict[str, tuple[Path, float]]  # speaker -> (first piece, its started_at)
    mic_opened: dict[str, list[float]]  # speaker -> wall clocks of getUserMedia
    audio_settings: dict[str, Any] = field(default_factory=dict)
    late_captions: list[str] = field(default_factory=list)  # the node's "caption timing" lines


def late_caption_lines(node_log: Path) -> list[str]:
    """The node's account of each caption later than 1.5 s (junto.speech.live._log_timing)."""
    if not node_log.is_file():
        return []
    lines = node_log.read_text(errors="replace").splitlines()
    return [line.split("caption timing: ", 1)[1] for line in lines if "caption timing: " in line]


def wall(iso: str) -> float:
    at = datetime.fromisoformat(iso.replace("Z", "+00:00").replace(" ", "T"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


async def api_ok(person: MediaPerson, method: str, path: str, body: Any = None) -> Any:
    status, data = await api(person.page, method, path, body)
    if not 200 <= status < 300:
        raise RuntimeError(f"{method} {path}: {status} {data}")
    return data


async def run_live(
    args: argparse.Namespace, tracks: dict[str, Track], folder: Path, queries: list[str]
) -> Live:
    # Info: the node logs each caption later than 1.5 s with where its time went.
    env = {"JUNTO_CAPTIONS": "1", "JUNTO_WORKERS": "1", "JUNTO_LOG_LEVEL": "info"}
    env.update(dict(kv.split("=", 1) for kv in args.node_env))
    node = start_media_node(folder / "node", **env)
    try:
        async with async_playwright() as pw:
            people = await asyncio.gather(
                *(
                    launch_person(
                        pw,
                        folder / name,
                        name,
                        Speech(track.path, [], track.seconds),
                        node.url,
                    )
                    for name, track in tracks.items()
                )
            )
            try:
                live = await converse(args, node, dict(zip(tracks, people, strict=True)), queries)
            finally:
                for person in people:
                    await person.close()
    finally:
        node.stop()
        if args.keep:
            log(f"node log: {node.data_dir / 'node.log'}")
    live.late_captions = late_caption_lines(node.data_dir / "node.log")
    return live


def renice_browsers(profiles: list[Path], nice: int) -> None:
    """Give the speakers' Chromiums (each browser process, found by its profile folder, and
    everything under it) the nice value `nice` (a what-if: they share this machine with the
    node only because the benchmark has one machine). Measured: at nice 10 they got less CPU
    than their fake microphones need and the recordings lost words (recording WER 10.8 %
    against 7.7-8.1 % at nice 0), so the default is 0 and the cameras are made light instead
    (`--video`)."""
    import psutil

    if nice <= 0:
        return
    folders = [str(p) for p in profiles]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or ())
        if not any(f"--user-data-dir={folder}" in cmdline for folder in folders):
            continue
        try:
            for member in [proc, *proc.children(recursive=True)]:
                member.nice(max(member.nice(), nice))
        except psutil.Error:
            continue


async def converse(
    args: argparse.Namespace, node: Any, people: dict[str, MediaPerson], queries: list[str]
) -> Live:
    hooks = HOOKS_JS % json.dumps(
        {"audio": parse_constraints(args.audio), "video": parse_video(args.video)}
    )
    for person in people.values():
        await person.context.add_init_script(hooks)
    names = list(people)
    host = people[names[0]]
    for name, person in people.items():
        await sign_up(person, SPEAKERS[name][0])
    ids = {name: person.id for name, person in people.items()}
    status, body = await api(
        host.page, "POST", "/api/conversations", {"title": TITLE, "tags": TAGS}
    )
    if status != 201:
        raise RuntimeError(f"creating the conversation: {status} {body}")
    slug = body["slug"]
    await api_ok(host, "POST", f"/api/conversations/{slug}/start", {})
    for name in names[1:]:
        await set_role(host, slug, ids[name], "speaker")
    await asyncio.gather(*(enter_room(p, slug) for p in people.values()))
    detail = await api_ok(host, "GET", f"/api/conversations/{slug}")
    conv_started = wall(detail["started_at"])
    # Every microphone opens at about the same moment, so the turns stay turns.
    await asyncio.gather(*(join_stage(p) for p in people.values()))
    joined = time.monotonic()
    renice_browsers([p.profile for p in people.values() if p.profile], args.browser_nice)
    talk = max(p.speech.seconds for p in people.values() if p.speech)
    log(f"on stage: {len(people)} speakers, talking for {talk:.0f} s")
    await asyncio.sleep(max(0.0, talk - (time.monotonic() - joined)))
    # The last caption comes a moment after the last word.
    await asyncio.sleep(4.0)
    await api_ok(host, "POST", f"/api/conversations/{slug}/end", {})
    ended_at = time.time()
    log("ended; waiting for the transcript and knowledge")
    offset = time.time() - time.monotonic()
    captions = [(at + offset, f["data"]) for at, f in host.received("caption")]

    async def jobs() -> list[dict[str, Any]]:
        return list(await api_ok(host, "GET", f"/api/conversations/{slug}/jobs"))

    def finished(kinds: set[str]) -> Any:
        def ok(js: list[dict[str, Any]]) -> bool:
            mine = [j for j in js if j["kind"] in kinds]
            return {j["kind"] for j in mine} == kinds and all(
                j["state"] in ("succeeded", "failed") for j in mine
            )

        return ok

    await wait_until(
        jobs, finished({"transcript.build"}), "the transcript", JOBS_TIMEOUT, every=0.5
    )
    transcript = await api_ok(host, "GET", f"/api/conversations/{slug}/transcript")
    done = await wait_until(
        jobs,
        finished({"transcript.build", "knowledge.extract", "search.index"}),
        "knowledge and search",
        JOBS_TIMEOUT,
        every=1.0,
    )
    await api_ok(host, "POST", f"/api/conversations/{slug}/publish", {})
    search: dict[str, list[dict[str, Any]]] = {}
    for q in queries:
        path = "/api/search?" + "&".join([f"q={_quote(q)}", "limit=3"])
        search[q] = (await api_ok(host, "GET", path))["results"]
    mic_opened = {
        name: [t / 1000 for t in await p.page.evaluate("window.__juntoMicAt || []")]
        for name, p in people.items()
        if not p.closed
    }
    audio_settings = await host.page.evaluate("window.__juntoAudioSettings || null")
    return Live(
        slug=slug,
        conv_started=conv_started,
        ids=ids,
        captions=captions,
        segments=transcript["segments"],
        jobs=done,
        ended_at=ended_at,
        knowledge=read_knowledge(node.data_dir, slug),
        search=search,
        recordings=read_recordings(node.data_dir, slug, ids),
        mic_opened=mic_opened,
        audio_settings={"host": audio_settings},
    )


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


def read_knowledge(data_dir: Path, slug: str) -> dict[str, Any] | None:
    import sqlite3

    db = sqlite3.connect(data_dir / "junto.sqlite3")
    try:
        row = db.execute(
            "SELECT k.data FROM conversation_knowledge k JOIN conversations c "
            "ON c.id = k.conversation_id WHERE c.slug = ?",
            (slug,),
        ).fetchone()
    finally:
        db.close()
    return json.loads(row[0]) if row else None


def read_recordings(
    data_dir: Path, slug: str, ids: dict[str, int]
) -> dict[str, tuple[Path, float]]:
    """Each speaker's first recorded piece with camera audio, and the wall clock of its t = 0."""
    import sqlite3

    db = sqlite3.connect(data_dir / "junto.sqlite3")
    try:
        rows = db.execute(
            "SELECT r.user_id, r.path, r.started_at FROM recordings r JOIN conversations c "
            "ON c.id = r.conversation_id WHERE c.slug = ? AND r.source = 'camera' "
            "AND r.path IS NOT NULL AND r.has_audio ORDER BY r.started_at",
            (slug,),
        ).fetchall()
    finally:
        db.close()
    name_of = {uid: name for name, uid in ids.items()}
    out: dict[str, tuple[Path, float]] = {}
    for uid, path, started in rows:
        if uid in name_of and name_of[uid] not in out:
            out[name_of[uid]] = (data_dir / path, wall(str(started)))
    return out


# ---- plain faster-whisper: the baseline ----------------------------------------------------------


def plain_whisper(paths: dict[str, Path], model: str, beam: int, threads: int) -> dict[str, str]:
    """faster-whisper as anyone would call it (as bench/transcription.py's baseline): the same
    model and beam as the final pass, vad_filter=True, English."""
    settings = Settings(data_dir=Path(tempfile.gettempdir()))
    whisper = load_model(model, settings, cpu_threads=threads)
    texts = {}
    for name, path in paths.items():
        try:
            segments, _ = whisper.transcribe(
                str(path), language="en", beam_size=beam, vad_filter=True
            )
            texts[name] = " ".join(s.text.strip() for s in segments)
        except (av.error.FFmpegError, IndexError) as exc:  # a piece without audio
            log(f"could not transcribe {path}: {exc!r}")
            texts[name] = ""
    return texts


def decode_mono(path: Path) -> np.ndarray:
    """The audio of a media file as float32 mono at 48 kHz."""
    out: list[np.ndarray] = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for piece in resampler.resample(frame):
                out.append(piece.to_ndarray().reshape(-1))
    for piece in resampler.resample(None):
        out.append(piece.to_ndarray().reshape(-1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return raw.astype(np.float32) / 32768.0


# ---- scoring and the report ---------------------------------------------------------------------


def said_by(segments: list[dict[str, Any]], uid: int) -> list[str]:
    return [s["text"] for s in segments if s.get("speaker") and s["speaker"]["id"] == uid]


def caption_latencies(
    live: Live, tracks: dict[str, Track], anchors: dict[str, Anchor]
) -> tuple[list[tuple[float, str, float]], int, dict[str, float | None]]:
    """(turn start on the wall clock, speaker, latency ms) per captioned turn, how many turns had
    no caption, and per speaker the median of (caption end_ms - the turn's end) in ms.

    A turn's caption is found by its words, not by its times: the speaker's first caption that
    arrived after the turn began and holds most of the turn's last words (the caption that
    finishes the turn; a turn of two sentences may come as two captions). The caption's own
    end_ms is not used for matching because the captioner's clock may run apart from the
    conversation's (that offset is reported, per speaker)."""
    found: list[tuple[float, str, float]] = []
    offsets: dict[str, list[float]] = {}
    missing = 0
    for name, track in tracks.items():
        if name not in anchors:  # nothing of theirs was recorded: no clock for their WAV
            missing += len(track.lines)
            continue
        mine = [(at, c) for at, c in live.captions if c["user"]["id"] == live.ids[name]]
        ends = speech_ends(read_wav(track.path), track.lines)
        for line, end in zip(track.lines, ends, strict=True):
            end_wall = anchors[name].wall(end)
            tail = normalize(line.text).split()[-4:]
            scored = [
                (sum(w in normalize(c["text"]).split() for w in tail), at, c)
                for at, c in mine
                if at >= anchors[name].wall(line.start)
            ]
            best = max((s for s, _, _ in scored), default=0)
            if best < min(2, len(tail)):
                missing += 1
                continue
            at, caption = next((at, c) for s, at, c in scored if s == best)
            found.append((anchors[name].wall(line.start), name, (at - end_wall) * 1000))
            caption_end = live.conv_started + caption["end_ms"] / 1000
            offsets.setdefault(name, []).append((caption_end - end_wall) * 1000)
    median = {n: round(float(np.median(v)), 1) if v else None for n, v in offsets.items()}
    return sorted(found), missing, median


def report(
    args: argparse.Namespace,
    tracks: dict[str, Track],
    live: Live,
    baseline: dict[str, str],
    recorded: dict[str, str],
) -> dict[str, Any]:
    names = list(tracks)
    scripts = {n: tracks[n].text for n in names}
    final = {n: " ".join(said_by(live.segments, live.ids[n])) for n in names}
    shown = shown_captions(live.captions)
    captions = {
        n: " ".join(c["text"] for _, c in shown if c["user"]["id"] == live.ids[n]) for n in names
    }
    anchors = {
        n: find_anchor(read_wav(tracks[n].path), decode_mono(path), started)
        for n, (path, started) in live.recordings.items()
    }
    latencies, missing, clock_offsets = caption_latencies(live, tracks, anchors)
    lat = [ms for _, _, ms in latencies]
    # The same latencies from the page's getUserMedia time instead (when the file began to
    # play): they add the browser's capture, encode and send time the node's anchor leaves out.
    shift = {n: -(gum_minus_rec(live.mic_opened.get(n, []), a) or 0.0) for n, a in anchors.items()}
    lat_mic = [ms + shift[n] for _, n, ms in latencies]
    turns = turns_for(args.turns)
    spans = turn_spans(turns, tracks, anchors, live.conv_started)
    knowledge = knowledge_scores(live.knowledge, items_for(args.turns), spans, live.ids)
    queries = queries_for(args.turns)
    hits = [
        search_hit(live.search[q], [spans[t] for t in want if t in spans]) for q, want in queries
    ]
    ready = [
        wall(j["finished_at"]) - live.ended_at
        for j in live.jobs
        if j["kind"] == "transcript.build" and j["finished_at"]
    ]
    # Where the seconds after the end went: each job that ran after it, from the end.
    after_end = [
        f"{j['kind']} ({j.get('subject') or '-'}): {wall(j['started_at']) - live.ended_at:.1f}-"
        f"{wall(j['finished_at']) - live.ended_at:.1f} s, {j.get('note') or ''}"
        for j in sorted(live.jobs, key=lambda j: j["finished_at"] or "")
        if j["finished_at"] and j["started_at"] and wall(j["finished_at"]) > live.ended_at
    ]
    kinds: dict[str, KindScore] = knowledge["kinds"]
    result: dict[str, Any] = {
        "final_wer": round(corpus_wer((scripts[n], final[n]) for n in names), 4),
        "baseline_final_wer": round(corpus_wer((scripts[n], baseline[n]) for n in names), 4),
        "recording_wer": round(corpus_wer((scripts[n], recorded.get(n, "")) for n in names), 4),
        "caption_wer": round(corpus_wer((scripts[n], captions[n]) for n in names), 4),
        "first_caption_latency_ms": round(latencies[0][2], 1) if latencies else None,
        "caption_latency_ms_p50": percentile(lat, 50),
        "caption_latency_ms_p95": percentile(lat, 95),
        "caption_latency_ms_max": round(max(lat), 1) if lat else None,
        "caption_latency_ms_p95_mic_anchor": percentile(lat_mic, 95),
        "uncaptioned_turns": missing,
        "late_captions": live.late_captions,
        "jobs_after_end": after_end,
        "caption_end_minus_speech_end_ms": clock_offsets,
        "transcript_ready_s": round(max(ready), 1) if ready else None,
        "names_right": names_right(scripts, final),
        "knowledge_f1": knowledge["f1"],
        "knowledge": {k: s.as_dict() for k, s in kinds.items()},
        "owner_accuracy": knowledge["owner_accuracy"],
        "search_recall_at_3": round(sum(hits) / len(hits), 3) if hits else None,
        "per_speaker": {
            n: {
                "voice": SPEAKERS[n][1],
                "final_wer": round(wer(scripts[n], final[n] or "-"), 4),
                "baseline_wer": round(wer(scripts[n], baseline[n] or "-"), 4),
                "recording_wer": round(wer(scripts[n], recorded.get(n) or "-"), 4),
                "caption_wer": round(wer(scripts[n], captions[n] or "-"), 4),
            }
            for n in names
        },
        "anchors": {
            n: {
                "lag_s": a.lag_s,
                "r": round(a.r, 3),
                "anchor_gum_minus_rec_ms": gum_minus_rec(live.mic_opened.get(n, []), a),
            }
            for n, a in anchors.items()
        },
        "audio_s": round(max(t.seconds for t in tracks.values()), 1),
        "speakers": len(names),
        "turns": len(turns),
        "model": args.model,
        "capture": args.audio or "as media.js asks",
        "browser_nice": args.browser_nice,
        "video": args.video or "as media.js asks",
        "audio_settings": live.audio_settings,
        "load_avg": round(os.getloadavg()[0], 2),
        "targets": {
            "final_minus_baseline_max": 0.02,
            "caption_minus_final_max": 0.05,
            "caption_latency_ms_p95": 1500,
            "transcript_ready_s": 15,
            "search_recall_at_3": 0.9,
        },
    }
    print_summary(result, tracks, live, final, baseline, captions, queries, hits, latencies)
    return result


def gum_minus_rec(opened: list[float], anchor: Anchor) -> float | None:
    """How far the page's getUserMedia time is from the recording's anchor for the WAV's t = 0
    (the one nearest it, when the page opened the microphone more than once)."""
    if not opened:
        return None
    at = min(opened, key=lambda t: abs(t - anchor.wall(0.0)))
    return round((at - anchor.wall(0.0)) * 1000, 1)


def print_summary(
    result: dict[str, Any],
    tracks: dict[str, Track],
    live: Live,
    final: dict[str, str],
    baseline: dict[str, str],
    captions: dict[str, str],
    queries: list[tuple[str, tuple[int, ...]]],
    hits: list[bool],
    latencies: list[tuple[float, str, float]],
) -> None:
    r = result
    print(
        f"{r['speakers']} Chromium speakers, {r['turns']} turns, {r['audio_s']} s, model "
        f"{r['model']}, capture: {r['capture']}"
    )
    print(
        f"final transcript WER {r['final_wer']:.1%} vs baseline (faster-whisper on the source "
        f"WAVs) {r['baseline_final_wer']:.1%} (target: within 2 points); plain faster-whisper "
        f"on the recordings {r['recording_wer']:.1%}"
    )
    print(
        f"captions WER {r['caption_wer']:.1%} (target <= final + 5 points); latency first "
        f"{r['first_caption_latency_ms']} ms, p50 {r['caption_latency_ms_p50']} ms, p95 "
        f"{r['caption_latency_ms_p95']} ms (target <= 1500; from getUserMedia: p95 "
        f"{r['caption_latency_ms_p95_mic_anchor']} ms); {r['uncaptioned_turns']} turns uncaptioned"
    )
    print(
        f"transcript ready {r['transcript_ready_s']} s after the end (target <= 15 s); "
        f"names right {r['names_right']}; knowledge F1 {r['knowledge_f1']} "
        f"(owners {r['owner_accuracy']}); search recall@3 {r['search_recall_at_3']} "
        "(target >= 0.9)"
    )
    for line in r["late_captions"]:
        print(f"  late caption, as the node saw it: {line}")
    for line in r["jobs_after_end"]:
        print(f"  after the end: {line}")
    for kind, score in r["knowledge"].items():
        print(f"  {kind}: {score}")
    for name, s in r["per_speaker"].items():
        print(f"  {name} ({s['voice']}): {s}")
        print(f"    final:    {final[name]}")
        print(f"    baseline: {baseline[name]}")
        print(f"    captions: {captions[name]}")
    for (q, want), hit in zip(queries, hits, strict=True):
        got = [(h["start_ms"] // 1000, h["text"][:60]) for h in live.search[q]]
        print(f"  search {'hit ' if hit else 'MISS'} {q!r} (turns {want}): {got}")
    print(f"  anchors: {r['anchors']}")
    print(f"  latencies: {[(n, round(ms)) for _, n, ms in latencies]}")


# ---- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 speakers, about 30 s")
    parser.add_argument("--turns", type=int, default=0, help="only the first N turns")
    parser.add_argument("--model", default="tiny.en", help="the node's transcript model")
    parser.add_argument("--beam", type=int, default=5, help="the node's transcript beam")
    parser.add_argument("--threads", type=int, default=2, help="baseline cpu_threads")
    parser.add_argument("--audio", default="", help="capture constraints what-if, k=v,...")
    parser.add_argument("--node-env", action="append", default=[], help="KEY=VALUE for the node")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--browser-nice",
        type=int,
        default=0,
        help="nice value of the speakers' Chromiums (0: as the node's own processes)",
    )
    parser.add_argument(
        "--video",
        default="320x180@10",
        help="the speakers' camera as WxH@fps ('' for what media.js asks: 640x480@20; "
        "'off': no cameras, as speakers whose browsers run elsewhere would cost this machine)",
    )
    args = parser.parse_args()
    for tool in ("espeak-ng", "sox", "/usr/bin/chromium"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is required")
    if args.quick:
        args.turns = QUICK_TURNS
    args.node_env += [f"JUNTO_TRANSCRIPT_MODEL={args.model}", f"JUNTO_TRANSCRIPT_BEAM={args.beam}"]
    turns = turns_for(args.turns)
    voices = {name: voice for name, (_, voice) in SPEAKERS.items()}
    folder = Path(tempfile.mkdtemp(prefix="junto-bench-pipeline-"))
    try:
        tracks = make_conversation(folder / "speech", turns, wpm=WPM, voices=voices)
        # The host first: conversation_support orders the speakers by name.
        tracks = {n: tracks[n] for n in SPEAKERS if n in tracks}
        log(f"conversation: {len(turns)} turns, {len(tracks)} tracks of {_seconds(tracks):.1f} s")
        queries = [q for q, _ in queries_for(args.turns)]
        live = asyncio.run(run_live(args, tracks, folder, queries))
        log("baseline: faster-whisper on the source WAVs and on the recordings")
        baseline = plain_whisper(
            {n: t.path for n, t in tracks.items()}, args.model, args.beam, args.threads
        )
        recorded = plain_whisper(
            {n: p for n, (p, _) in live.recordings.items()}, args.model, args.beam, args.threads
        )
        result = report(args, tracks, live, baseline, recorded)
        if args.keep:  # what the node gave, to look at afterwards
            raw = {"captions": live.captions, "segments": live.segments, "jobs": live.jobs,
                   "knowledge": live.knowledge, "search": live.search, "baseline": baseline,
                   "recorded": recorded, "conv_started": live.conv_started}  # fmt: skip
            (folder / "live.json").write_text(json.dumps(raw, indent=1, default=str))
    finally:
        if args.keep:
            log(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))
    return 0


def _seconds(tracks: dict[str, Track]) -> float:
    return float(max(t.seconds for t in tracks.values()))


if __name__ == "__main__":
    raise SystemExit(main())
