// The lobby, progressively enhanced: the server renders every conversation; this module shows
// times in the reader's own time zone and keeps the live/upcoming lists and their counts current
// over /ws/lobby (docs/protocol.md, "The lobby"). Titles and tags are user-written: they only
// ever reach the page through textContent.

const timeFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZoneName: "short",
});

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
];

/** "in 3 hours", "tomorrow": how far off an upcoming conversation is, or "" if past or far off. */
export function relativeTo(when, now = Date.now()) {
  const diff = when.getTime() - now;
  if (diff <= 0 || diff > 30 * 86_400_000) return "";
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms) return relativeFormat.format(Math.round(diff / ms), unit);
  }
  return relativeFormat.format(1, "minute");
}

/** Rewrite `<time datetime=… data-local>` (server text: UTC) in the reader's local time. Upcoming
 * cards also get how far off they are, in a sibling element so the <time> keeps the exact time. */
export function localiseTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-local]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) continue;
    el.textContent = timeFormat.format(when);
    if (el.closest('.conv-card[data-state="scheduled"]')) {
      let rel = el.nextElementSibling;
      if (!rel?.classList.contains("relative")) {
        rel = document.createElement("span");
        rel.className = "relative";
        el.after(rel);
      }
      const text = relativeTo(when);
      rel.textContent = text;
      rel.hidden = !text;
    }
  }
}

/** A decorative icon from the page's <template id="icon-…">. */
function icon(name) {
  const template = document.getElementById(`icon-${name}`);
  return template ? template.content.firstElementChild.cloneNode(true) : document.createTextNode("");
}

const lists = {
  live: document.getElementById("live-list"),
  scheduled: document.getElementById("upcoming-list"),
};
const empties = {
  live: document.getElementById("live-empty"),
  scheduled: document.getElementById("upcoming-empty"),
};
const status = document.getElementById("lobby-status");

function cardFor(slug) {
  for (const list of Object.values(lists)) {
    for (const card of list?.children ?? []) {
      if (card.dataset.slug === slug) return card;
    }
  }
  return null;
}

function renderTags(card, tags) {
  card.querySelector("ul.tags")?.remove();
  if (!Array.isArray(tags) || tags.length === 0) return;
  const ul = document.createElement("ul");
  ul.className = "tags";
  ul.setAttribute("aria-label", "Tags");
  for (const tag of tags) {
    const li = document.createElement("li");
    li.textContent = `#${tag}`;
    ul.append(li);
  }
  card.append(ul);
}

function renderSchedule(card, entry) {
  const meta = card.querySelector(".meta");
  meta.replaceChildren();
  if (entry.scheduled_at) {
    const time = document.createElement("time");
    time.dateTime = entry.scheduled_at;
    time.dataset.local = "";
    time.textContent = entry.scheduled_at;
    meta.append(icon("calendar"), time);
    localiseTimes(meta);
  } else {
    const span = document.createElement("span");
    span.className = "muted";
    span.textContent = "Time not set yet";
    meta.append(icon("clock"), span);
  }
}

function newCard(entry) {
  const template = document.getElementById(entry.state === "live" ? "live-card" : "upcoming-card");
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.slug = entry.slug;
  return card;
}

function fill(card, entry) {
  const link = card.querySelector("h3 a");
  link.href = `/c/${encodeURIComponent(entry.slug)}`;
  link.textContent = entry.title ?? link.textContent;
  if (entry.state === "live") {
    for (const key of ["present", "on_stage"]) {
      const el = card.querySelector(`[data-count="${key}"]`);
      if (el && Number.isFinite(entry[key])) el.textContent = String(entry[key]);
    }
  } else {
    renderSchedule(card, entry);
  }
  if ("tags" in entry) renderTags(card, entry.tags);
}

/** Insert, update or move one conversation's card; other states leave the live lists. */
function upsert(entry) {
  if (!entry || typeof entry.slug !== "string") return;
  let card = cardFor(entry.slug);
  const list = lists[entry.state];
  if (!list || entry.removed) {
    card?.remove();
    return;
  }
  if (card && card.dataset.state !== entry.state) {
    // scheduled → live: the card changes shape, so build it anew in the other list.
    card.remove();
    card = null;
    if (entry.state === "live") announce(`${entry.title ?? "A conversation"} is now live.`);
  }
  if (!card) {
    card = newCard(entry);
    list.prepend(card);
  }
  fill(card, entry);
  if (entry.state === "scheduled") placeByTime(list, card, entry.scheduled_at);
}

