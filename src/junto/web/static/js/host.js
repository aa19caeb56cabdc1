// Host controls: start and end the conversation (JSON API), slow mode and stage lock (realtime).

import { sentence } from "./composer.js";
import { csrfToken } from "./ui.js";

export class HostControls {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.startButton = root.querySelector(".start-button");
    this.endButton = root.querySelector(".end-button");
    this.slowMode = root.querySelector(".slow-mode-select");
    this.lock = root.querySelector(".stage-lock-input");
    this.error = root.querySelector(".host-error");
    this.startButton.addEventListener("click", () => this.transition("start"));
    this.endButton.addEventListener("click", () => this.transition("end"));
    this.slowMode.addEventListener("change", () =>
      this.settings({ slow_mode_seconds: Number(this.slowMode.value) }),
    );
    this.lock.addEventListener("change", () => this.settings({ stage_locked: this.lock.checked }));
  }

  show(visible) {
    this.root.hidden = !visible;
  }

  showError(message) {
    this.error.textContent = sentence(message);
    this.error.hidden = !message;
  }

  setState(state) {
    this.startButton.hidden = state !== "scheduled";
    this.endButton.hidden = state !== "live";
  }

  setSettings({ slow_mode_seconds, stage_locked }) {
    if (slow_mode_seconds !== undefined) {
      const value = String(slow_mode_seconds);
      // A value set elsewhere (API, another host) may not be one of our presets: add it.
      if (![...this.slowMode.options].some((o) => o.value === value)) {
        this.slowMode.append(new Option(`${value} s`, value));
      }
      this.slowMode.value = value;
    }
    if (stage_locked !== undefined) this.lock.checked = Boolean(stage_locked);
  }

  async settings(change) {
    this.showError("");
    try {
      await this.ctx.send({ type: "room.settings", ...change });
    } catch (err) {
      this.showError(err.message);
      this.setSettings(this.ctx.settings); // put the control back to what is in force
    }
  }

  async transition(action) {
    this.showError("");
    const button = action === "start" ? this.startButton : this.endButton;
    button.disabled = true;
    try {
      const response = await fetch(`/api/conversations/${encodeURIComponent(this.ctx.slug)}/${action}`, {
        method: "POST",
        headers: { "X-CSRF-Token": csrfToken(), "Content-Type": "application/json" },
        credentials: "same-origin",
        body: "{}",
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      // The conversation.state event updates every page, this one included.
    } catch (err) {
      this.showError(err.message || `Could not ${action} the conversation.`);
    } finally {
      button.disabled = false;
    }
  }
}

/** A readable message from a JSON error response ({detail} from FastAPI, or {message}/{error}). */
export async function errorMessage(response) {
  try {
    const body = await response.json();
    const detail = body.detail ?? body.message ?? body.error;
    if (typeof detail === "string") return detail;
    if (detail && typeof detail.message === "string") return detail.message;
    if (Array.isArray(detail) && detail[0]?.msg) return detail[0].msg;
  } catch {
    // not JSON: fall through
  }
  return `The server said ${response.status} ${response.statusText}`.trim();
}
