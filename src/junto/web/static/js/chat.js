// The text box: everyone's messages, each person in their own colour; edit and delete your own,
// hosts and co-hosts delete any.

import { Composer, sentence } from "./composer.js";
import { personName, paintPerson } from "./person.js";
import { appendRichText, formatClock } from "./richtext.js";
import { confirmButton, el } from "./ui.js";

// Enough history to scroll back through; older nodes are dropped so a long conversation does
// not grow the page without bound (the snapshot carries the last 200 anyway).
const MAX_MESSAGES = 500;

export class ChatView {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.list = root.querySelector(".chat-list");
    this.empty = root.querySelector(".chat-empty");
    this.jump = root.querySelector(".jump-latest");
    this.messages = new Map(); // id → {message, li}
    this.composer = new Composer(root.querySelector(".chat-composer"), {
      maxChars: ctx.limits.chat,
      onSubmit: (body) => ctx.send({ type: "chat.send", body }),
    });
    this.stuck = true; // following the newest message
    this.list.addEventListener("scroll", () => {
      this.stuck = this.atBottom();
      if (this.stuck) this.jump.hidden = true;
    });
    // The list changes size when the window or the notes under it do: keep following.
    new ResizeObserver(() => {
      if (this.stuck) this.list.scrollTop = this.list.scrollHeight;
    }).observe(this.list);
    this.jump.addEventListener("click", () => this.scrollToBottom());
  }

  atBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
  }

  scrollToBottom() {
    this.list.scrollTop = this.list.scrollHeight;
    this.stuck = true;
    this.jump.hidden = true;
  }

  reset(messages) {
    this.messages.clear();
    this.list.replaceChildren();
    for (const message of messages) this.insert(message);
    this.updateEmpty();
    this.scrollToBottom();
  }

  onEvent(frame) {
    const data = frame.data || {};
    if (frame.type === "chat.message") this.add(data.message);
    else if (frame.type === "chat.edited") this.edited(data);
    else if (frame.type === "chat.deleted") this.remove(data.message_id);
  }

  add(message) {
    if (!message || this.messages.has(message.id)) return;
    const stick = this.stuck || this.atBottom();
    this.insert(message);
    this.updateEmpty();
    const mine = this.ctx.isMe(message.author?.id);
    if (stick || mine) this.scrollToBottom();
    else this.jump.hidden = false;
    if (!mine) this.ctx.notify("chat");
  }

  insert(message) {
    if (message.deleted_at) return;
    const li = this.render(message);
    this.messages.set(message.id, { message, li });
    this.list.append(li);
    while (this.messages.size > MAX_MESSAGES) {
      const [oldest] = this.messages.keys();
      this.messages.get(oldest).li.remove();
      this.messages.delete(oldest);
    }
  }

  edited({ message_id, body, edited_at }) {
    const entry = this.messages.get(message_id);
    if (!entry) return;
    entry.message = { ...entry.message, body, edited_at };
    const fresh = this.render(entry.message);
    entry.li.replaceWith(fresh);
    entry.li = fresh;
  }

  remove(messageId) {
    const entry = this.messages.get(messageId);
    if (!entry) return;
    // Keep keyboard focus somewhere sensible if it was inside the removed message.
    const hadFocus = entry.li.contains(document.activeElement);
    entry.li.remove();
    this.messages.delete(messageId);
    this.updateEmpty();
    if (hadFocus) this.composer.input.focus();
  }

  updateEmpty() {
    this.empty.hidden = this.messages.size > 0;
  }

  /** Own messages get Edit/Delete; moderators get Delete on everyone's. */
  refreshPermissions() {
    for (const entry of this.messages.values()) {
      const fresh = this.render(entry.message);
      entry.li.replaceWith(fresh);
      entry.li = fresh;
    }
  }

  render(message) {
    const author = message.author || { name: "?", colour: "#55575d" };
    const mine = this.ctx.isMe(author.id);
    const li = el("li", {
      className: mine ? "msg mine" : "msg",
      dataset: { id: String(message.id), author: String(author.id) },
    });
    paintPerson(li, author.colour, "#ffffff", 0.08);
    const time = el("time", { datetime: message.created_at }, formatClock(message.created_at));
    const head = el("div", { className: "msg-head" }, personName(author, { you: mine, paint: false }), " ", time);
    if (message.edited_at) head.append(" ", el("span", { className: "edited" }, "(edited)"));
    const body = el("p", { className: "msg-body" });
    appendRichText(body, message.body || "", { myName: this.ctx.me.name });
    li.append(head, body);
    const actions = this.actions(message, mine);
    if (actions) li.append(actions);
    return li;
  }

  actions(message, mine) {
    const canDelete = mine || this.ctx.canModerate();
    if (!canDelete) return null;
    const who = mine ? "your message" : `message by ${message.author?.name ?? "someone"}`;
    const box = el("div", { className: "msg-actions" });
    if (mine && !this.ctx.isOver()) {
      box.append(
        el(
          "button",
          {
            type: "button",
            className: "link-button",
            "aria-label": `Edit ${who}`,
            onclick: () => this.startEdit(message.id),
          },
          "Edit",
        ),
      );
    }
    box.append(
      confirmButton("Delete", "Really delete?", `Delete ${who}`, () =>
        this.ctx
          .send({ type: "chat.delete", message_id: message.id })
          .catch((err) => this.composer.showFailure(err)),
      ),
    );
    return box;
  }

  startEdit(messageId) {
    const entry = this.messages.get(messageId);
    if (!entry) return;
    const { li, message } = entry;
    const body = li.querySelector(".msg-body");
    const form = el("form", { className: "msg-edit" });
    const id = `edit-${messageId}`;
    const input = el("textarea", { id, rows: "2", maxlength: String(this.ctx.limits.chat) });
    input.value = message.body;
    const error = el("p", { className: "field-error", hidden: true, "aria-live": "polite" });
    const cancel = () => {
      form.replaceWith(body);
      li.querySelector(".msg-actions button")?.focus();
    };
    const save = async () => {
      const text = input.value.trim();
      if (!text || text === message.body) return cancel();
      try {
        await this.ctx.send({ type: "chat.edit", message_id: messageId, body: text });
        // The chat.edited event re-renders the message; until then show the new text.
        if (form.isConnected) cancel();
      } catch (err) {
        error.textContent = sentence(err.message);
        error.hidden = false;
      }
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        save();
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        cancel();
      }
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      save();
    });
    form.append(
      el("label", { for: id, className: "visually-hidden" }, "New text of your message"),
      input,
      el(
        "div",
        { className: "msg-edit-buttons" },
        el("button", { type: "submit", className: "small" }, "Save"),
        el("button", { type: "button", className: "small secondary", onclick: cancel }, "Cancel"),
      ),
      error,
    );
    body.replaceWith(form);
    input.focus();
  }
}