/** Keep upcoming conversations soonest first (unscheduled ones last), as the server lists them. */
function placeByTime(list, card, when) {
  card.dataset.when = when ?? "";
  const key = (el) => (el.dataset.when ? Date.parse(el.dataset.when) : Infinity);
  const mine = key(card);
  const later = [...list.children].find((el) => el !== card && key(el) > mine);
  if (later) list.insertBefore(card, later);
  else list.append(card);
}

function announce(text) {
  if (status) status.textContent = text;
}

function refreshEmpties() {
  for (const [state, list] of Object.entries(lists)) {
    if (empties[state]) empties[state].hidden = (list?.children.length ?? 0) > 0;
  }
  const anything = Object.values(lists).some((list) => (list?.children.length ?? 0) > 0);
  const invite = document.querySelector(".invite-to-create");
  if (invite) invite.hidden = anything;
}

function payload(frame) {
  return frame.data && typeof frame.data === "object" ? frame.data : frame;
}

function onSnapshot(frame) {
  const entries = payload(frame).conversations ?? [];
  const seen = new Set();
  for (const entry of entries) {
    seen.add(entry.slug);
    upsert(entry);
  }
  // The snapshot is the whole picture: whatever it lacks has ended or gone private.
  for (const list of Object.values(lists)) {
    for (const card of [...(list?.children ?? [])]) {
      if (!seen.has(card.dataset.slug)) card.remove();
    }
  }
}

function onUpdate(frame) {
  const body = payload(frame);
  upsert(body.conversation ?? body);
}

// ---- the connection -----------------------------------------------------------------------------
// /ws/lobby sends a snapshot on connect, then updates; it answers `ping` with `pong` and needs no
// hello. We ping every PING_MS and treat a silence of two periods as a dead connection (a
// half-open TCP connection never reports itself), then reconnect with jittered exponential
// backoff so a restarted node is not hit by every open lobby at the same instant.

const PING_MS = 15_000;
const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;

export class LobbyConnection {
  constructor(onFrame, url = "/ws/lobby") {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = `${scheme}//${location.host}${url}`;
    this.onFrame = onFrame;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.retry = null;
    this.lastHeard = 0;
    this.stopped = false;
  }

  connect() {
    this.stopped = false;
    if (this.ws && this.ws.readyState <= 1) return;
    clearTimeout(this.retry);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.lastHeard = Date.now();
      clearInterval(this.timer);
      this.timer = setInterval(() => this.tick(ws), PING_MS);
    });
    ws.addEventListener("message", (ev) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame?.type === "lobby.snapshot") this.attempt = 0;
      if (frame && typeof frame.type === "string") this.onFrame(frame);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.timer);
      if (!this.stopped) this.scheduleRetry();
    });
  }

  tick(ws) {
    if (Date.now() - this.lastHeard > 2 * PING_MS + 1000) {
      ws.close(4000, "no answer");
      return;
    }
    if (ws.readyState === 1) ws.send(JSON.stringify({ type: "ping" }));
  }

  scheduleRetry() {
    const ceiling = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt);
    this.attempt += 1;
    this.retry = setTimeout(() => this.connect(), ceiling / 2 + Math.random() * (ceiling / 2));
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, "bye");
  }
}

export function start() {
  localiseTimes();
  // Keep "in 5 minutes" honest on a lobby left open.
  setInterval(() => localiseTimes(), 60_000);
  if (!lists.live || !("WebSocket" in globalThis)) return null;
  const connection = new LobbyConnection((frame) => {
    if (frame.type === "lobby.snapshot") onSnapshot(frame);
    else if (frame.type === "lobby.update") onUpdate(frame);
    else return;
    refreshEmpties();
  });
  connection.connect();
  addEventListener("pagehide", () => connection.close());
  // Back/forward cache: a page restored from memory needs its connection again.
  addEventListener("pageshow", (ev) => {
    if (ev.persisted) connection.connect();
  });
  // Coming back online: try at once instead of waiting out the backoff.
  addEventListener("online", () => {
    connection.attempt = 0;
    connection.connect();
  });
  return connection;
}

start();
