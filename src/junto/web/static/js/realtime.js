// A resumable WebSocket client for the Junto realtime protocol (docs/protocol.md, version 1).
//
// It says hello with the highest room-stream id it has processed, so a reconnect replays exactly
// the missed events (or the server sends a fresh snapshot); reconnects with jittered exponential
// backoff; pings at least once per heartbeat period and treats two missed heartbeats as a dead
// connection; matches acks and errors to the frames that caused them by `ref`.
//
// Events (CustomEvent, payload in `detail`):
//   status    {status: "connecting"|"open"|"reconnecting"|"closed", delay?, attempt?, reason?}
//   welcome   the welcome frame          snapshot  the snapshot frame
//   room      a room-stream frame, in id order, never twice
//   presence  a presence.state frame     lobby     lobby.snapshot / lobby.update frames
//   servererror  an error frame that no pending send claimed (e.g. bad_resume, or a media
//                failure such as ice_failed that no request of ours caused)
//   media     a media signaling control frame (media.offer, media.answer, media.publishers, …;
//             docs/protocol.md, "Media signaling"): no id, never stored or replayed
//   frame     every parsed frame, before the specific event

export const PROTOCOL = 1;

// Close codes after which retrying cannot help (docs/protocol.md, "Close codes").
const FINAL_CLOSE = new Map([
  [4400, "The server refused the connection."],
  [4403, "You are not allowed in this conversation."],
  [4404, "This conversation does not exist."],
]);

export class RealtimeError extends Error {
  constructor(code, message, frame = null) {
    super(message);
    this.code = code;
    this.frame = frame;
  }
}

export class RealtimeClient extends EventTarget {
  /**
   * @param {string} url  ws:// or wss:// URL, or a path resolved against the page's origin
   * @param {object} options  minDelay/maxDelay (ms) for the backoff, connectTimeout (ms),
   *   WebSocket (constructor, for tests), random (() => [0,1), for tests)
   */
  constructor(url, options = {}) {
    super();
    this.url = RealtimeClient.resolve(url);
    this.minDelay = options.minDelay ?? 500;
    this.maxDelay = options.maxDelay ?? 30_000;
    this.connectTimeout = options.connectTimeout ?? 10_000;
    this.WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    this.random = options.random ?? Math.random;
    this.lastId = null; // highest room-stream id processed
    this.status = "idle";
    this.welcome = null;
    this.heartbeatSeconds = 15;
    this.attempt = 0;
    this.ws = null;
    this.pending = new Map(); // ref → {resolve, reject, timer}
    this.refCounter = 0;
    this.retryTimer = null;
    this.tickTimer = null;
    this.connectTimer = null;
    this.lastReceived = 0;
    this.lastSent = 0;
    this.stopped = false;
    this.onOnline = () => {
      if (this.status === "reconnecting") this.reconnectNow();
    };
  }

