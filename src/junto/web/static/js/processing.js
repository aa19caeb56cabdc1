// The "Processing" panel (templates/_processing.html): an ended conversation's background jobs
// with a progress bar each, polled every 2 s while any is queued or running. Hosts see why a
// step failed and can retry it. All text goes in through textContent.

import { csrfToken, el, reconcile } from "./ui.js";

const POLL_MS = 2000;
const RETRY_AFTER_ERROR_MS = 10000;
const STATE_LABELS = { queued: "Waiting", running: "In progress", succeeded: "Done", failed: "Failed" };
const panels = new Set();

/** What a job does, for people: "Transcribing Ana’s track". */
export function jobTitle(job) {
  switch (job.kind) {
    case "recording.finalize":
      return job.subject ? `Finishing a recording of ${job.subject}` : "Finishing a recording";
    case "transcript.track":
      return job.subject ? `Transcribing ${job.subject}’s track` : "Transcribing a track";
    case "transcript.ahead":
      return job.subject
        ? `Transcribing ${job.subject} while they speak`
        : "Transcribing while they speak";
    case "transcript.build":
      return "Building the transcript";
    case "composite.render":
      return "Rendering the video";
    case "knowledge.extract":
      return "Summarizing: chapters, key points, decisions";
    case "search.index":
      return "Indexing for search";
    default:
      return job.kind;
  }
}

/** A (possibly multi-line, e.g. ffmpeg's last lines) error as wrapping text, line by line. */
function errorLines(text) {
  const box = el("p", { className: "processing-error-text error-box" });
  text.split("\n").forEach((line, i) => {
    if (i) box.append(el("br"));
    box.append(document.createTextNode(line));
  });
  return box;
}

function isActive(job) {
  return job.state === "queued" || job.state === "running";
}

function percent(job) {
  return Math.round(Math.min(Math.max(job.progress, 0), 1) * 100);
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.message === "string") return body.message;
  } catch {
    // not JSON: fall through
  }
  return `The server answered ${response.status}.`;
}

