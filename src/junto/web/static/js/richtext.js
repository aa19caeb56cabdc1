// Plain text → DOM nodes, with http(s) links, #hashtags and @mentions turned into elements.
//
// Message and post bodies are plain text (docs/protocol.md): they are NEVER parsed as HTML here.
// Every piece of user text becomes a Text node or the textContent of an element we create, so a
// "<script>" or "<img onerror>" in a body is shown literally and cannot run.

// One pass over the text: a URL, or a hashtag / mention that does not sit inside a word.
// Lookbehinds keep "a#b", "mail@example.org" and "https://x/#frag" from being cut apart.
const TOKEN =
  /(https?:\/\/[^\s<>"'`]+)|(?<![\p{L}\p{N}_&/#])#([\p{L}\p{N}_]{1,64})|(?<![\p{L}\p{N}_/@.])@([\p{L}\p{N}_][\p{L}\p{N}_.-]{0,31})/gu;

// Sentence punctuation right after a URL is almost never part of it ("see https://x.org.").
const TRAILING = /[.,;:!?)\]}'"]+$/u;

export const LINK_REL = "noopener nofollow ugc";

/** The URL's canonical href if it is http(s), else null (no javascript:, data:, ...). */
export function safeHref(raw) {
  let url;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
}

function link(href, text, className) {
  const a = document.createElement("a");
  a.href = href;
  a.rel = LINK_REL;
  if (className) a.className = className;
  a.textContent = text;
  return a;
}

/**
 * Append `text` to `parent` as text nodes and safe elements.
 * options.hashtagHref(tag) → href for a hashtag link (default: this page's backchannel
 *   filtered by the tag, see backchannel.js);
 * options.myName → mentions of this name get the "mention-me" class.
 */
export function appendRichText(parent, text, options = {}) {
  const hashtagHref =
    options.hashtagHref || ((tag) => `?tag=${encodeURIComponent(tag)}#panel-backchannel`);
  const myName = (options.myName || "").toLowerCase();
  let last = 0;
  for (const match of String(text).matchAll(TOKEN)) {
    const [whole, url, tag, mention] = match;
    let start = match.index;
    let token = whole;
    let tail = "";
    if (url) {
      const trimmed = url.replace(TRAILING, "");
      tail = url.slice(trimmed.length);
      token = trimmed;
    }
    parent.append(document.createTextNode(text.slice(last, start)));
    if (url) {
      const href = safeHref(token);
      parent.append(href ? link(href, token, "ext") : document.createTextNode(token));
    } else if (tag) {
      parent.append(link(hashtagHref(tag.toLowerCase()), whole, "hashtag"));
    } else if (mention) {
      const span = document.createElement("span");
      span.className = mention.toLowerCase() === myName ? "mention mention-me" : "mention";
      span.textContent = whole;
      parent.append(span);
    }
    if (tail) parent.append(document.createTextNode(tail));
    last = start + whole.length;
  }
  parent.append(document.createTextNode(text.slice(last)));
  return parent;
}

/** The hashtags in a text, lower case, in order of first appearance (for local filtering). */
export function hashtagsOf(text) {
  const seen = new Set();
  for (const match of String(text).matchAll(TOKEN)) {
    if (match[2]) seen.add(match[2].toLowerCase());
  }
  return [...seen];
}

/** Milliseconds since the start as "12:34" or "1:02:03"; "" when the post predates the start. */
export function formatOffset(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** A spoken form of an offset for screen readers: "12 minutes 34 seconds in". */
export function describeOffset(ms) {
  if (ms === null || ms === undefined || ms < 0) return "before the start";
  const total = Math.floor(ms / 1000);
  const parts = [];
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) parts.push(`${h} h`);
  if (m) parts.push(`${m} min`);
  parts.push(`${s} s`);
  return `${parts.join(" ")} after the start`;
}

/** Local wall-clock time "14:05" for an ISO timestamp; "" if it does not parse. */
export function formatClock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
