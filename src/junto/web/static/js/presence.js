// Presence: how many are here, who (named people), how many guests and anonymous watchers,
// how many on stage and with a hand up. Hosts get per-person actions here.

import { sentence } from "./composer.js";
import { ROLE_LABELS, isOnStage, personName } from "./person.js";
import { el, reconcile } from "./ui.js";

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

export class PresenceView {
  constructor(root, ctx, store) {
    this.root = root;
    this.ctx = ctx;
    this.store = store;
    this.summary = root.querySelector(".presence-summary");
    this.list = root.querySelector(".people-list");
    this.error = root.querySelector(".people-error");
    this.headCount = document.querySelector(".present-count");
    this.data = { present: 0, members: [], guests: 0, watchers: 0, on_stage: 0, hands: 0 };
    store.addEventListener("change", () => this.renderList());
  }

  onPresence(frame) {
    this.data = { ...this.data, ...(frame.data || {}) };
    this.store.applyPresence(this.data.members);
    this.renderSummary();
  }

  renderSummary() {
    const d = this.data;
    this.summary.replaceChildren(
      ...[
        ["present", plural(d.present, "person here", "people here")],
        ["guests", plural(d.guests, "guest", "guests")],
        ["watchers", plural(d.watchers, "watcher", "watchers")],
        ["on-stage", `${d.on_stage} on stage`],
        ["hands", plural(d.hands, "hand raised", "hands raised")],
      ].map(([key, text]) => el("li", { dataset: { count: key } }, text)),
    );
    if (this.headCount) this.headCount.textContent = plural(d.present, "person here", "people here");
  }

  renderList() {
    // Named people who are here, in role order: hosts first, then speakers, then audience.
    const order = { host: 0, cohost: 1, speaker: 2, audience: 3 };
    const here = [...this.store.people.values()]
      .filter((e) => e.here)
      .sort((a, b) => order[a.role] - order[b.role] || a.person.name.localeCompare(b.person.name));
    const viewer = JSON.stringify([this.ctx.me.user_id, this.ctx.me.role, this.ctx.canModerate()]);
    reconcile(this.list, here, {
      key: (e) => e.person.id,
      signature: (e) => JSON.stringify([e.person, e.role, e.hand_raised, e.blocked]) + viewer,
      render: (e) => this.row(e),
    });
  }

  row(entry) {
    const { person, role, hand_raised, blocked } = entry;
    const you = this.ctx.isMe(person.id);
    const li = el("li", { className: "person-row", dataset: { user: String(person.id), role } },
      personName(person, { you }));
    if (role !== "audience") li.append(" ", el("span", { className: "role-badge" }, ROLE_LABELS[role]));
    if (hand_raised) {
      li.append(" ", el("span", { className: "hand-marker", role: "img", "aria-label": "hand raised" }, "✋"));
    }
    if (blocked) li.append(" ", el("span", { className: "blocked-badge" }, "blocked"));
    if (this.ctx.canModerate() && !you && role !== "host") {
      const actions = el("div", { className: "row-actions" });
      const say = (m) => this.showError(m);
      if (!isOnStage(role) && !blocked) {
        actions.append(this.ctx.actionButton("Bring on stage", `Bring ${person.name} on stage`,
          { type: "stage.invite", user_id: person.id }, say));
      } else if (role === "speaker") {
        actions.append(this.ctx.actionButton("Send to audience", `Send to audience: ${person.name}`,
          { type: "stage.remove", user_id: person.id }, say));
      }
      if (this.ctx.me.role === "host" && !blocked) {
        // Only hosts hand out the co-host role (docs/protocol.md, role.set).
        actions.append(role === "cohost"
          ? this.ctx.actionButton("Make speaker", `Make speaker: ${person.name} (instead of co-host)`,
            { type: "role.set", user_id: person.id, role: "speaker" }, say)
          : this.ctx.actionButton("Make co-host", `Make co-host: ${person.name}`,
            { type: "role.set", user_id: person.id, role: "cohost" }, say));
      }
      actions.append(blocked
        ? this.ctx.actionButton("Unblock", `Unblock ${person.name}`,
          { type: "participant.unblock", user_id: person.id }, say)
        : this.ctx.actionButton("Block", `Block ${person.name}`,
          { type: "participant.block", user_id: person.id }, say, { danger: true }));
      li.append(actions);
    }
    return li;
  }

  showError(message) {
    this.error.textContent = sentence(message);
    this.error.hidden = !message;
  }
}
