// The stage's audio and video in the browser: publishing the camera and microphone (and a
// screen) and receiving the speakers, negotiated over the room socket (docs/protocol.md, "Media
// signaling"); the browser never speaks the SFU's own API, so the media backend can change
// without this file changing. One MediaClient per room page. It knows nothing of the DOM: the
// stage views listen to its events and read its state.
//
// Events (CustomEvent, payload in `detail`):
//   state       publishing or subscribing started, stopped or changed (mute, camera off)
//   local       localStream / screenStream changed
//   streams     remoteStreams changed
//   publishers  media.publishers arrived (this.publishers)
//   active      media.active arrived (this.activeSpeaker, this.levels)
//   viewers     media.viewers arrived (this.viewers, this.maxViewers)
//   quality     our measured quality level changed (this.quality)
//   problem     {code, message, target}: something failed; `code` is a media error code
//               (docs/protocol.md, "Media errors") or a device_* code of our own
//   ended       the media.ended frame: the node stopped one of our publications

import { receiveQuality, sendQuality, worse } from "./media_quality.js";

// Offers and answers carry complete ICE candidates; whatever is not gathered within this time
// is trickled with media.candidate (docs/protocol.md), so a slow network interface cannot hold
// up joining.
const GATHER_WAIT_MS = 1500;
const ANSWER_TIMEOUT_MS = 15_000;
const QUALITY_PERIOD_MS = 2000;

// Echo cancellation stays: without headphones a speaker's microphone hears the others. Noise
// suppression and automatic gain control go: measured through the whole path to the transcript
// (bench/pipeline.py, bench/README.md), they made recognition worse, not better (noise
// suppression takes consonants such as the "st" of "stalls"; gain control pushed speech 4-12 dB
// up to full scale), and Whisper copes with noise and level on its own.
export const CAMERA_CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false },
  video: { width: 640, height: 480, frameRate: 20 },
};
const SCREEN_CONSTRAINTS = { video: { frameRate: 15 }, audio: false };
// The socket went away mid-request: the welcome after the reconnect starts it again (restart).
const SOCKET_GONE = new Set(["offline", "disconnected"]);

export const MEDIA_CODES = new Set([
  "bad_sdp", "unsupported_codec", "ice_failed", "not_on_stage", "consent_required",
  "no_such_track", "seats_full", "media_unavailable",
]);

/** What went wrong, in plain words for the person in front of the page. */
export function mediaErrorText(code, { maxViewers = null, target = null } = {}) {
  const what = target === "subscribe" ? "The live audio and video"
    : target === "screen" ? "Your screen share" : "Your camera and microphone";
  switch (code) {
    case "bad_sdp":
      return `${what} could not be set up: your browser and the server did not agree on how to connect. Please try again.`;
    case "unsupported_codec":
      return "Your browser cannot send video and sound in a format the server understands (VP8 video and Opus audio). Please try a recent Chrome, Firefox, Edge or Safari.";
    case "ice_failed":
      return `${what} could not connect, or the connection was lost. Check your network and try again.`;
    case "not_on_stage":
      return "Only people on stage can send their camera and microphone. Raise your hand to ask a host to bring you on stage.";
    case "consent_required":
      return "Before you go live, please agree to being recorded, transcribed and published.";
    case "no_such_track":
      return "That speaker is not sending audio or video right now.";
    case "seats_full":
      return seatsFullText(maxViewers);
    case "media_unavailable":
      return "Live audio and video are not available in this room right now. You can still follow the chat and the backchannel.";
    case "device_denied":
      return "Your browser did not allow the camera and microphone. Allow them for this site (usually from the icon in the address bar) and try again.";
    case "device_missing":
      return "No microphone was found. Connect one and try again.";
    case "device_busy":
      return "The camera or microphone is in use by another program. Close it and try again.";
    case "device_unsupported":
      return "This browser cannot share a camera, microphone or screen here. Please use a recent browser over https.";
    case "device_lost":
      return "Your camera or microphone stopped working, so you are no longer sending it.";
    case "timeout":
      return `${what} could not be set up: the server did not answer in time. Please try again.`;
    default:
      return "";
  }
}

