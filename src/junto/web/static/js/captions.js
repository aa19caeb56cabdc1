// Live captions under the stage (docs/protocol.md, "Captions"): the last few things the speakers
// said, each with the speaker's name. Final captions come as `caption` room events (stored, in
// order, replayed on resume); while someone is still talking, `caption.partial` control frames
// preview their words in a lighter style until the final caption replaces them. A `caption` with
// `replaces` is a revision (the utterance heard whole after a pause or the length limit split
// it): its text takes the place of the first replaced line, the other replaced lines go, so a
// late joiner replaying the log reads what a live listener reads.
//
// Screen readers: the area is a polite log, so each final caption is read once; previews are
// hidden from assistive technology (they change every second or two and would be read over and
// over). The CC button is a toggle (aria-pressed), remembered in localStorage, on by default.

import { paintPerson } from "./person.js";
import { el } from "./ui.js";

const STORAGE_KEY = "junto.captions";
const MAX_LINES = 3;
// A preview with no final caption after this long was something Whisper thought better of.
const PARTIAL_TTL_MS = 15_000;
// Captions older than this leave the area, so a silent stage does not show stale words.
const FINAL_TTL_MS = 30_000;
const STAGE_BG = "#14161a";

export class CaptionsView {
  /**
   * @param {HTMLElement|null} area  the caption area (role="log"), absent when the node has
   *   captions off
   * @param {HTMLButtonElement|null} button  the CC toggle
   */
  constructor(area, button) {
    this.area = area;
    this.button = button;
    this.list = area?.querySelector(".caption-lines") ?? null;
    this.lines = []; // {key, id (the room event shown, finals only), user, text, partial, at}
    this.enabled = this.loadPreference();
    this.timer = null;
    if (this.button) {
      this.button.hidden = false;
      this.button.addEventListener("click", () => this.setEnabled(!this.enabled));
    }
    this.apply();
  }

  loadPreference() {
    try {
      return localStorage.getItem(STORAGE_KEY) !== "off";
    } catch {
      return true; // storage refused (private mode, a sandbox): captions stay on
    }
  }

  setEnabled(on) {
    this.enabled = on;
    try {
      localStorage.setItem(STORAGE_KEY, on ? "on" : "off");
    } catch {
      // Not remembered; the choice still holds for this page.
    }
    this.apply();
  }

  apply() {
    if (this.button) this.button.setAttribute("aria-pressed", String(this.enabled));
    if (this.area) this.area.hidden = !this.enabled;
    this.render();
  }

  /** A `caption` room event: a speaker's finished utterance. */
  onEvent(frame) {
    const data = frame.data || {};
    const user = data.user;
    if (!user || typeof data.text !== "string") return;
    if (Array.isArray(data.replaces) && data.replaces.length) {
      this.revise(frame.id, data.replaces, data.text);
      return;
    }
    // The final caption replaces that speaker's preview.
    this.lines = this.lines.filter((line) => !(line.partial && line.user.id === user.id));
    this.lines.push({ key: `c${frame.id}`, id: frame.id, user, text: data.text, partial: false, at: Date.now() });
    this.render();
  }

  /** A revision: `text` in place of the captions `replaces` (event ids), in the first one's line. */
  revise(id, replaces, text) {
    const replaced = new Set(replaces);
    const hit = this.lines.filter((line) => !line.partial && replaced.has(line.id));
    // None shown any more (expired from the area): nothing on screen to correct.
    if (!hit.length) return;
    const [first, ...rest] = hit;
    // The line keeps its node (its text updated in place, not announced again) and stands for
    // the revision from now on, which a later revision may replace in turn.
    first.text = text;
    first.id = id;
    first.at = Date.now();
    this.lines = this.lines.filter((line) => !rest.includes(line));
    this.render();
  }

  /** A `caption.partial` control frame: what a speaker is saying right now, so far. */
  onPartial(frame) {
    const user = frame.user;
    if (!user || typeof frame.text !== "string") return;
    const line = this.lines.find((l) => l.partial && l.user.id === user.id);
    if (line) {
      line.text = frame.text;
      line.at = Date.now();
    } else {
      this.lines.push({ key: `p${user.id}-${Date.now()}`, user, text: frame.text, partial: true, at: Date.now() });
    }
    this.render();
  }

  /** The conversation ended: previews will never be finished. */
  clearPartials() {
    this.lines = this.lines.filter((line) => !line.partial);
    this.render();
  }

  expire() {
    const now = Date.now();
    const before = this.lines.length;
    this.lines = this.lines.filter((line) => now - line.at < (line.partial ? PARTIAL_TTL_MS : FINAL_TTL_MS));
    if (this.lines.length !== before) this.render();
  }

  render() {
    this.lines = this.lines.slice(-MAX_LINES);
    clearTimeout(this.timer);
    if (this.lines.length) this.timer = setTimeout(() => this.expire(), 1000);
    if (!this.list || !this.enabled) return;
    this.area.classList.toggle("empty", this.lines.length === 0);
    const wanted = new Map(this.lines.map((line) => [line.key, line]));
    for (const node of [...this.list.children]) {
      if (!wanted.has(node.dataset.key)) node.remove();
    }
    // Nodes are only appended or updated in place: a live region announces what is added.
    for (const line of this.lines) {
      let node = this.list.querySelector(`[data-key="${line.key}"]`);
      if (!node) {
        node = this.renderLine(line);
        this.list.append(node);
      } else {
        node.querySelector(".caption-text").textContent = line.text;
      }
    }
  }

  renderLine(line) {
    const speaker = el("span", { className: "caption-speaker" }, line.user.name || "?");
    const node = el("li", { className: line.partial ? "caption-line partial" : "caption-line" },
      speaker, " ", el("span", { className: "caption-text" }, line.text));
    node.dataset.key = line.key;
    paintPerson(node, line.user.colour, STAGE_BG);
    if (line.partial) node.setAttribute("aria-hidden", "true");
    return node;
  }
}
