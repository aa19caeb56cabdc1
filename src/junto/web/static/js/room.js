// The conversation room page (/c/{slug}): wires the realtime client to the chat, backchannel,
// stage (with its audio and video), presence and host-control views. The server renders the page and passes its data in a
// <script type="application/json" id="room-data"> block (no inline script: strict CSP).

import { BackchannelView } from "./backchannel.js";
import { CaptionsView } from "./captions.js";
import { ChatView } from "./chat.js";
import { HostControls, errorMessage } from "./host.js";
import { MediaClient } from "./media.js";
import { isModerator, isOnStage, ROLE_LABELS } from "./person.js";
import { PresenceView } from "./presence.js";
import { refreshProcessing } from "./processing.js";
import { RealtimeClient } from "./realtime.js";
import { formatOffset } from "./richtext.js";
import { PeopleStore, StageView } from "./stage.js";
import { StageControls } from "./stage_controls.js";
import { Tabs } from "./tabs.js";
import { csrfToken, el } from "./ui.js";

const STATE_LABELS = { scheduled: "Scheduled", live: "Live", ended: "Ended", published: "Published" };

const STATUS_TEXT = {
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
};

class Room {
  constructor(data) {
    this.slug = data.slug;
    this.limits = { chat: data.limits?.chat ?? 2000, backchannel: data.limits?.backchannel ?? 280 };
    this.conversation = data.conversation;
    this.recording = Boolean(data.recording);
    this.settings = { slow_mode_seconds: data.settings?.slow_mode_seconds ?? 0,
      stage_locked: Boolean(data.settings?.stage_locked) };
    const viewer = data.viewer;
    this.me = {
      user_id: viewer?.id ?? null,
      name: viewer?.name ?? "",
      colour: viewer?.colour ?? null,
      is_guest: Boolean(viewer?.is_guest),
      role: data.role ?? (viewer ? "audience" : null),
      can_moderate: Boolean(data.can_moderate),
      blocked: Boolean(data.blocked),
    };
    this.announcer = document.getElementById("announcer");
    this.statusEl = document.getElementById("conn-status");
    this.store = new PeopleStore();
    this.client = new RealtimeClient(data.ws_path);
    this.media = new MediaClient(this.client);
    // For tests and the benchmark: the page's peer connections and streams.
    window.juntoMedia = this.media;
    this.tabs = new Tabs(document.querySelector(".room-tabs"));
    this.chat = new ChatView(document.getElementById("panel-chat"), this);
    this.backchannel = new BackchannelView(document.getElementById("panel-backchannel"), this);
    const stagePanel = document.getElementById("panel-stage");
    this.stage = new StageView(stagePanel, this, this.store, this.media);
    this.stageControls = new StageControls(stagePanel, this, this.store, this.media, this.stage);
    this.presence = new PresenceView(document.getElementById("panel-people"), this, this.store);
    this.captions = new CaptionsView(document.getElementById("captions"), document.querySelector(".cc-button"));
    this.host = new HostControls(document.querySelector(".host-controls"), this);
    this.setupJoin();
    // Hashtags in the chat filter the backchannel too (and show it, on a phone).
    this.chat.list.addEventListener("click", (ev) => {
      if (this.backchannel.onHashtagClick(ev)) this.tabs.show("backchannel");
    });
    this.wire();
    this.applyConversation(this.conversation);
    this.applySettings(this.settings);
    this.applyMe();
    this.client.connect();
    setInterval(() => this.tickElapsed(), 1000);
    this.fitPanels();
    window.addEventListener("resize", () => this.fitPanels());
  }

  /** On a wide screen, size the chat and backchannel so their inputs are in view at once. */
  fitPanels() {
    const grid = document.querySelector(".room-grid");
    const top = grid.getBoundingClientRect().top + window.scrollY;
    const height = Math.max(384, Math.min(window.innerHeight - top - 16, 1100));
    grid.style.setProperty("--panel-h", `${Math.round(height)}px`);
  }

  // ---- the context the views use --------------------------------------------------------------

  isMe(id) {
    return this.me.user_id !== null && id === this.me.user_id;
  }

