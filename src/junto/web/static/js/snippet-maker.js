// Snippets: making one from the conversation page, and the copy/delete buttons of a snippet's
// page (junto.web.snippet_pages). All text goes in as Text nodes or .value, never as HTML.
//
// On the conversation page (DOM contract: #player, #transcript > p.seg > span.w[data-start]
// [data-end], mount #snippet-maker): selecting words in the transcript, with the mouse or the
// keyboard (shift+arrows), shows a bar "Create snippet (0:12–0:31)" with an optional title; the
// bar also offers "Clip from current time": set the start and end from the player's position.
// Creating posts to /api/conversations/{slug}/snippets and shows the link and the embed code.

import { csrfToken, el } from "./ui.js";

const MAX_MS = 10 * 60 * 1000;

export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** The words (span.w) a DOM selection touches inside #transcript, or []. */
function selectedWords(transcript) {
  const sel = window.getSelection();
  if (!sel || sel.isCollapsed || sel.rangeCount === 0) return [];
  const range = sel.getRangeAt(0);
  if (!transcript.contains(range.commonAncestorContainer)) return [];
  return [...transcript.querySelectorAll("span.w")].filter((w) => range.intersectsNode(w));
}

function mountMaker(mount) {
  const transcript = document.getElementById("transcript");
  const player = document.getElementById("player");
  const slug = transcript?.dataset.slug || mount.dataset.slug;
  if (!slug || mount.dataset.canCreate === "false") return;
  // Only members may make snippets: the page shows a sign-out form to signed-in members.
  if (mount.dataset.canCreate !== "true" && !document.querySelector('form[action="/signout"]')) {
    return;
  }
  let range = null; // {start, end} in ms
  const status = el("p", { className: "snippet-status", role: "status", "aria-live": "polite" });
  const label = el("span", { className: "snippet-range" });
  const title = el("input", {
    type: "text", id: "snippet-title", maxlength: "200", placeholder: "Title (optional)",
    autocomplete: "off",
  });
  const create = el("button", { type: "submit", className: "button" }, "Create snippet");
  const cancel = el("button", { type: "button", className: "secondary small" }, "Cancel");
  const form = el("form", { className: "snippet-bar", hidden: true, "aria-label": "New snippet" },
    label, el("label", { for: "snippet-title", className: "visually-hidden" }, "Snippet title"),
    title, create, cancel);
  const markStart = el("button", { type: "button", className: "secondary small" }, "Start here");
  const markEnd = el("button", { type: "button", className: "secondary small" }, "End here");
  const timeline = el("div", { className: "snippet-timeline" },
    el("span", { className: "muted" }, "Clip from current time:"), markStart, markEnd);
  const result = el("div", { className: "snippet-result", hidden: true });
  mount.replaceChildren(timeline, form, status, result);
  if (!player) timeline.hidden = true;

  function show(start, end) {
    if (!(end > start)) return;
    range = { start, end };
    label.textContent = `Create snippet (${clock(start)}–${clock(end)})`;
    create.textContent = "Create snippet";
    const tooLong = end - start > MAX_MS;
    create.disabled = tooLong;
    status.textContent = tooLong ? "A snippet can be at most 10 minutes long." : "";
    form.hidden = false;
  }
  function hide() {
    form.hidden = true;
    range = null;
  }

  document.addEventListener("selectionchange", () => {
    if (!transcript) return;
    const words = selectedWords(transcript);
    if (words.length === 0) return; // keep the bar while someone types the title
    const start = Number(words[0].dataset.start);
    const end = Number(words[words.length - 1].dataset.end);
    if (Number.isFinite(start) && Number.isFinite(end)) show(start, end);
  });

  let marked = null;
  markStart.addEventListener("click", () => {
    marked = Math.round(player.currentTime * 1000);
    status.textContent = `Start set at ${clock(marked)}; play on and press "End here".`;
  });
  markEnd.addEventListener("click", () => {
    const now = Math.round(player.currentTime * 1000);
    if (marked === null || now <= marked) {
      status.textContent = 'Press "Start here" first, at an earlier time.';
      return;
    }
    show(marked, now);
    title.focus();
  });
  cancel.addEventListener("click", () => { hide(); status.textContent = ""; });
  form.addEventListener("keydown", (e) => { if (e.key === "Escape") { hide(); } });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!range) return;
    create.disabled = true;
    status.textContent = "Making the snippet…";
    const body = { start_ms: range.start, end_ms: range.end };
    if (title.value.trim()) body.title = title.value.trim();
    try {
      const answer = await fetch(`/api/conversations/${encodeURIComponent(slug)}/snippets`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken(), "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const data = await answer.json().catch(() => ({}));
      if (!answer.ok) {
        status.textContent = `Could not make the snippet: ${errorText(data, answer.status)}`;
        return;
      }
      hide();
      title.value = "";
      status.textContent = "Snippet ready.";
      showResult(result, data);
    } catch {
      status.textContent = "Could not reach the server; try again.";
    } finally {
      create.disabled = false;
    }
  });
}

function errorText(data, code) {
  if (Array.isArray(data?.detail)) return data.detail.map((d) => d.msg).join("; ");
  return data?.message || `error ${code}`;
}

function showResult(box, snippet) {
  const link = el("input", { type: "text", readonly: true, id: "snippet-new-link" });
  link.value = snippet.url;
  const code = el("textarea", { readonly: true, rows: "3", id: "snippet-new-embed" });
  code.value = snippet.embed_html;
  box.replaceChildren(
    el("p", {}, el("a", { href: snippet.url }, snippet.title)),
    el("label", { for: "snippet-new-link" }, "Link"),
    el("div", { className: "copy-row" }, link, copyButton(link, "Copy link")),
    el("label", { for: "snippet-new-embed" }, "Embed code"),
    el("div", { className: "copy-row" }, code, copyButton(code, "Copy embed code")),
  );
  box.hidden = false;
}

function copyButton(field, text) {
  const button = el("button", { type: "button", className: "button" }, text);
  button.addEventListener("click", () => copy(field, button));
  return button;
}

async function copy(field, button) {
  const say = document.querySelector(".copy-status") || null;
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {
    field.select(); // no clipboard permission: leave it selected for ctrl+c
  }
  const done = "Copied.";
  if (say) say.textContent = done;
  const before = button.textContent;
  button.textContent = done;
  setTimeout(() => { button.textContent = before; }, 1500);
}

// ---- a snippet's page ---------------------------------------------------------------------------

function wireSnippetPage() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const field = document.getElementById(button.dataset.copy);
    if (field) button.addEventListener("click", () => copy(field, button));
  }
  const del = document.querySelector("button[data-delete-snippet]");
  if (!del) return;
  let armed = false;
  del.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      del.textContent = "Really delete? Press again";
      setTimeout(() => { armed = false; del.textContent = "Delete this snippet"; }, 4000);
      return;
    }
    const answer = await fetch(`/api/snippets/${encodeURIComponent(del.dataset.deleteSnippet)}`, {
      method: "DELETE",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken() },
    });
    if (answer.ok) {
      window.location.assign(document.querySelector(".snippet-from a")?.href || "/");
    } else {
      const data = await answer.json().catch(() => ({}));
      del.textContent = `Not deleted: ${errorText(data, answer.status)}`;
    }
  });
}

const mount = document.getElementById("snippet-maker");
if (mount) mountMaker(mount);
wireSnippetPage();
