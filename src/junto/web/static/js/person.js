// People as the room shows them: a name in the person's own colour, readable on any background.

const HEX = /^#[0-9a-f]{6}$/i;
const FALLBACK = "#55575d";

function channels(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function toHex(rgb) {
  return "#" + rgb.map((c) => Math.round(c).toString(16).padStart(2, "0")).join("");
}

// WCAG 2.x relative luminance and contrast ratio.
function luminance(rgb) {
  const [r, g, b] = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrast(a, b) {
  const [hi, lo] = [luminance(channels(a)), luminance(channels(b))].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/**
 * The person's colour, darkened (or lightened on dark backgrounds) just enough to reach
 * `minRatio` against `background`: people pick any colour, text must stay readable (WCAG AA).
 */
export function readableColour(colour, background = "#ffffff", minRatio = 4.5) {
  const base = HEX.test(colour || "") ? colour.toLowerCase() : FALLBACK;
  const towards = luminance(channels(background)) > 0.4 ? [0, 0, 0] : [255, 255, 255];
  const rgb = channels(base);
  for (let step = 0; step <= 20; step++) {
    const t = step / 20;
    const mixed = toHex(rgb.map((c, i) => c + (towards[i] - c) * t));
    if (contrast(mixed, background) >= minRatio) return mixed;
  }
  return toHex(towards);
}

/** A valid "#rrggbb" for decoration (borders, swatches), whatever the server sent. */
export function safeColour(colour) {
  return HEX.test(colour || "") ? colour.toLowerCase() : FALLBACK;
}

/** `colour` mixed into `background` by `amount` (0..1): a light tint of the person's colour. */
export function tint(colour, background, amount) {
  const a = channels(safeColour(colour));
  const b = channels(background);
  return toHex(b.map((c, i) => c + (a[i] - c) * amount));
}

/**
 * Give `el` the custom properties --person (decoration), --person-bg (a faint tint of it on
 * `background`, if `tintAmount` > 0) and --person-text (the colour darkened until readable on
 * that tint, WCAG AA). Set through the CSSOM, which a strict CSP allows (style="" it does not).
 */
export function paintPerson(el, colour, background = "#ffffff", tintAmount = 0) {
  const bg = tintAmount > 0 ? tint(colour, background, tintAmount) : background;
  el.style.setProperty("--person", safeColour(colour));
  if (tintAmount > 0) el.style.setProperty("--person-bg", bg);
  el.style.setProperty("--person-text", readableColour(colour, bg));
  return el;
}

export const ROLE_LABELS = {
  host: "Host",
  cohost: "Co-host",
  speaker: "Speaker",
  audience: "Audience",
};

export function isOnStage(role) {
  return role === "host" || role === "cohost" || role === "speaker";
}

export function isModerator(role) {
  return role === "host" || role === "cohost";
}

/** "<swatch> Name [guest] [you]" as a span; the name goes in as text. */
export function personName(person, { background = "#ffffff", you = false, paint = true } = {}) {
  const span = document.createElement("span");
  span.className = "person";
  // paint: false inherits the colours of an already painted (perhaps tinted) container.
  if (paint) paintPerson(span, person.colour, background);
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.setAttribute("aria-hidden", "true");
  const name = document.createElement("span");
  name.className = "person-name";
  name.textContent = person.name;
  span.append(swatch, name);
  if (person.is_guest) {
    const tag = document.createElement("span");
    tag.className = "person-tag";
    tag.textContent = "guest";
    span.append(" ", tag);
  }
  if (you) {
    const tag = document.createElement("span");
    tag.className = "person-tag";
    tag.textContent = "you";
    span.append(" ", tag);
  }
  return span;
}