  static resolve(url) {
    if (/^wss?:\/\//.test(url)) return url;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${url.startsWith("/") ? "" : "/"}${url}`;
  }

  /** Open the connection (idempotent while connected or connecting). */
  connect() {
    this.stopped = false;
    globalThis.addEventListener?.("online", this.onOnline);
    if (this.ws && this.ws.readyState <= 1) return;
    clearTimeout(this.retryTimer);
    this.setStatus(this.attempt === 0 ? "connecting" : "reconnecting", { attempt: this.attempt });
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (err) {
      this.scheduleRetry(String(err));
      return;
    }
    this.ws = ws;
    this.welcome = null;
    // A handshake that hangs (half-open TCP, stuck proxy) must not block reconnecting forever.
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws && !this.welcome) ws.close(4000, "connect timeout");
    }, this.connectTimeout);
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.rawSend({ type: "hello", protocol: PROTOCOL, resume_from: this.lastId });
    });
    ws.addEventListener("message", (ev) => {
      if (this.ws === ws) this.onMessage(ev.data);
    });
    ws.addEventListener("close", (ev) => {
      if (this.ws === ws) this.onClose(ev);
    });
    // "error" is always followed by "close"; nothing to do here.
  }

  /** Close for good (page unload, leaving the room). */
  close() {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this.onOnline);
    clearTimeout(this.retryTimer);
    this.stopTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, "bye");
    this.failPending("closed", "The connection was closed.");
    this.setStatus("closed", { reason: "closed" });
  }

  /** Drop the current connection and open a new one at once, resuming from lastId.
   *  Used after the identity changes (guest sign-in) so the server sees the new cookie. */
  reconnectNow() {
    clearTimeout(this.retryTimer);
    this.stopTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, "reconnect");
    this.failPending("disconnected", "The connection was reset; please try again.");
    this.attempt = 0;
    this.stopped = false;
    this.connect();
  }

  /**
   * Send a client frame; resolves with the ack frame, rejects with a RealtimeError carrying the
   * server's error code and message (or "offline" / "disconnected" / "timeout").
   */
  send(frame, { timeout = 15_000 } = {}) {
    if (!this.ws || this.ws.readyState !== 1 || !this.welcome) {
      return Promise.reject(
        new RealtimeError("offline", "Not connected right now; it will reconnect by itself."),
      );
    }
    const ref = `r${++this.refCounter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new RealtimeError("timeout", "No answer from the server; please try again."));
      }, timeout);
      this.pending.set(ref, { resolve, reject, timer });
      this.rawSend({ ...frame, ref });
    });
  }

  // ---- internals -----------------------------------------------------------------------------

  rawSend(frame) {
    this.lastSent = Date.now();
    this.ws.send(JSON.stringify(frame));
  }

  setStatus(status, extra = {}) {
    this.status = status;
    this.emit("status", { status, ...extra });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  onMessage(data) {
    this.lastReceived = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // the server only sends JSON; ignore anything else rather than crash
    }
    if (!frame || typeof frame.type !== "string") return;
    this.emit("frame", frame);
    switch (frame.type) {
      case "welcome":
        return this.onWelcome(frame);
      case "snapshot":
        // The snapshot replaces everything; continue after its last id.
        this.lastId = frame.last_id ?? this.lastId;
        return this.emit("snapshot", frame);
      case "ack":
        return this.settle(frame, true);
      case "error":
        return this.settle(frame, false);
      case "heartbeat":
      case "pong":
        return;
      case "ping":
        return this.rawSend({ type: "pong" });
      default:
        break;
    }
    // Media frames are control frames: they carry no id and are not replayed, so they go to
    // their listeners as they come, outside the room stream's ordering.
    if (!frame.stream && frame.type.startsWith("media.")) return this.emit("media", frame);
    if (frame.stream === "room") return this.onRoomEvent(frame);
    if (frame.stream === "presence") return this.emit("presence", frame);
    if (frame.type.startsWith("lobby.")) return this.emit("lobby", frame);
  }

  onWelcome(frame) {
    clearTimeout(this.connectTimer);
    this.welcome = frame;
    this.heartbeatSeconds = Number(frame.heartbeat_seconds) || 15;
    this.attempt = 0;
    this.startTimers();
    this.setStatus("open");
    this.emit("welcome", frame);
  }

  onRoomEvent(frame) {
    const id = Number(frame.id);
    if (this.lastId !== null && id <= this.lastId) return; // already processed: never twice
    if (this.lastId !== null && id > this.lastId + 1) {
      // The server promises no gaps; if one shows up anyway, resume to fill it rather than
      // show a room that silently misses events.
      this.ws?.close(4000, "gap");
      return;
    }
    this.lastId = id;
    this.emit("room", frame);
  }

  settle(frame, ok) {
    const entry = frame.ref ? this.pending.get(frame.ref) : undefined;
    if (!entry) {
      if (!ok) this.emit("servererror", frame);
      return;
    }
    this.pending.delete(frame.ref);
    clearTimeout(entry.timer);
    if (ok) entry.resolve(frame);
    else entry.reject(new RealtimeError(frame.code, frame.message || frame.code, frame));
  }

  failPending(code, message) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new RealtimeError(code, message));
    }
    this.pending.clear();
  }

  onClose(ev) {
    this.ws = null;
    this.welcome = null;
    this.stopTimers();
    this.failPending("disconnected", "The connection dropped before the server answered.");
    if (this.stopped) return;
    const final = FINAL_CLOSE.get(ev.code);
    if (final) {
      this.stopped = true;
      this.setStatus("closed", { reason: final, code: ev.code });
      return;
    }
    this.scheduleRetry(ev.reason || `closed (${ev.code})`);
  }

  scheduleRetry(reason) {
    // Exponential backoff with jitter: between half and all of min·2^attempt, capped, so that a
    // restarted node is not hit by every client at the same instant.
    const ceiling = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + this.random() * (ceiling / 2));
    this.attempt += 1;
    this.setStatus("reconnecting", { delay, attempt: this.attempt, reason });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  startTimers() {
    this.stopTimers();
    const periodMs = this.heartbeatSeconds * 1000;
    this.tickTimer = setInterval(() => {
      const now = Date.now();
      if (now - this.lastReceived > 2 * periodMs + 1000) {
        // Two heartbeats missed: the connection is dead even if TCP has not noticed.
        this.ws?.close(4000, "heartbeat timeout");
        return;
      }
      if (now - this.lastSent >= periodMs / 2) this.rawSend({ type: "ping" });
    }, periodMs / 2);
  }

  stopTimers() {
    clearInterval(this.tickTimer);
    clearTimeout(this.connectTimer);
    this.tickTimer = null;
  }
}
