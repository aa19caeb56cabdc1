// The transcript page: a segment's time seeks the player; hosts correct segments in place.
//
// The page is complete without this script (server-rendered segments, time links that open the
// recording at that moment). Corrections go to PATCH /api/conversations/{slug}/transcript/
// segments/{seq} with the CSRF header; every piece of text is set with textContent.

import { csrfToken, el } from "./ui.js";

const data = JSON.parse(document.getElementById("transcript-data")?.textContent || "{}");
const player = document.getElementById("transcript-player");
const announcer = document.getElementById("transcript-announcer");
const template = document.getElementById("segment-editor-template");

function announce(text) {
  if (!announcer) return;
  announcer.textContent = "";
  // A fresh text node after a tick, so screen readers announce a repeat of the same words.
  setTimeout(() => (announcer.textContent = text), 50);
}

// ---- seeking -------------------------------------------------------------------------------

function seek(seconds) {
  if (!player || !Number.isFinite(seconds)) return false;
  player.currentTime = seconds;
  const playing = player.play();
  if (playing && playing.catch) playing.catch(() => {}); // autoplay refused: the seek stands
  player.focus({ preventScroll: true });
  // On a phone the player sits above the transcript: bring it into view to show what plays.
  const box = player.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) player.scrollIntoView({ block: "nearest" });
  return true;
}

document.getElementById("segments")?.addEventListener("click", (event) => {
  const link = event.target.closest(".segment-time");
  if (!link || !player) return;
  if (seek(Number(link.dataset.seek))) event.preventDefault();
});

// ---- corrections (hosts) -------------------------------------------------------------------

function speakerOptions(select, currentId) {
  select.replaceChildren();
  const known = new Set();
  for (const person of data.speakers || []) {
    known.add(String(person.id));
    select.append(el("option", { value: String(person.id) }, person.name));
  }
  if (currentId && !known.has(String(currentId))) {
    // The segment's speaker is no longer a participant: keep them choosable as they are.
    const name = document.querySelector(`[data-speaker-id="${CSS.escape(String(currentId))}"]`);
    select.prepend(el("option", { value: String(currentId) }, name?.textContent || "Current speaker"));
  }
  if (currentId) select.value = String(currentId);
}

function errorText(status, body) {
  if (status === 401) return "Your session has ended: sign in again to save corrections.";
  if (status === 403) return body?.message || "Only hosts and co-hosts can correct the transcript.";
  if (Array.isArray(body?.detail)) return body.detail.map((d) => d.msg).join(" ");
  return body?.message || `Could not save (error ${status}).`;
}

function closeEditor(item, { restoreFocus = true } = {}) {
  item.querySelector(".segment-editor")?.remove();
  item.querySelector(".segment-text").hidden = false;
  item.querySelector(".segment-tools").hidden = false;
  item.classList.remove("editing");
  if (restoreFocus) item.querySelector(".edit-button")?.focus();
}

function renderSegment(item, segment) {
  item.querySelector(".segment-text").textContent = segment.text;
  const speaker = item.querySelector(".segment-speaker");
  speaker.textContent = segment.speaker ? segment.speaker.name : "Unknown speaker";
  speaker.dataset.speakerId = segment.speaker ? String(segment.speaker.id) : "";
  item.querySelector(".edited-mark").hidden = !segment.edited;
  // The Edit link's description names the speaker too.
  const label = document.getElementById(`seg-${segment.seq}-label`);
  if (label) {
    const time = item.querySelector(".segment-time").lastChild.textContent.trim();
    label.textContent = `segment at ${time} by ${speaker.textContent}`;
  }
}

function historyEntry(edit) {
  const when = edit.at ? new Date(edit.at) : null;
  const time = el("time", { datetime: edit.at || "" }, when ? when.toLocaleString() : "");
  return el(
    "li",
    {},
    el("span", { className: "history-who" }, edit.editor ? edit.editor.name : "Someone"),
    " ",
    time,
    " ",
    el("span", { className: "history-field" },
      edit.field === "speaker" ? "changed the speaker:" : "corrected the text:"),
    " ",
    el("span", { className: "history-change" }, el("del", {}, edit.before), " → ", el("ins", {}, edit.after)),
  );
}

async function refreshHistory(item) {
  const seq = item.dataset.seq;
  const response = await fetch(`${data.api}/history?seq=${encodeURIComponent(seq)}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) return;
  const body = await response.json();
  const details = item.querySelector(".segment-history");
  const list = details.querySelector(".history-list");
  list.replaceChildren(...body.edits.map(historyEntry));
  details.hidden = body.edits.length === 0;
}

async function save(item, form) {
  const error = form.querySelector(".editor-error");
  const text = form.querySelector(".editor-text").value;
  const speakerId = form.querySelector(".editor-speaker").value;
  const body = {};
  const oldText = item.querySelector(".segment-text").textContent;
  const oldSpeaker = item.querySelector(".segment-speaker").dataset.speakerId;
  if (text.trim() !== oldText.trim()) body.text = text;
  if (speakerId && speakerId !== oldSpeaker) body.speaker_id = Number(speakerId);
  if (Object.keys(body).length === 0) {
    closeEditor(item);
    announce("Nothing changed.");
    return;
  }
  if (body.text !== undefined && !body.text.trim()) {
    error.textContent = "The text must not be empty.";
    error.hidden = false;
    form.querySelector(".editor-text").focus();
    return;
  }
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  error.hidden = true;
  try {
    const response = await fetch(`${data.api}/segments/${encodeURIComponent(item.dataset.seq)}`, {
      method: "PATCH",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken(), Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      error.textContent = errorText(response.status, answer);
      error.hidden = false;
      form.querySelector(".editor-text").focus();
      return;
    }
    renderSegment(item, answer);
    closeEditor(item);
    announce("Correction saved.");
    await refreshHistory(item);
  } catch {
    error.textContent = "Could not reach the server; your correction is still here, try again.";
    error.hidden = false;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function openEditor(item) {
  if (!template || item.classList.contains("editing")) return;
  // One editor at a time keeps keyboard focus and Escape unambiguous.
  document.querySelectorAll(".segment.editing").forEach((other) => closeEditor(other, { restoreFocus: false }));
  const form = template.content.firstElementChild.cloneNode(true);
  const seq = item.dataset.seq;
  const textarea = form.querySelector(".editor-text");
  const select = form.querySelector(".editor-speaker");
  textarea.id = `edit-text-${seq}`;
  select.id = `edit-speaker-${seq}`;
  form.querySelector(".editor-text-label").htmlFor = textarea.id;
  form.querySelector(".editor-speaker-label").htmlFor = select.id;
  form.setAttribute("aria-label", `Correct the segment at ${item.querySelector(".segment-time").textContent.trim()}`);
  textarea.value = item.querySelector(".segment-text").textContent;
  speakerOptions(select, item.querySelector(".segment-speaker").dataset.speakerId);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save(item, form);
  });
  form.querySelector(".editor-cancel").addEventListener("click", () => closeEditor(item));
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeEditor(item);
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      save(item, form);
    }
  });
  item.classList.add("editing");
  item.querySelector(".segment-text").hidden = true;
  item.querySelector(".segment-tools").hidden = true;
  item.querySelector(".segment-text").after(form);
  textarea.focus();
  textarea.setSelectionRange(textarea.value.length, textarea.value.length);
}

if (data.can_manage) {
  document.getElementById("segments")?.addEventListener("click", (event) => {
    // Without this script the link opens the same form on a page of its own.
    const link = event.target.closest(".edit-button");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    openEditor(link.closest(".segment"));
  });
}