class ProcessingPanel {
  constructor(root) {
    this.root = root;
    this.slug = root.dataset.slug;
    this.canManage = root.dataset.canManage === "true";
    this.list = root.querySelector(".processing-list");
    this.summary = root.querySelector(".processing-summary");
    this.errorBox = root.querySelector(".processing-error");
    this.timer = null;
    this.states = null; // job id → state at the last refresh (null before the first)
    // Once every step has succeeded the list folds away behind this button, so the page's
    // content (the transcript, the room) is not pushed below a column of finished bars.
    this.expanded = false;
    this.toggle = el("button", { type: "button", className: "small secondary processing-toggle" });
    this.toggle.hidden = true;
    this.toggle.setAttribute("aria-controls", this.list.id || (this.list.id = `processing-list-${this.slug}`));
    this.toggle.addEventListener("click", () => {
      this.expanded = !this.expanded;
      this.fold(true);
    });
    this.summary.after(this.toggle);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.wantsPolling) this.refresh();
    });
  }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), ms);
  }

  async refresh() {
    clearTimeout(this.timer);
    if (document.hidden && this.states !== null) {
      this.wantsPolling = true; // picked up again when the page is visible
      return;
    }
    let jobs;
    try {
      const response = await fetch(`/api/conversations/${encodeURIComponent(this.slug)}/jobs`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      // 404: not for this reader (a conversation under review shows its jobs to its
      // reviewers only, as its transcript): nothing to show, nothing to poll for.
      if (response.status === 404) {
        this.root.hidden = true;
        return;
      }
      if (!response.ok) throw new Error(await errorText(response));
      jobs = await response.json();
    } catch (err) {
      this.showError(`Could not load the processing status: ${err.message}`);
      this.schedule(RETRY_AFTER_ERROR_MS);
      return;
    }
    this.showError("");
    this.render(jobs);
    this.wantsPolling = jobs.some(isActive);
    if (this.wantsPolling) this.schedule(POLL_MS);
  }

  showError(message) {
    this.errorBox.textContent = message;
    this.errorBox.hidden = !message;
  }

  /** Show the list while anything is to do or failed; otherwise as the toggle says. */
  fold(settled) {
    this.list.hidden = settled && !this.expanded;
    this.toggle.hidden = !settled;
    this.toggle.textContent = this.expanded ? "Hide the steps" : "Show the steps";
    this.toggle.setAttribute("aria-expanded", String(!this.list.hidden));
  }

  render(jobs) {
    this.root.hidden = jobs.length === 0;
    this.fold(jobs.length > 0 && jobs.every((job) => job.state === "succeeded"));
    reconcile(this.list, jobs, {
      key: (job) => job.id,
      signature: (job) =>
        JSON.stringify([job.state, percent(job), job.note, job.error, job.attempts, job.subject]),
      render: (job) => this.item(job),
    });
    this.announce(jobs);
  }

  /** Tell screen readers about state changes (not about every percent). */
  announce(jobs) {
    const before = this.states;
    this.states = new Map(jobs.map((job) => [job.id, job.state]));
    if (before === null) {
      if (jobs.length) this.summary.textContent = this.overview(jobs);
      return;
    }
    const changed = jobs.filter((job) => before.get(job.id) !== job.state);
    if (!changed.length) return;
    const parts = changed.map((job) => `${jobTitle(job)}: ${STATE_LABELS[job.state] || job.state}.`);
    if (!jobs.some(isActive)) parts.push(this.overview(jobs));
    this.summary.textContent = parts.join(" ");
  }

  overview(jobs) {
    const failed = jobs.filter((job) => job.state === "failed").length;
    const active = jobs.filter(isActive).length;
    if (active) return `${active} of ${jobs.length} steps still to do.`;
    if (failed) return `Finished, but ${failed} step${failed === 1 ? "" : "s"} failed.`;
    return "All done.";
  }

  item(job) {
    const title = jobTitle(job);
    const value = percent(job);
    const bar = el("progress", { max: "100", value: String(value), "aria-label": `${title}: progress` });
    const li = el(
      "li",
      { className: `processing-item state-${job.state}`, tabindex: "-1", dataset: { state: job.state } },
      el("div", { className: "processing-head" },
        el("span", { className: "processing-title" }, title), " ",
        el("span", { className: `badge processing-state` }, STATE_LABELS[job.state] || job.state)),
      el("div", { className: "processing-bar" }, bar, " ",
        el("span", { className: "processing-percent" }, `${value}%`)),
    );
    if (job.note) li.append(el("p", { className: "processing-note muted" }, job.note));
    if (job.state === "failed") {
      if (this.canManage) {
        if (job.error) li.append(errorLines(job.error));
        const button = el("button", { type: "button", className: "small secondary" }, "Retry");
        button.setAttribute("aria-label", `Retry: ${title}`);
        button.addEventListener("click", () => this.retry(job, button));
        li.append(button);
      } else {
        li.append(el("p", { className: "muted" }, "This step failed; the hosts can retry it."));
      }
    }
    return li;
  }

  async retry(job, button) {
    button.disabled = true;
    this.showError("");
    try {
      const response = await fetch(`/api/jobs/${encodeURIComponent(job.id)}/retry`, {
        method: "POST",
        headers: { "X-CSRF-Token": csrfToken(), "Content-Type": "application/json" },
        credentials: "same-origin",
        body: "{}",
      });
      if (!response.ok) throw new Error(await errorText(response));
    } catch (err) {
      button.disabled = false;
      this.showError(`Could not retry “${jobTitle(job)}”: ${err.message}`);
      return;
    }
    await this.refresh();
    // The row was redrawn without its Retry button: keep keyboard focus nearby.
    const row = [...this.list.children].find((li) => li.dataset.key === String(job.id));
    (row || this.root.querySelector("#processing-heading"))?.focus();
  }
}

/** Load (again) every Processing panel on the page, e.g. when the conversation has just ended. */
export function refreshProcessing() {
  for (const panel of panels) panel.refresh();
}

for (const root of document.querySelectorAll("[data-processing]")) {
  const panel = new ProcessingPanel(root);
  panels.add(panel);
  panel.refresh();
}
