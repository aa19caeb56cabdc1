// Conversation form, progressively enhanced. Without JavaScript the "Starts at" field is read
// and shown in UTC (its hint says so). With it, the field shows the reader's local time and the
// form also sends the exact instant as `scheduled_at_utc`, which the server prefers.

const pad = (n) => String(n).padStart(2, "0");

/** A Date as the value of <input type=datetime-local> in the reader's time zone. */
function toLocalInput(date) {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

function enhanceSchedule(form) {
  const input = form.querySelector("input[data-utc]");
  const hidden = form.querySelector('input[name="scheduled_at_utc"]');
  if (!input || !hidden) return;
  if (input.value) {
    const utc = new Date(`${input.value}:00Z`);
    if (!Number.isNaN(utc.getTime())) input.value = toLocalInput(utc);
  }
  const hint = form.querySelector("[data-tz-hint]");
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (hint && zone) {
    hint.textContent = `Optional. Date and time in your time zone (${zone}). Leave empty to start whenever you are ready.`;
  }
  form.addEventListener("submit", () => {
    // datetime-local values without an offset are parsed as local time by Date.
    const local = input.value ? new Date(input.value) : null;
    hidden.value = local && !Number.isNaN(local.getTime()) ? local.toISOString() : "";
  });
}

function enhanceConfirm() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!confirm(form.dataset.confirm)) ev.preventDefault();
    });
  }
}

/** Copy `text`; the Clipboard API needs a secure context, so fall back to a selection copy. */
async function copyText(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    input.focus();
    input.select();
    return document.execCommand?.("copy") ?? false;
  }
}

function enhanceCopy() {
  const inputs = [...document.querySelectorAll("input[data-copy]")];
  inputs.forEach((input, index) => {
    input.addEventListener("focus", () => input.select());
    // A Copy button beside each link: only with JavaScript, since only then can it work.
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary copy-button";
    const text = document.createElement("span");
    const which = document.createElement("span");
    which.className = "visually-hidden";
    which.textContent = ` ${index + 1}`; // matches "Revoke link N" for screen readers
    const idle = () => {
      text.textContent = "Copy link";
    };
    idle();
    button.append(text, which);
    button.addEventListener("click", async () => {
      const ok = await copyText(input);
      text.textContent = ok ? "Copied ✓" : "Press Ctrl+C to copy";
      setTimeout(idle, 2500);
    });
    input.after(button);
  });
}

function localiseTimes() {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const el of document.querySelectorAll("time[data-local]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) el.textContent = format.format(when);
  }
}

const form = document.querySelector("form.conv-form");
if (form) enhanceSchedule(form);
enhanceConfirm();
enhanceCopy();
localiseTimes();
document.getElementById("form-errors")?.focus?.();