  hasIdentity() {
    return this.me.user_id !== null;
  }

  canModerate() {
    return this.hasIdentity() && (this.me.can_moderate || isModerator(this.me.role));
  }

  canPost() {
    return this.hasIdentity() && !this.me.blocked && !this.isOver();
  }

  isOver(state = this.conversation?.state) {
    return state === "ended" || state === "published";
  }

  send(frame) {
    return this.client.send(frame);
  }

  /** Polite announcement for changes addressed to this person ("You are now on stage"). */
  announce(text) {
    // Clearing first makes a repeated message ("Your hand is raised") be read again.
    this.announcer.textContent = "";
    setTimeout(() => {
      this.announcer.textContent = text;
    }, 60);
  }

  /** Something new arrived in a section: mark its tab when that tab is hidden (phone). */
  notify(section) {
    this.tabs.markUnread(section);
  }

  /** A button that sends one frame and reports a refusal through `onError`. */
  actionButton(label, accessibleName, frame, onError, { danger = false } = {}) {
    const button = el("button", {
      type: "button",
      className: danger ? "small danger" : "small secondary",
      "aria-label": accessibleName,
    }, label);
    button.addEventListener("click", async () => {
      onError("");
      button.disabled = true;
      try {
        await this.send(frame);
      } catch (err) {
        onError(err.message);
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  // ---- realtime events ------------------------------------------------------------------------

  wire() {
    const c = this.client;
    c.addEventListener("status", (ev) => this.showStatus(ev.detail));
    c.addEventListener("welcome", (ev) => this.onWelcome(ev.detail));
    c.addEventListener("snapshot", (ev) => this.onSnapshot(ev.detail));
    c.addEventListener("room", (ev) => this.onRoomEvent(ev.detail));
    c.addEventListener("presence", (ev) => this.presence.onPresence(ev.detail));
    // caption.partial is a control frame (no id, not replayed): it comes only as a raw frame.
    c.addEventListener("frame", (ev) => {
      if (ev.detail.type === "caption.partial") this.captions.onPartial(ev.detail);
    });
    c.addEventListener("servererror", (ev) => {
      // Errors for no frame of ours (e.g. bad_resume, which is followed by a snapshot).
      console.warn("junto:", ev.detail.code, ev.detail.message);
    });
    window.addEventListener("pagehide", () => c.close());
    // Back/forward cache: a page restored from it must reconnect (and resumes from lastId).
    window.addEventListener("pageshow", (ev) => {
      if (ev.persisted) c.connect();
    });
  }

  showStatus({ status, delay, reason }) {
    let text = STATUS_TEXT[status] || status;
    if (status === "reconnecting" && delay) text = `Reconnecting… (retry in ${Math.ceil(delay / 1000)} s)`;
    if (status === "closed" && reason && reason !== "closed") text = reason;
    this.statusEl.textContent = text;
    this.statusEl.dataset.status = status;
    document.body.classList.toggle("offline", status !== "open");
  }

  onWelcome(frame) {
    const you = frame.you || {};
    const before = this.permissionKey();
    const state = frame.conversation?.state ?? this.conversation?.state;
    const identity = you.user_id !== null && you.user_id !== undefined;
    this.me = {
      ...this.me,
      user_id: identity ? you.user_id : null,
      name: you.name ?? "",
      colour: you.colour ?? null,
      is_guest: Boolean(you.is_guest),
      role: you.role ?? (identity ? "audience" : null),
      can_moderate: Boolean(you.can_moderate),
      // welcome.you says can_post; for a person in a room that is open for posts, "no" can
      // only mean a block, which later participant.blocked events lift or set again.
      blocked: you.blocked ?? (identity && !you.can_post && !this.isOver(state)),
    };
    if (frame.conversation) this.applyConversation(frame.conversation);
    this.applyMe(before !== this.permissionKey());
    // After a reconnect this publishes and subscribes again (media belongs to one socket).
    this.media.onWelcome(frame, { mayPublish: isOnStage(this.me.role) && !this.me.blocked });
    if (this.focusAfterJoin && this.hasIdentity()) {
      // The join form just disappeared: move focus to where the guest will type next.
      this.focusAfterJoin = false;
      const input = this.chat.composer.input;
      if (input.offsetParent !== null) input.focus();
      else this.backchannel.composer.input.focus();
    }
  }

  onSnapshot(frame) {
    if (frame.conversation) this.applyConversation(frame.conversation);
    const settings = frame.settings || frame.room || frame.conversation || {};
    this.applySettings({ slow_mode_seconds: settings.slow_mode_seconds, stage_locked: settings.stage_locked });
    this.store.applySnapshot(frame.stage?.participants || []);
    this.chat.reset(frame.chat || []);
    this.backchannel.reset(frame.backchannel || []);
    this.syncMeFromStore();
  }

  onRoomEvent(frame) {
    const { type } = frame;
    const data = frame.data || {};
    if (type.startsWith("chat.")) this.chat.onEvent(frame);
    else if (type.startsWith("backchannel.")) this.backchannel.onEvent(frame);
    else if (type.startsWith("stage.") || type.startsWith("participant.")) {
      this.store.onEvent(frame);
      this.aboutMe(frame);
    } else if (type === "caption") this.captions.onEvent(frame);
    else if (type === "room.settings") this.applySettings(data);
    else if (type === "conversation.state") {
      this.applyConversation({ ...this.conversation, ...data });
      // The node stops publications when a conversation ends (media.ended); stop at once.
      if (this.isOver()) {
        this.media.stopAll({ send: false });
        this.captions.clearPartials();
      }
      // Edit buttons and reactions depend on the state: redraw them.
      this.applyMe(true);
    } else if (type === "conversation.updated") {
      this.applyConversation({ ...this.conversation, ...data });
    }
  }

  /** Stage and block events addressed to this person: update rights and say so. */
  aboutMe(frame) {
    const data = frame.data || {};
    const target = data.user?.id ?? data.user_id;
    if (!this.isMe(target)) return;
    const before = this.permissionKey();
    if (frame.type === "stage.role") {
      const old = this.me.role;
      this.me.role = data.role;
      this.stageControls.onMyRole(old, data.role);
      if (!isModerator(data.role)) this.me.can_moderate = false;
      if (isOnStage(data.role) && !isOnStage(old)) {
        this.announce(`You are now on stage as ${ROLE_LABELS[data.role].toLowerCase()}.`);
      } else if (!isOnStage(data.role) && isOnStage(old)) {
        this.announce("You are back in the audience.");
      } else if (data.role !== old) {
        this.announce(`Your role is now ${ROLE_LABELS[data.role].toLowerCase()}.`);
      }
    } else if (frame.type === "stage.hand") {
      this.announce(data.raised ? "Your hand is raised." : "Your hand is lowered.");
    } else if (frame.type === "participant.blocked") {
      this.me.blocked = Boolean(data.blocked);
      this.announce(data.blocked
        ? "A host has blocked you from posting in this room."
        : "A host has unblocked you: you can post again.");
    }
    this.applyMe(before !== this.permissionKey());
  }

  syncMeFromStore() {
    if (!this.hasIdentity()) return;
    const entry = this.store.people.get(this.me.user_id);
    if (!entry) return;
    const before = this.permissionKey();
    this.me.role = entry.role;
    this.me.blocked = entry.blocked || this.me.blocked;
    this.applyMe(before !== this.permissionKey());
  }

  // ---- page state -----------------------------------------------------------------------------

  permissionKey() {
    return `${this.me.user_id}|${this.canModerate()}|${this.canPost()}`;
  }

  applyMe(rerender = false) {
    const identity = this.hasIdentity();
    const joinBar = document.querySelector(".join-bar");
    if (joinBar.hidden !== identity) {
      joinBar.hidden = identity;
      this.fitPanels();
    }
    const why = !identity ? "" : this.me.blocked ? "A host has blocked you from posting here."
      : this.isOver() ? "This conversation has ended." : "";
    for (const composer of [this.chat.composer, this.backchannel.composer]) {
      // After the end there is nothing to write into: the composers go, a note says why.
      composer.form.hidden = !identity || this.isOver();
      composer.setEnabled(this.canPost(), why);
    }
    for (const note of document.querySelectorAll(".over-note")) note.hidden = !this.isOver();
    document.querySelector(".slow-mode-note").classList.toggle("over", this.isOver());
    this.host.show(this.canModerate());
    this.host.setState(this.conversation?.state);
    if (rerender) {
      this.chat.refreshPermissions();
      this.backchannel.refreshPermissions();
    }
    this.stage.render();
    this.presence.renderList();
  }

  applyConversation(conv) {
    if (!conv) return;
    this.conversation = { ...this.conversation, ...conv };
    const c = this.conversation;
    const title = document.getElementById("room-title");
    if (c.title && title.textContent !== c.title) {
      title.textContent = c.title;
      document.title = `${c.title} · Junto`;
    }
    const desc = document.getElementById("room-description");
    if (c.description !== undefined && desc) {
      desc.textContent = c.description;
      desc.hidden = !c.description;
    }
    const badge = document.getElementById("room-state");
    badge.textContent = STATE_LABELS[c.state] || c.state;
    badge.dataset.state = c.state;
    badge.classList.toggle("live", c.state === "live");
    if (Array.isArray(c.tags)) this.renderTags(c.tags);
    // "Recording" while live (only consenting speakers are recorded); after the end, where the
    // transcript and the video will be, and the jobs making them.
    const rec = document.getElementById("rec-badge");
    if (rec) rec.hidden = !(this.recording && c.state === "live");
    const after = document.getElementById("after-end");
    if (after) {
      const wasHidden = after.hidden;
      after.hidden = !this.isOver(c.state);
      if (wasHidden && !after.hidden) refreshProcessing();
    }
    this.host.setState(c.state);
    this.tickElapsed();
    if (this.client) this.fitPanels();
  }

  renderTags(tags) {
    const list = document.getElementById("room-tags");
    if (!list) return;
    list.replaceChildren(
      ...tags.map((tag) => {
        return el("li", {}, el("span", { className: "tag" }, `#${tag}`));
      }),
    );
    list.hidden = tags.length === 0;
  }

  applySettings({ slow_mode_seconds, stage_locked }) {
    if (slow_mode_seconds !== undefined && slow_mode_seconds !== null) {
      this.settings.slow_mode_seconds = Number(slow_mode_seconds);
    }
    if (stage_locked !== undefined && stage_locked !== null) this.settings.stage_locked = Boolean(stage_locked);
    const slow = this.settings.slow_mode_seconds;
    const note = document.querySelector(".slow-mode-note");
    note.textContent = slow ? `Slow mode: one message every ${slow} s.` : "";
    note.hidden = !slow;
    this.stage.setLocked(this.settings.stage_locked);
    this.host.setSettings(this.settings);
  }

  tickElapsed() {
    const out = document.getElementById("room-elapsed");
    const c = this.conversation || {};
    if (c.state !== "live" || !c.started_at) {
      out.hidden = true;
      return;
    }
    const ms = Date.now() - new Date(c.started_at).getTime();
    out.hidden = false;
    out.textContent = `live for ${formatOffset(Math.max(0, ms))}`;
  }

  // ---- taking part as a guest -----------------------------------------------------------------

  setupJoin() {
    const form = document.getElementById("guest-form");
    if (!form) return;
    const input = form.querySelector("input[name=display_name]");
    const error = form.querySelector(".field-error");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      error.hidden = true;
      if (!name) {
        error.textContent = "Please type the name others will see.";
        error.hidden = false;
        input.focus();
        return;
      }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const response = await fetch("/api/guest", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
          credentials: "same-origin",
          body: JSON.stringify({ display_name: name }),
        });
        if (!response.ok) throw new Error(await errorMessage(response));
        const body = await response.json().catch(() => ({}));
        if (body.csrf_token) document.querySelector('meta[name="csrf-token"]').content = body.csrf_token;
        // The socket was opened anonymously: reconnect so the server sees the guest cookie.
        this.focusAfterJoin = true;
        this.client.reconnectNow();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }
}

const dataBlock = document.getElementById("room-data");
if (dataBlock) {
  window.junto = { room: new Room(JSON.parse(dataBlock.textContent)) };
}
