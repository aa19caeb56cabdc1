// A text box that sends on Enter (Shift+Enter: new line), counts characters and shows the
// server's error for what it sent right next to it ("Slow mode: wait 8 s").

/** Server messages are lower-case clauses ("slow mode is on: ..."); show them as sentences. */
export function sentence(message) {
  const text = String(message || "").trim();
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}

export class Composer {
  /**
   * @param {HTMLFormElement} form  holds a <textarea>, a submit button, .counter and .field-error
   * @param {object} options  maxChars, onSubmit(body) → Promise (rejects with {message})
   */
  constructor(form, { maxChars, onSubmit }) {
    this.form = form;
    this.input = form.querySelector("textarea");
    this.button = form.querySelector("button[type=submit]");
    this.counter = form.querySelector(".counter");
    this.errorBox = form.querySelector(".field-error");
    this.maxChars = maxChars;
    this.onSubmit = onSubmit;
    this.busy = false;
    this.input.addEventListener("keydown", (ev) => {
      // isComposing: Enter that confirms an IME candidate (Japanese, Chinese...) must not send.
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => {
      this.updateCounter();
      this.showError("");
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.updateCounter();
  }

  updateCounter() {
    const left = this.maxChars - [...this.input.value].length;
    if (this.counter) {
      this.counter.textContent = String(left);
      this.counter.classList.toggle("over", left < 0);
    }
    return left;
  }

  showError(message) {
    clearInterval(this.countdown);
    if (!this.errorBox) return;
    this.errorBox.textContent = sentence(message);
    this.errorBox.hidden = !message;
  }

  /** Slow mode and rate limits say how long to wait: count it down, then clear. */
  showWait(prefix, seconds) {
    this.showError(" ");
    let left = Math.ceil(seconds);
    const tick = () => {
      if (left <= 0) return this.showError("");
      this.errorBox.textContent = `${prefix}: wait ${left} s`;
      left -= 1;
    };
    tick();
    this.countdown = setInterval(tick, 1000);
  }

  showFailure(err) {
    const wait = Number(err.frame?.retry_after);
    if (err.code === "slow_mode" && wait > 0) this.showWait("Slow mode", wait);
    else if (err.code === "rate_limited" && wait > 0) this.showWait("Too fast", wait);
    else this.showError(err.message || "Not sent.");
  }

  setEnabled(enabled, why = "") {
    this.input.disabled = !enabled;
    this.button.disabled = !enabled;
    this.form.classList.toggle("disabled", !enabled);
    const note = this.form.querySelector(".composer-note");
    if (note) {
      note.textContent = why;
      note.hidden = !why;
    }
  }

  async submit() {
    const body = this.input.value.trim();
    if (!body || this.busy) return;
    if (this.updateCounter() < 0) {
      this.showError(`Too long: at most ${this.maxChars} characters.`);
      return;
    }
    this.busy = true;
    try {
      await this.onSubmit(body);
      // Clear only what was sent: the person may have typed on while it travelled.
      if (this.input.value.trim() === body) this.input.value = "";
      this.updateCounter();
      this.showError("");
    } catch (err) {
      // Keep the text so nothing typed is lost; say why it was not sent.
      this.showFailure(err);
    } finally {
      this.busy = false;
    }
  }
}
