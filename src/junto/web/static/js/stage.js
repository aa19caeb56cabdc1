// The stage: who is on it (tiles; video arrives with the media layer), raised hands, and the
// viewer's own hand / leave-stage control. Roles and hands come from the durable room stream;
// presence only says who is here right now.

import { sentence } from "./composer.js";
import { ROLE_LABELS, isOnStage, paintPerson, personName } from "./person.js";
import { el, reconcile } from "./ui.js";

const ROLE_ORDER = { host: 0, cohost: 1, speaker: 2, audience: 3 };

/** Everyone the room knows about: role, hand and block from the room stream, "here" from presence. */
export class PeopleStore extends EventTarget {
  constructor() {
    super();
    this.people = new Map(); // user id → {person, role, hand_raised, hand_seq, blocked, here}
    this.handSeq = 0;
  }

  get(id) {
    let entry = this.people.get(id);
    if (!entry) {
      entry = { person: { id, name: "?", colour: "#55575d", is_guest: false }, role: "audience",
        hand_raised: false, hand_seq: 0, blocked: false, here: false };
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

  /** snapshot.stage.participants: [{user|person fields, role, hand_raised, blocked}] */
  applySnapshot(participants) {
    for (const entry of this.people.values()) {
      entry.role = "audience";
      entry.hand_raised = false;
      entry.blocked = false;
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

export class StageView {
  constructor(root, ctx, store) {
    this.root = root;
    this.ctx = ctx;
    this.store = store;
    this.tiles = root.querySelector(".stage-tiles");
    this.emptyStage = root.querySelector(".stage-empty");
    this.handsList = root.querySelector(".hands-list");
    this.handsCount = root.querySelector(".hands-count");
    this.handsEmpty = root.querySelector(".hands-empty");
    this.handButton = root.querySelector(".hand-button");
    this.leaveButton = root.querySelector(".leave-stage-button");
    this.myNote = root.querySelector(".my-stage-note");
    this.error = root.querySelector(".stage-error");
    this.lockBadge = root.querySelector(".stage-locked");
    this.locked = false;
    store.addEventListener("change", () => this.render());
    this.handButton.addEventListener("click", () => this.toggleHand());
    this.leaveButton.addEventListener("click", () =>
      this.act({ type: "stage.leave" }),
    );
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

  renderTiles() {
    const onStage = this.store.onStage();
    this.tiles.dataset.count = String(onStage.length);
    this.emptyStage.hidden = onStage.length > 0;
    const mod = this.ctx.canModerate();
    reconcile(this.tiles, onStage, {
      key: (e) => e.person.id,
      signature: (e) => JSON.stringify([e.person, e.role, e.here, mod]),
      render: (e) => this.tile(e),
      update: (li, e) => this.fillTile(li, e),
    });
  }

  tile(entry) {
    const li = el("li", { dataset: { user: String(entry.person.id) } });
    // Placeholder for the speaker's video (next issue): initials on their colour. It is kept
    // when the tile's label changes, so a <video> put here later keeps playing.
    li.append(el("div", { className: "tile-video", "aria-hidden": "true" },
      el("span", { className: "tile-initials" })));
    this.fillTile(li, entry);
    return li;
  }

  fillTile(li, entry) {
    const { person, role, here } = entry;
    const you = this.ctx.isMe(person.id);
    li.className = `tile role-${role}${here ? " here" : " away"}`;
    paintPerson(li, person.colour, "#1b1d23");
    li.querySelector(".tile-initials").textContent = initials(person.name);
    for (const old of li.querySelectorAll(":scope > :not(.tile-video)")) old.remove();
    const label = el("div", { className: "tile-label" },
      personName(person, { you, paint: false }),
      el("span", { className: "role-badge" }, ROLE_LABELS[role] || role),
      el("span", { className: "marker" }, here ? "here" : "away"));
    li.append(label);
    if (this.ctx.canModerate() && role !== "host" && !you) {
      li.append(this.ctx.actionButton("Send to audience", `Send ${person.name} back to the audience`,
        { type: "stage.remove", user_id: person.id }, (m) => this.showError(m)));
    }
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
    this.leaveButton.hidden = !identity || role !== "speaker" || over;
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
  }

  setLocked(locked) {
    this.locked = locked;
    this.lockBadge.hidden = !locked;
    this.renderMine();
  }
}
