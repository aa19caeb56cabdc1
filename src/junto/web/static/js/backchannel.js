// The backchannel: short public posts beside the conversation, newest first, each marked with
// the time since the start ("12:34") and a small icon language of reactions.

import { Composer } from "./composer.js";
import { paintPerson, personName } from "./person.js";
import { appendRichText, describeOffset, formatClock, formatOffset } from "./richtext.js";
import { confirmButton, el } from "./ui.js";

// docs/protocol.md, "Reactions": feelings about ideas, in this order.
export const REACTIONS = [
  { kind: "insight", icon: "💡", label: "Insight" },
  { kind: "agree", icon: "👍", label: "Agree" },
  { kind: "love", icon: "❤️", label: "Love" },
  { kind: "curious", icon: "🤔", label: "Curious" },
  { kind: "question", icon: "❓", label: "Question" },
  { kind: "disagree", icon: "👎", label: "Disagree" },
];

const MAX_POSTS = 500;

function isoDuration(ms) {
  const total = Math.floor(ms / 1000);
  return `PT${Math.floor(total / 3600)}H${Math.floor((total % 3600) / 60)}M${total % 60}S`;
}

export class BackchannelView {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.list = root.querySelector(".bc-list");
    this.empty = root.querySelector(".bc-empty");
    this.filterBar = root.querySelector(".bc-filter");
    this.filter = null;
    this.posts = new Map(); // id → {post, li}
    this.mine = new Set(); // "postId:kind" this person has reacted with
    this.composer = new Composer(root.querySelector(".bc-composer"), {
      maxChars: ctx.limits.backchannel,
      onSubmit: (body) => ctx.send({ type: "backchannel.post", body }),
    });
    this.list.addEventListener("click", (ev) => this.onHashtagClick(ev));
    this.filterBar.querySelector("button").addEventListener("click", () => this.setFilter(null));
    const initial = new URLSearchParams(location.search).get("tag");
    if (initial) this.setFilter(initial.toLowerCase());
  }

  /** A click on a #hashtag (here or in the chat) filters the backchannel in place. */
  onHashtagClick(ev) {
    const link = ev.target.closest?.("a.hashtag");
    if (!link || ev.ctrlKey || ev.metaKey || ev.shiftKey) return false;
    ev.preventDefault();
    this.setFilter(link.textContent.slice(1).toLowerCase());
    return true;
  }

  reset(posts) {
    this.posts.clear();
    this.mine.clear(); // the snapshot's `mine` lists are the truth now
    this.list.replaceChildren();
    for (const post of posts) this.insert(post);
    this.updateEmpty();
  }

  onEvent(frame) {
    const data = frame.data || {};
    if (frame.type === "backchannel.post") {
      if (!data.post || this.posts.has(data.post.id)) return;
      this.insert(data.post);
      this.updateEmpty();
      if (!this.ctx.isMe(data.post.author?.id)) this.ctx.notify("backchannel");
    } else if (frame.type === "backchannel.deleted") {
      this.remove(data.post_id);
    } else if (frame.type === "backchannel.reactions") {
      this.updateReactions(data.post_id, data.reactions || {});
    }
  }

  insert(post) {
    if (post.deleted_at) return;
    // Snapshots say which reactions are this viewer's (`mine`), so toggles start in the right state.
    for (const kind of post.mine || []) this.mine.add(`${post.id}:${kind}`);
    const li = this.render(post);
    this.posts.set(post.id, { post, li });
    this.list.prepend(li);
    while (this.posts.size > MAX_POSTS) {
      const [oldest] = this.posts.keys();
      this.posts.get(oldest).li.remove();
      this.posts.delete(oldest);
    }
  }

  remove(postId) {
    const entry = this.posts.get(postId);
    if (!entry) return;
    const hadFocus = entry.li.contains(document.activeElement);
    entry.li.remove();
    this.posts.delete(postId);
    this.updateEmpty();
    if (hadFocus) this.composer.input.focus();
  }

  updateReactions(postId, reactions) {
    const entry = this.posts.get(postId);
    if (!entry) return;
    entry.post = { ...entry.post, reactions };
    for (const button of entry.li.querySelectorAll(".reaction")) this.paintReaction(button, entry.post);
  }

  refreshPermissions() {
    for (const entry of this.posts.values()) {
      const fresh = this.render(entry.post);
      entry.li.replaceWith(fresh);
      entry.li = fresh;
    }
  }

  setFilter(tag) {
    this.filter = tag;
    // Keep the address shareable: /c/slug?tag=x opens the backchannel filtered the same way.
    const url = new URL(location.href);
    if (tag) url.searchParams.set("tag", tag);
    else url.searchParams.delete("tag");
    history.replaceState(history.state, "", url);
    this.filterBar.hidden = !tag;
    this.filterBar.querySelector(".bc-filter-tag").textContent = tag ? `#${tag}` : "";
    for (const { post, li } of this.posts.values()) li.hidden = !this.matches(post);
    this.updateEmpty();
  }

  matches(post) {
    return !this.filter || (post.hashtags || []).map((t) => t.toLowerCase()).includes(this.filter);
  }

  updateEmpty() {
    const visible = [...this.posts.values()].some(({ post }) => this.matches(post));
    this.empty.hidden = visible;
  }

  render(post) {
    const author = post.author || { name: "?", colour: "#55575d" };
    const mine = this.ctx.isMe(author.id);
    const li = el("li", { className: mine ? "post mine" : "post", dataset: { id: String(post.id) } });
    li.hidden = !this.matches(post);
    paintPerson(li, author.colour, "#ffffff", 0.06);
    const when =
      post.offset_ms === null || post.offset_ms === undefined
        ? el("time", { datetime: post.created_at, className: "offset pre" }, formatClock(post.created_at))
        : el(
            "time",
            {
              datetime: isoDuration(post.offset_ms),
              className: "offset",
              title: describeOffset(post.offset_ms),
            },
            formatOffset(post.offset_ms),
          );
    const head = el("div", { className: "post-head" }, personName(author, { you: mine, paint: false }), " ", when);
    const body = el("p", { className: "post-body" });
    appendRichText(body, post.body || "", { myName: this.ctx.me.name });
    const footer = el("div", { className: "post-foot" }, this.reactionBar(post));
    if (mine || this.ctx.canModerate()) {
      const who = mine ? "your post" : `post by ${author.name}`;
      footer.append(
        confirmButton("Delete", "Really delete?", `Delete ${who}`, () =>
          this.ctx
            .send({ type: "backchannel.delete", post_id: post.id })
            .catch((err) => this.composer.showFailure(err)),
        ),
      );
    }
    li.append(head, body, footer);
    return li;
  }

  reactionBar(post) {
    const bar = el("div", {
      className: "reactions",
      role: "group",
      "aria-label": `Reactions to the post by ${post.author?.name ?? "someone"}`,
    });
    for (const { kind, icon } of REACTIONS) {
      const button = el(
        "button",
        { type: "button", className: "reaction", dataset: { kind } },
        el("span", { className: "reaction-icon", "aria-hidden": "true" }, icon),
        el("span", { className: "count" }),
      );
      button.addEventListener("click", () => this.toggle(post.id, kind, button));
      this.paintReaction(button, post);
      bar.append(button);
    }
    return bar;
  }

  paintReaction(button, post) {
    const { kind } = button.dataset;
    const { label } = REACTIONS.find((r) => r.kind === kind);
    const count = Number((post.reactions || {})[kind] || 0);
    const pressed = this.mine.has(`${post.id}:${kind}`);
    button.querySelector(".count").textContent = count ? String(count) : "";
    button.setAttribute("aria-pressed", String(pressed));
    // The accessible name carries the count, since the visible digits sit beside an icon.
    button.setAttribute("aria-label", `${label}: ${count}`);
    button.title = label;
    button.disabled = !this.ctx.canPost();
  }

  async toggle(postId, kind, button) {
    const key = `${postId}:${kind}`;
    const on = !this.mine.has(key);
    try {
      await this.ctx.send({ type: "backchannel.react", post_id: postId, kind, on });
      if (on) this.mine.add(key);
      else this.mine.delete(key);
      const entry = this.posts.get(postId);
      if (entry && button.isConnected) this.paintReaction(button, entry.post);
    } catch (err) {
      this.composer.showFailure(err);
    }
  }
}
