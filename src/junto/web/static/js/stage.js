// The stage: who is on it (a tile each, with their live video), screen shares, raised hands, and
// the viewer's own hand control. Roles and hands come from the durable room stream; presence
// says who is here right now; audio, video, mute states, quality and the active speaker come
// from the media client (media.js). The speaker's own buttons live in stage_controls.js.

import { sentence } from "./composer.js";
import { ROLE_LABELS, isOnStage, paintPerson, personName } from "./person.js";
import { el, reconcile } from "./ui.js";

const ROLE_ORDER = { host: 0, cohost: 1, speaker: 2, audience: 3 };

/** Everyone the room knows about: role, hand and block from the room stream, "here" from presence. */
export class PeopleStore extends EventTarget {
  constructor() {
    super();
    // user id → {person, role, hand_raised, hand_seq, blocked, consented, here}
    this.people = new Map();
    this.handSeq = 0;
  }

  get(id) {
    let entry = this.people.get(id);
    if (!entry) {
      entry = { person: { id, name: "?", colour: "#55575d", is_guest: false }, role: "audience",
        hand_raised: false, hand_seq: 0, blocked: false, consented: false, here: false };
      this.people.set(id, entry);
    }
    return entry;
  }

  learn(person) {
    if (!person || person.id === undefined) return null;
    const entry = this.get(person.id);
    entry.person = { ...entry.person, ...person };
    return entry;
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }

  /** snapshot.stage.participants: [{user|person fields, role, hand_raised, blocked, consented}] */
  applySnapshot(participants) {
    for (const entry of this.people.values()) {
      entry.role = "audience";
      entry.hand_raised = false;
      entry.blocked = false;
      entry.consented = false;
    }
    for (const p of participants || []) {
      const person = p.user || p.person || p;
      const entry = this.learn({ id: person.id, name: person.name, colour: person.colour,
        is_guest: person.is_guest });
      if (!entry) continue;
      entry.role = p.role || "audience";
      entry.hand_raised = Boolean(p.hand_raised);
      // The snapshot lists hands in raising order; later hands are numbered as they arrive.
      entry.hand_seq = entry.hand_raised ? ++this.handSeq : 0;
      entry.blocked = Boolean(p.blocked);
      entry.consented = Boolean(p.consented);
    }
    this.changed();
  }

  onEvent(frame) {
    const data = frame.data || {};
    let entry;
    switch (frame.type) {
      case "stage.hand":
        entry = this.learn(data.user);
        if (!entry) return;
        entry.hand_raised = Boolean(data.raised);
        entry.hand_seq = entry.hand_raised ? ++this.handSeq : 0;
        break;
      case "stage.role":
        entry = this.learn(data.user);
        if (!entry) return;
        entry.role = data.role;
        // Being brought on stage answers a raised hand.
        if (isOnStage(data.role)) entry.hand_raised = false;
        break;
      case "stage.consent":
        // Given once per conversation (docs/protocol.md): the next "Join the stage" skips asking.
        entry = this.learn(data.user);
        if (!entry) return;
        entry.consented = true;
        break;
      case "participant.blocked":
        entry = this.get(data.user_id);
        entry.blocked = Boolean(data.blocked);
        if (entry.blocked && entry.role === "speaker") entry.role = "audience";
        if (entry.blocked) entry.hand_raised = false;
        break;
      default:
        return;
    }
    this.changed();
  }

  /** presence.state data: marks who is connected and refreshes names and colours. */
  applyPresence(members) {
    const here = new Set();
    for (const m of members || []) {
      const entry = this.learn({ id: m.id, name: m.name, colour: m.colour, is_guest: m.is_guest });
      if (entry) here.add(m.id);
    }
    for (const [id, entry] of this.people) entry.here = here.has(id);
    this.changed();
  }