export function seatsFullText(maxViewers) {
  let seats = "All live seats are taken";
  if (maxViewers === 1) seats = "The 1 live seat is taken";
  else if (Number.isFinite(maxViewers) && maxViewers !== null) seats = `All ${maxViewers} live seats are taken`;
  return `${seats}. You can still follow the chat and the backchannel.`;
}

/** getUserMedia / getDisplayMedia failures (DOMException names) as our device_* codes. */
function deviceCode(err) {
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "device_denied";
    case "NotFoundError":
    case "OverconstrainedError":
      return "device_missing";
    case "NotReadableError":
    case "AbortError":
      return "device_busy";
    case "TypeError":
      return "device_unsupported";
    default:
      return null;
  }
}

class MediaProblem extends Error {
  constructor(code, message = "") {
    super(message || code);
    this.code = code;
  }
}

/** Resolves once ICE gathering is complete, or after `ms` (then the rest is trickled). */
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Put VP8 (video) or Opus (audio) first: the node forwards those without transcoding. */
function preferCodec(transceiver, kind) {
  const wanted = kind === "video" ? "video/vp8" : "audio/opus";
  try {
    const codecs = RTCRtpReceiver.getCapabilities?.(kind)?.codecs;
    if (!codecs || typeof transceiver.setCodecPreferences !== "function") return;
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    if (first.length === 0) return; // the node answers unsupported_codec, in plain words
    const rest = codecs.filter((c) => c.mimeType.toLowerCase() !== wanted);
    transceiver.setCodecPreferences([...first, ...rest]);
  } catch {
    // Older browsers: the default order still offers VP8 and Opus.
  }
}

/**
 * What identifies the far end's connection in an SDP: its DTLS certificate fingerprint (a new
 * peer connection has a new certificate; a renegotiation keeps it). Not the o= session id,
 * which aiortc makes afresh for every offer.
 */
function sessionId(sdp) {
  const match = /^a=fingerprint:(.+)$/m.exec(String(sdp || ""));
  return match ? match[1].trim() : null;
}

function cleanIceServers(servers) {
  return (Array.isArray(servers) ? servers : [])
    .filter((s) => s && s.urls)
    .map((s) => {
      const server = { urls: s.urls };
      if (s.username) server.username = s.username;
      if (s.credential) server.credential = s.credential;
      return server;
    });
}

export class MediaClient extends EventTarget {
  /** @param {import("./realtime.js").RealtimeClient} realtime  the room socket */
  constructor(realtime) {
    super();
    this.rt = realtime;
    this.config = { backend: null, ice_servers: [], max_viewers: null, publishing_states: ["scheduled", "live"] };
    this.available = false; // the last welcome offered media
    this.connected = false;
    this.welcomes = 0;
    this.localStream = null; // camera + microphone
    this.screenStream = null;
    this.publisherPcs = new Map(); // source → RTCPeerConnection
    this.publishing = new Set(); // sources we publish, and publish again after a reconnect
    this.starting = new Set(); // sources being set up right now
    this.subscriberPc = null;
    this.subscriberSession = null;
    this.subscribed = false; // we watch, and subscribe again after a reconnect
    this.seatsFull = false;
    this.remoteStreams = new Map(); // `${user_id}:${source}` → MediaStream
    this.trackInfo = new Map(); // mid → {mid, kind, user_id, source}, from the latest offer
    this.offers = Promise.resolve(); // offers are applied one after another
    this.publishers = new Map(); // user id → {user_id, name, sources, audio_muted, video_off, quality}
    this.activeSpeaker = null;
    this.levels = {};
    this.viewers = null;
    this.maxViewers = null;
    this.audioMuted = false;
    this.videoOff = false;
    this.quality = null; // our own measured level: good | fair | poor | null (unknown)
    this.qualityDetail = { send: null, receive: null };
    this.reportedQuality = null;
    this.statsPrevious = new Map();
    this.qualityTimer = null;
    this.waiters = new Set();
    this.endedCount = 0;
    this.trickle = new WeakMap(); // pc → {target, taken, open, trickled, queue}
    realtime.addEventListener("media", (ev) => this.onFrame(ev.detail));
    realtime.addEventListener("servererror", (ev) => this.onServerError(ev.detail));
    realtime.addEventListener("status", (ev) => {
      this.connected = ev.detail.status === "open";
    });
  }