  onStage() {
    return [...this.people.values()]
      .filter((e) => isOnStage(e.role))
      .sort((a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || a.person.name.localeCompare(b.person.name));
  }

  hands() {
    return [...this.people.values()]
      .filter((e) => e.hand_raised && !isOnStage(e.role))
      .sort((a, b) => a.hand_seq - b.hand_seq);
  }
}

function initials(name) {
  const words = String(name || "?").trim().split(/\s+/u).filter(Boolean);
  return words.slice(0, 2).map((w) => [...w][0].toUpperCase()).join("") || "?";
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** A line icon (24×24, stroked in currentColor by the stylesheet), hidden from screen readers. */
export function icon(className, paths) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon ${className}`);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

// Line icons in the style of Feather (MIT): a microphone struck through.
export const ICONS = {
  micOff: ["M1 1l22 22", "M9 9v3a3 3 0 0 0 5.12 2.12M15 9.34V4a3 3 0 0 0-5.94-.6",
    "M17 16.95A7 7 0 0 1 5 12v-2m14 0v2a7 7 0 0 1-.11 1.23", "M12 19v4M8 23h8"],
};

const QUALITY_TEXT = { good: "good", fair: "fair", poor: "poor" };

function qualityIndicator() {
  return el("span", { className: "quality", hidden: true },
    el("span", { className: "bars", "aria-hidden": "true" }, el("i"), el("i"), el("i")),
    el("span", { className: "visually-hidden quality-text" }));
}

function setQuality(node, level) {
  node.hidden = !level;
  node.dataset.level = level || "";
  node.querySelector(".quality-text").textContent = level ? `connection ${QUALITY_TEXT[level] || level}` : "";
  node.title = level ? `Connection: ${QUALITY_TEXT[level] || level}` : "";
}

/**
 * Show `stream` in `video` (a fresh stream restarts it; the same one is left playing).
 * `onChange` runs when the picture appears or goes (first frame, track muted or unmuted).
 */
function show(video, stream, onChange = null) {
  if (video.srcObject === stream) return;
  video.srcObject = stream;
  if (!stream) return;
  video.play().catch(() => {}); // muted video may always play; a detached one throws
  if (!onChange) return;
  video.hooked ??= new WeakSet(); // streams are rebuilt around the same tracks: hook each once
  for (const track of stream.getVideoTracks()) {
    if (video.hooked.has(track)) continue;
    video.hooked.add(track);
    // A remote track is muted while no packets arrive (not yet, or its m-line went inactive).
    track.addEventListener("mute", onChange);
    track.addEventListener("unmute", onChange);
  }
}

/** True once `video` shows frames of a live, unmuted video track. */
function showsPicture(video, stream) {
  const track = stream?.getVideoTracks()[0];
  return Boolean(track && track.readyState === "live" && !track.muted && video.readyState >= 2);
}

export class StageView extends EventTarget {
  constructor(root, ctx, store, media) {
    super();
    this.root = root;
    this.ctx = ctx;
    this.store = store;
    this.media = media;
    this.tiles = root.querySelector(".stage-tiles");
    this.screens = root.querySelector(".stage-screens");
    this.audioBox = root.querySelector(".stage-audio");
    this.emptyStage = root.querySelector(".stage-empty");
    this.handsList = root.querySelector(".hands-list");
    this.handsCount = root.querySelector(".hands-count");
    this.handsEmpty = root.querySelector(".hands-empty");
    this.handButton = root.querySelector(".hand-button");
    this.myNote = root.querySelector(".my-stage-note");
    this.error = root.querySelector(".stage-error");
    this.lockBadge = root.querySelector(".stage-locked");
    this.locked = false;
    this.soundBlocked = false; // the browser refused to play sound before a click
    store.addEventListener("change", () => this.render());
    this.handButton.addEventListener("click", () => this.toggleHand());
    media.addEventListener("publishers", () => this.renderTiles());
    for (const type of ["streams", "local", "active", "state", "quality"]) {
      media.addEventListener(type, () => this.renderMedia());
    }
  }

  async act(frame) {
    this.showError("");
    try {
      await this.ctx.send(frame);
    } catch (err) {
      this.showError(err.message);
    }
  }

  showError(message) {
    this.error.textContent = sentence(message);
    this.error.hidden = !message;
  }

  toggleHand() {
    const me = this.store.people.get(this.ctx.me.user_id);
    this.act({ type: me?.hand_raised ? "hand.lower" : "hand.raise" });
  }

  render() {
    this.renderTiles();
    this.renderHands();
    this.renderMine();
  }

  /** Everyone on stage, plus anyone publishing whom the room stream has not placed yet. */
  stageEntries() {
    const entries = this.store.onStage();
    const ids = new Set(entries.map((e) => e.person.id));
    for (const pub of this.media.publishers.values()) {
      if (ids.has(pub.user_id)) continue;
      const known = this.store.people.get(pub.user_id);
      entries.push({ person: known?.person || { id: pub.user_id, name: pub.name || "?", colour: null, is_guest: false },
        role: "speaker", here: true });
    }
    return entries;
  }

  renderTiles() {
    const onStage = this.stageEntries();
    this.tiles.dataset.count = String(onStage.length);
    this.emptyStage.hidden = onStage.length > 0;
    const mod = this.ctx.canModerate();
    reconcile(this.tiles, onStage, {
      key: (e) => e.person.id,
      signature: (e) => JSON.stringify([e.person, e.role, e.here, mod]),
      render: (e) => this.tile(e),
      update: (li, e) => this.fillTile(li, e),
    });
    this.renderMedia();
  }

  tile(entry) {
    const id = String(entry.person.id);
    const li = el("li", { dataset: { user: id, userId: id } });
    const video = el("video", { playsinline: true, autoplay: true, muted: true, "aria-hidden": "true" });
    // Sound plays through the <audio> elements below the stage, which stay put when tiles
    // move or the stage tab is hidden on a phone; the picture is always muted.
    video.muted = true;
    // Until the first frame is there the avatar shows, never a black box.
    const refresh = () => this.applyMedia(li, Number(li.dataset.userId));
    for (const type of ["loadeddata", "resize", "emptied"]) video.addEventListener(type, refresh);
    li.refreshMedia = refresh;
    const micOff = el("span", { className: "mic-muted", role: "img", "aria-label": "microphone muted", hidden: true },
      icon("mic-off-icon", ICONS.micOff));
    // The picture area is kept when the tile's label changes, so the video keeps playing.
    li.append(el("div", { className: "tile-video" },
      video,
      el("span", { className: "tile-initials", "aria-hidden": "true" }),
      el("div", { className: "tile-status" }, micOff, qualityIndicator())));
    this.fillTile(li, entry);
    return li;
  }

  fillTile(li, entry) {
    const { person, role, here } = entry;
    const you = this.ctx.isMe(person.id);
    li.className = `tile stage-tile role-${role}${here ? " here" : " away"}`;
    paintPerson(li, person.colour, "#1b1d23");
    li.querySelector(".tile-initials").textContent = initials(person.name);
    for (const old of li.querySelectorAll(":scope > :not(.tile-video)")) old.remove();
    const label = el("div", { className: "tile-label" },
      personName(person, { you, paint: false }),
      el("span", { className: "role-badge" }, ROLE_LABELS[role] || role),
      el("span", { className: "marker" }, here ? "here" : "away"));
    li.append(label);
    if (this.ctx.canModerate() && role !== "host" && !you) {
      li.append(this.ctx.actionButton("Send to audience", `Send to audience: ${person.name}`,
        { type: "stage.remove", user_id: person.id }, (m) => this.showError(m)));
    }
    this.applyMedia(li, person.id);
  }

  /** Video, mute, camera-off, quality and active speaker on one tile. */
  applyMedia(li, id) {
    const m = this.media;
    const you = this.ctx.isMe(id);
    const pub = m.publishers.get(id);
    const live = you ? m.isPublishing("camera") : Boolean(pub);
    const stream = (you ? m.localStream : m.remoteStreams.get(`${id}:camera`)) || null;
    const video = li.querySelector("video");
    show(video, stream, li.refreshMedia);
    // Your own picture is mirrored, as in a looking glass; others see you the right way round.
    video.classList.toggle("mirrored", you);
    const videoOff = you ? m.videoOff : Boolean(pub?.video_off);
    const hasVideo = !videoOff && showsPicture(video, stream);
    li.classList.toggle("has-video", hasVideo);
    li.classList.toggle("video-off", !hasVideo);
    li.classList.toggle("live", live);
    const muted = live && (you ? m.audioMuted : Boolean(pub?.audio_muted));
    li.classList.toggle("audio-muted", muted);
    li.querySelector(".mic-muted").hidden = !muted;
    setQuality(li.querySelector(".quality"), live ? (you ? m.quality : pub?.quality) || null : null);
    li.classList.toggle("active-speaker", live && m.activeSpeaker !== null && String(m.activeSpeaker) === String(id));
  }

  renderMedia() {
    for (const li of this.tiles.children) this.applyMedia(li, Number(li.dataset.userId));
    this.renderScreens();
    this.renderAudio();
  }

  /** A screen share gets its own large tile above the speakers. */
  renderScreens() {
    const m = this.media;
    const me = this.ctx.me.user_id;
    const items = [];
    for (const pub of m.publishers.values()) {
      if ((pub.sources || []).includes("screen") && pub.user_id !== me) {
        items.push({ id: pub.user_id, person: this.store.people.get(pub.user_id)?.person || { id: pub.user_id, name: pub.name } });
      }
    }
    if (m.screenStream && me !== null) {
      items.unshift({ id: me, person: { id: me, name: this.ctx.me.name, colour: this.ctx.me.colour } });
    }
    this.screens.hidden = items.length === 0;
    reconcile(this.screens, items, {
      key: (i) => i.id,
      signature: (i) => JSON.stringify(i.person),
      render: (i) => {
        const you = this.ctx.isMe(i.id);
        const video = el("video", { playsinline: true, autoplay: true, muted: true, "aria-hidden": "true" });
        video.muted = true;
        const li = el("li", { className: "screen-tile", dataset: { userId: String(i.id), source: "screen" } },
          el("div", { className: "screen-video" }, video),
          el("div", { className: "tile-label" },
            el("span", { className: "screen-name" }, you ? "Your screen" : `${i.person.name}’s screen`)));
        return li;
      },
    });
    for (const li of this.screens.children) {
      const id = Number(li.dataset.userId);
      show(li.querySelector("video"), (this.ctx.isMe(id) ? m.screenStream : m.remoteStreams.get(`${id}:screen`)) || null);
    }
  }

  /** One <audio> per speaker we receive (never our own voice back). */
  renderAudio() {
    const wanted = new Map();
    for (const [key, stream] of this.media.remoteStreams) {
      if (this.ctx.isMe(Number(key.split(":")[0]))) continue;
      if (stream.getAudioTracks().length) wanted.set(key, stream);
    }
    for (const audio of [...this.audioBox.children]) {
      if (!wanted.has(audio.dataset.key)) {
        audio.srcObject = null;
        audio.remove();
      }
    }
    for (const [key, stream] of wanted) {
      let audio = [...this.audioBox.children].find((a) => a.dataset.key === key);
      if (!audio) {
        audio = el("audio", { autoplay: true, dataset: { key } });
        this.audioBox.append(audio);
      }
      if (audio.srcObject !== stream) {
        audio.srcObject = stream;
        this.play(audio);
      }
    }
  }

  play(audio) {
    audio.play().catch((err) => {
      if (err?.name !== "NotAllowedError" || this.soundBlocked) return;
      // Autoplay policy: sound needs a click on the page first ("Watch and listen live").
      this.soundBlocked = true;
      this.dispatchEvent(new Event("sound"));
    });
  }

  /** Called from a click: play every speaker's sound. */
  resumeSound() {
    this.soundBlocked = false;
    for (const audio of this.audioBox.children) this.play(audio);
    this.dispatchEvent(new Event("sound"));
  }

  renderHands() {
    const hands = this.store.hands();
    this.handsCount.textContent = String(hands.length);
    this.handsEmpty.hidden = hands.length > 0;
    const mod = this.ctx.canModerate();
    reconcile(this.handsList, hands, {
      key: (e) => e.person.id,
      signature: (e) => JSON.stringify([e.person, mod]),
      render: (entry) => {
        const li = el("li", { className: "hand", dataset: { user: String(entry.person.id) } },
          el("span", { className: "hand-icon", "aria-hidden": "true" }, "✋"),
          personName(entry.person, { you: this.ctx.isMe(entry.person.id) }));
        if (this.ctx.canModerate()) {
          const say = (m) => this.showError(m);
          const actions = el("div", { className: "row-actions" },
            this.ctx.actionButton("Bring on stage", `Bring ${entry.person.name} on stage`,
              { type: "stage.invite", user_id: entry.person.id }, say),
            // stage.remove on someone in the audience declines their raised hand.
            this.ctx.actionButton("Decline", `Decline ${entry.person.name}'s raised hand`,
              { type: "stage.remove", user_id: entry.person.id }, say));
          li.append(actions);
        }
        return li;
      },
    });
  }

  renderMine() {
    const me = this.ctx.me;
    const entry = me.user_id !== null ? this.store.people.get(me.user_id) : undefined;
    const role = entry?.role || me.role || "audience";
    const identity = this.ctx.hasIdentity();
    const audience = !isOnStage(role);
    const over = this.ctx.isOver();
    this.handButton.hidden = !identity || !audience || over;
    const raised = Boolean(entry?.hand_raised);
    const locked = this.locked && !raised; // a raised hand can always come down
    this.handButton.textContent = raised ? "Lower your hand" : "Raise your hand";
    this.handButton.setAttribute("aria-pressed", String(raised));
    this.handButton.disabled = Boolean(entry?.blocked) || locked;
    let note = "";
    if (over) note = "";
    else if (!identity) note = "Pick a name or sign in to raise your hand.";
    else if (entry?.blocked) note = "A host has blocked you from posting in this room.";
    else if (!audience) note = `You are on stage as ${(ROLE_LABELS[role] || role).toLowerCase()}.`;
    else if (locked) note = "The stage is locked: hosts are not taking raised hands right now.";
    else if (raised) note = "Your hand is raised; a host can bring you on stage.";
    this.myNote.textContent = note;
    this.myNote.hidden = !note;
    this.dispatchEvent(new Event("mine"));
  }

  setLocked(locked) {
    this.locked = locked;
    this.lockBadge.hidden = !locked;
    this.renderMine();
  }
}