  // ---- state the views read ------------------------------------------------------------------

  /** True while `source` is published or being set up. */
  isPublishing(source = "camera") {
    return this.publishing.has(source) || this.starting.has(source);
  }

  /** True once the node has answered and the publication is on its way. */
  isLive(source = "camera") {
    return this.publishing.has(source) && this.publisherPcs.has(source) && !this.starting.has(source);
  }

  mayPublishNow(state) {
    return this.available && (this.config.publishing_states || []).includes(state);
  }

  /** Someone other than `exceptId` is publishing. */
  othersPublishing(exceptId) {
    return [...this.publishers.keys()].some((id) => id !== exceptId);
  }

  // ---- the socket ----------------------------------------------------------------------------

  /**
   * Call with every welcome (after the page has taken its `you`). On a reconnect the node has
   * already ended our publications and subscription with the old socket: start them again.
   */
  onWelcome(frame, { mayPublish = false } = {}) {
    const media = frame.media;
    this.available = Boolean(media);
    if (media) this.config = { ...this.config, ...media };
    this.maxViewers = media?.max_viewers ?? this.maxViewers;
    this.welcomes += 1;
    if (this.welcomes > 1) this.restart(mayPublish);
    this.emit("state");
  }

  restart(mayPublish) {
    const sources = [...this.publishing];
    for (const pc of this.publisherPcs.values()) pc.close();
    this.publisherPcs.clear();
    this.closeSubscriber();
    // The node sends media.publishers once after welcome; what we knew is stale.
    this.publishers.clear();
    this.activeSpeaker = null;
    this.emit("publishers");
    if (!this.available) {
      this.stopAll({ send: false });
      this.subscribed = false;
      return;
    }
    if (this.subscribed) {
      this.subscribed = false;
      this.subscribe();
    }
    if (!mayPublish) {
      this.stopAll({ send: false });
      return;
    }
    for (const source of sources) {
      this.publishing.delete(source);
      this.publish(source);
    }
  }

  emit(type, detail = null) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  problem(code, message = "", target = null) {
    this.emit("problem", { code, message, target });
  }

  onFrame(frame) {
    for (const waiter of [...this.waiters]) {
      if (waiter.match(frame)) waiter.resolve(frame);
    }
    switch (frame.type) {
      case "media.offer":
        this.offers = this.offers.then(() => this.applyOffer(frame));
        return;
      case "media.publishers":
        this.publishers = new Map((frame.publishers || []).map((p) => [p.user_id, p]));
        this.emit("publishers");
        return;
      case "media.active":
        this.activeSpeaker = frame.user_id ?? null;
        this.levels = frame.levels || {};
        this.emit("active");
        return;
      case "media.viewers":
        this.viewers = frame.viewers ?? null;
        this.maxViewers = frame.max_viewers ?? this.maxViewers;
        this.emit("viewers");
        return;
      case "media.ended":
        this.endedCount += 1;
        this.stopPublishing(frame.source, { send: false });
        this.emit("ended", frame);
        return;
      default:
        return; // media.answer is for a waiter
    }
  }

  onServerError(frame) {
    if (!MEDIA_CODES.has(frame.code)) return;
    if (frame.code !== "ice_failed") {
      this.problem(frame.code, frame.message);
      return;
    }
    // An ice_failed no request of ours caused: the node lost one of our connections, and the
    // frame does not say which. A lost publication is followed at once by media.ended (which
    // says it in words); if none comes, it was the subscription.
    const endedBefore = this.endedCount;
    setTimeout(() => {
      if (this.endedCount !== endedBefore || !this.subscribed) return;
      this.subscribed = false;
      this.closeSubscriber();
      this.emit("state");
      this.problem("ice_failed", frame.message, "subscribe");
    }, 300);
  }

  /** Resolves with the first media frame that `match`es, or rejects after `ms`. */
  waitFor(match, ms) {
    let waiter;
    const promise = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new MediaProblem("timeout"));
      }, ms);
      waiter = {
        match,
        resolve: (frame) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(frame);
        },
        cancel: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
        },
      };
      this.waiters.add(waiter);
    });
    promise.catch(() => {}); // a cancelled waiter is nobody's error
    return { promise, cancel: () => waiter.cancel() };
  }

  rtcConfig() {
    return { iceServers: cleanIceServers(this.config.ice_servers), bundlePolicy: "max-bundle" };
  }

  // ---- ICE: send what was gathered in the SDP, trickle the rest -----------------------------

  watchCandidates(pc, target) {
    const t = { target, taken: false, open: false, trickled: false, queue: [] };
    this.trickle.set(pc, t);
    pc.addEventListener("icecandidate", (ev) => {
      if (!t.taken) return; // it will be in the SDP we are about to send
      const c = ev.candidate;
      if (!c || !c.candidate) {
        // End of gathering: say so only if we trickled anything (docs/protocol.md).
        if (t.trickled) this.sendCandidate(t, "", null);
        return;
      }
      t.trickled = true;
      this.sendCandidate(t, c.candidate, c.sdpMid);
    });
  }

  takeLocalSdp(pc) {
    const t = this.trickle.get(pc);
    if (t) t.taken = true;
    return pc.localDescription.sdp;
  }

  sendCandidate(t, candidate, sdpMid) {
    const frame = { type: "media.candidate", target: t.target, candidate, sdp_mid: sdpMid };
    if (t.open) this.rt.send(frame).catch(() => {});
    else t.queue.push(frame);
  }

  /** The node knows this connection now: candidates found late can follow. */
  openTrickle(pc) {
    const t = this.trickle.get(pc);
    if (!t || t.open) return;
    t.open = true;
    for (const frame of t.queue.splice(0)) this.rt.send(frame).catch(() => {});
  }

  watchConnection(pc, target) {
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") this.emit("state");
      if (pc.connectionState !== "failed") return;
      // While the socket is down the node has dropped this connection anyway; the welcome
      // that follows starts a new one.
      if (!this.connected) return;
      if (target === "subscribe") {
        if (pc !== this.subscriberPc) return;
        this.subscribed = false;
        this.closeSubscriber();
        this.rt.send({ type: "media.unsubscribe" }).catch(() => {});
        this.problem("ice_failed", "", "subscribe");
      } else {
        if (this.publisherPcs.get(target) !== pc) return;
        this.stopPublishing(target);
        this.problem("ice_failed", "", target);
      }
    });
  }

  // ---- publishing ----------------------------------------------------------------------------

  /**
   * Publish the camera and microphone (`camera`) or a screen (`screen`). Resolves true when
   * the node has answered; on failure it reports a `problem` and resolves false.
   */
  async publish(source = "camera") {
    if (!this.available) {
      this.problem("media_unavailable", "", source);
      return false;
    }
    if (this.isPublishing(source)) return true;
    this.starting.add(source);
    this.emit("state");
    try {
      const stream = source === "screen" ? await this.screenCapture() : await this.cameraStream();
      if (!stream) return false; // the person closed the screen picker
      if (!this.starting.has(source)) {
        // Stopped while the browser was asking for the devices (sent back to the audience).
        for (const track of stream.getTracks()) track.stop();
        return false;
      }
      this.publishing.add(source);
      await this.negotiate(source, stream);
      return this.publisherPcs.has(source);
    } catch (err) {
      if (SOCKET_GONE.has(err?.code) && this.publishing.has(source)) {
        this.publisherPcs.get(source)?.close();
        this.publisherPcs.delete(source);
        return false;
      }
      this.stopPublishing(source, { send: false });
      const code = err?.code || deviceCode(err) || "bad_sdp";
      this.problem(code, err?.message || "", source);
      return false;
    } finally {
      this.starting.delete(source);
      this.emit("state");
    }
  }

  async cameraStream() {
    if (this.localStream?.getTracks().some((t) => t.readyState === "live")) return this.localStream;
    if (!navigator.mediaDevices?.getUserMedia) throw new MediaProblem("device_unsupported");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(CAMERA_CONSTRAINTS);
    } catch (err) {
      // No camera (or it is busy) but perhaps a microphone: speak without a picture.
      if (!["NotFoundError", "NotReadableError", "OverconstrainedError"].includes(err?.name)) throw err;
      stream = await navigator.mediaDevices.getUserMedia({ audio: CAMERA_CONSTRAINTS.audio });
      this.videoOff = true;
    }
    for (const track of stream.getAudioTracks()) track.enabled = !this.audioMuted;
    for (const track of stream.getVideoTracks()) track.enabled = !this.videoOff;
    for (const track of stream.getTracks()) {
      track.addEventListener("ended", () => {
        // Unplugged or revoked: stop cleanly instead of sending a frozen picture.
        if (this.localStream !== stream) return;
        this.stopPublishing("camera");
        this.problem("device_lost", "", "camera");
      });
    }
    this.localStream = stream;
    this.emit("local");
    return stream;
  }

  async screenCapture() {
    if (this.screenStream?.getVideoTracks().some((t) => t.readyState === "live")) return this.screenStream;
    if (!navigator.mediaDevices?.getDisplayMedia) throw new MediaProblem("device_unsupported");
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia(SCREEN_CONSTRAINTS);
    } catch (err) {
      if (err?.name === "NotAllowedError" || err?.name === "AbortError") return null; // cancelled
      throw err;
    }
    for (const track of stream.getAudioTracks()) {
      stream.removeTrack(track); // the screen publication is video only
      track.stop();
    }
    const video = stream.getVideoTracks()[0];
    video?.addEventListener("ended", () => {
      // The browser's own "Stop sharing" button.
      if (this.screenStream === stream) this.stopPublishing("screen");
    });
    this.screenStream = stream;
    this.emit("local");
    return stream;
  }

  async negotiate(source, stream) {
    this.publisherPcs.get(source)?.close();
    const pc = new RTCPeerConnection(this.rtcConfig());
    this.publisherPcs.set(source, pc);
    this.watchCandidates(pc, source);
    this.watchConnection(pc, source);
    for (const kind of ["audio", "video"]) {
      const track = stream.getTracks().find((t) => t.kind === kind);
      if (!track) continue;
      const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      preferCodec(transceiver, kind);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, GATHER_WAIT_MS);
    if (this.publisherPcs.get(source) !== pc) return; // stopped meanwhile
    const sdp = this.takeLocalSdp(pc);
    const answer = this.waitFor((f) => f.type === "media.answer" && f.source === source, ANSWER_TIMEOUT_MS);
    try {
      await this.rt.send({ type: "media.publish", source, sdp });
    } catch (err) {
      answer.cancel();
      throw err;
    }
    const frame = await answer.promise;
    if (this.publisherPcs.get(source) !== pc) return;
    await pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
    this.openTrickle(pc);
    this.startQuality();
    if (source === "camera") this.sendState();
  }

  /** Stop publishing `source`; `send` tells the node (not needed when it stopped it). */
  stopPublishing(source, { send = true } = {}) {
    const was = this.publishing.delete(source) || this.publisherPcs.has(source);
    this.starting.delete(source);
    this.publisherPcs.get(source)?.close();
    this.publisherPcs.delete(source);
    const stream = source === "screen" ? this.screenStream : this.localStream;
    for (const track of stream?.getTracks() || []) track.stop();
    if (source === "screen") this.screenStream = null;
    else {
      this.localStream = null;
      this.reportedQuality = null;
    }
    if (send && was && this.rt.welcome) this.rt.send({ type: "media.unpublish", source }).catch(() => {});
    this.emit("local");
    this.emit("state");
  }

  stopAll(options = {}) {
    for (const source of new Set([...this.publishing, ...this.publisherPcs.keys(), "camera", "screen"])) {
      if (source === "camera" && !this.localStream && !this.publishing.has(source)) continue;
      if (source === "screen" && !this.screenStream && !this.publishing.has(source)) continue;
      this.stopPublishing(source, options);
    }
  }

  setAudioMuted(muted) {
    this.audioMuted = Boolean(muted);
    for (const track of this.localStream?.getAudioTracks() || []) track.enabled = !this.audioMuted;
    this.sendState();
    this.emit("state");
  }

  setVideoOff(off) {
    this.videoOff = Boolean(off);
    for (const track of this.localStream?.getVideoTracks() || []) track.enabled = !this.videoOff;
    this.sendState();
    this.emit("state");
    this.emit("local");
  }

  /** Tell the room how our camera publication looks: muted, camera off, our quality. */
  sendState() {
    if (!this.publisherPcs.has("camera") || !this.rt.welcome) return;
    const frame = { type: "media.state", audio_muted: this.audioMuted, video_off: this.videoOff };
    if (this.quality) frame.quality = this.quality;
    this.reportedQuality = this.quality;
    this.rt.send(frame).catch(() => {});
  }

  // ---- watching ------------------------------------------------------------------------------

  /** Receive everyone on stage; resolves true once the node accepted. */
  async subscribe() {
    if (!this.available) {
      this.problem("media_unavailable", "", "subscribe");
      return false;
    }
    if (this.subscribed) return true;
    this.subscribed = true;
    this.seatsFull = false;
    this.emit("state");
    try {
      await this.rt.send({ type: "media.subscribe" });
      return true;
    } catch (err) {
      if (SOCKET_GONE.has(err.code)) return false; // still wanted: the next welcome subscribes
      this.subscribed = false;
      this.closeSubscriber();
      if (err.code === "seats_full") this.seatsFull = true;
      this.emit("state");
      this.problem(err.code, err.message, "subscribe");
      return false;
    }
  }

  unsubscribe() {
    if (!this.subscribed) return;
    this.subscribed = false;
    this.closeSubscriber();
    this.rt.send({ type: "media.unsubscribe" }).catch(() => {});
    this.emit("state");
  }

  closeSubscriber() {
    this.subscriberPc?.close();
    this.subscriberPc = null;
    this.trackInfo.clear();
    this.statsPrevious.clear();
    if (this.remoteStreams.size) {
      this.remoteStreams.clear();
      this.emit("streams");
    }
  }

  /** One server offer (first or renegotiated): answer it on the one subscriber connection. */
  async applyOffer(frame) {
    try {
      await this.answerOffer(frame);
    } catch (err) {
      // A connection closed meanwhile (reconnect, unsubscribe) is no failure.
      if (!this.subscribed || !this.subscriberPc || this.subscriberPc.signalingState === "closed") return;
      this.problem("bad_sdp", String(err?.message || err), "subscribe");
    }
  }

  async answerOffer(frame) {
    if (!this.subscribed) return;
    let pc = this.subscriberPc;
    // The node may start the subscription afresh (a new connection: new DTLS certificate, fewer
    // m-lines), e.g. after many speakers came and went; m-lines cannot be removed from a
    // connection, so that needs a new one here too.
    const session = sessionId(frame.sdp);
    if (pc && session !== this.subscriberSession) {
      pc.close();
      pc = this.subscriberPc = null;
    }
    this.subscriberSession = session;
    if (!pc) {
      pc = new RTCPeerConnection(this.rtcConfig());
      this.subscriberPc = pc;
      this.watchCandidates(pc, "subscribe");
      this.watchConnection(pc, "subscribe");
      this.emit("state");
    }
    await pc.setRemoteDescription({ type: "offer", sdp: frame.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc, GATHER_WAIT_MS);
    if (pc !== this.subscriberPc) return; // unsubscribed meanwhile
    const sdp = this.takeLocalSdp(pc);
    this.trackInfo = new Map((frame.tracks || []).map((t) => [String(t.mid), t]));
    this.syncStreams();
    this.startQuality();
    try {
      await this.rt.send({ type: "media.answer", version: frame.version, sdp });
      this.openTrickle(pc);
    } catch (err) {
      // An answer to an offer the node has moved past (no_such_track) is harmless: its next
      // offer follows. A lost socket is dealt with by the reconnect.
      if (pc !== this.subscriberPc || err.code === "no_such_track" || SOCKET_GONE.has(err.code)) return;
      this.problem(err.code, err.message, "subscribe");
    }
  }

  /**
   * remoteStreams from the subscriber connection: one MediaStream per (speaker, source), by
   * the offer's `tracks` (mid → speaker). An m-line that went inactive or was rejected drops
   * out. A stream whose tracks change is replaced, so a <video> showing it starts afresh.
   */
  syncStreams() {
    const pc = this.subscriberPc;
    const wanted = new Map();
    for (const tr of pc?.getTransceivers() || []) {
      const info = this.trackInfo.get(String(tr.mid));
      const dir = tr.currentDirection;
      if (!info || tr.stopped || (dir !== "recvonly" && dir !== "sendrecv")) continue;
      const key = `${info.user_id}:${info.source}`;
      if (!wanted.has(key)) wanted.set(key, []);
      wanted.get(key).push(tr.receiver.track);
    }
    let changed = false;
    for (const key of [...this.remoteStreams.keys()]) {
      if (!wanted.has(key)) {
        this.remoteStreams.delete(key);
        changed = true;
      }
    }
    for (const [key, tracks] of wanted) {
      const old = this.remoteStreams.get(key);
      const same = old && old.getTracks().length === tracks.length
        && tracks.every((t) => old.getTracks().includes(t));
      if (same) continue;
      this.remoteStreams.set(key, new MediaStream(tracks));
      changed = true;
    }
    if (changed) this.emit("streams");
  }

  // ---- quality -------------------------------------------------------------------------------

  startQuality() {
    if (this.qualityTimer) return;
    this.qualityTimer = setInterval(() => this.measureQuality(), QUALITY_PERIOD_MS);
  }

  async measureQuality() {
    const pcs = [...this.publisherPcs.values()];
    if (pcs.length === 0 && !this.subscriberPc) {
      clearInterval(this.qualityTimer);
      this.qualityTimer = null;
      this.setQuality(null, { send: null, receive: null });
      return;
    }
    let send = null;
    let receive = null;
    try {
      for (const pc of pcs) send = worse(send, (await sendQuality(pc)).level);
      if (this.subscriberPc) receive = await receiveQuality(this.subscriberPc, this.statsPrevious);
    } catch {
      return; // a connection closed between two awaits: the next sample will do
    }
    this.setQuality(worse(send, receive?.level ?? null), { send, receive });
  }

  setQuality(level, detail) {
    this.qualityDetail = detail;
    if (level === this.quality) return;
    this.quality = level;
    this.emit("quality");
    if (level && level !== this.reportedQuality) this.sendState();
  }
}
