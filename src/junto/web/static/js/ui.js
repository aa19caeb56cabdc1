// Tiny DOM helpers shared by the room's modules. Text always goes in as Text nodes.

/** Small element helper: el("button", {className, type}, "text", child, ...). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/**
 * A two-step button for destructive actions: the first press asks ("Really delete?"), a second
 * press within a few seconds does it. No window.confirm: it blocks every open page's updates.
 */
export function confirmButton(label, confirmLabel, accessibleName, onConfirm) {
  const button = el("button", { type: "button", className: "link-button danger-text" }, label);
  if (accessibleName) button.setAttribute("aria-label", accessibleName);
  let armed = null;
  const disarm = () => {
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    button.classList.remove("armed");
    if (accessibleName) button.setAttribute("aria-label", accessibleName);
  };
  button.addEventListener("click", () => {
    if (!armed) {
      button.textContent = confirmLabel;
      button.classList.add("armed");
      if (accessibleName) button.setAttribute("aria-label", `${confirmLabel} ${accessibleName}`);
      armed = setTimeout(disarm, 4000);
      return;
    }
    disarm();
    onConfirm();
  });
  button.addEventListener("blur", () => {
    // Leaving the button (keyboard or pointer) cancels the question.
    if (armed) setTimeout(disarm, 200);
  });
  return button;
}

/**
 * The CSRF token for JSON requests (double-submit: it must equal the junto_csrf cookie).
 * The cookie is read first because signing in as a guest may rotate it after the page loaded.
 */
export function csrfToken() {
  const cookie = document.cookie
    .split(";")
    .map((c) => c.trim())
    .find((c) => c.startsWith("junto_csrf="));
  if (cookie) return decodeURIComponent(cookie.slice("junto_csrf=".length));
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

/**
 * Make `container`'s children match `items`, keyed, touching only what changed: presence
 * arrives twice a second, and redrawing every row would take keyboard focus away from the
 * button a host is on (and, with the media layer, restart every speaker's video).
 *   key(item) → stable id; signature(item) → string that changes when the row must change;
 *   render(item) → a fresh element; update(node, item) (optional) → refresh in place.
 */
export function reconcile(container, items, { key, signature, render, update }) {
  const old = new Map([...container.children].map((c) => [c.dataset.key, c]));
  const wanted = [];
  for (const item of items) {
    const k = String(key(item));
    const sig = signature(item);
    let node = old.get(k);
    if (node && node.dataset.sig !== sig) {
      if (update) {
        update(node, item);
      } else {
        const fresh = render(item);
        node.replaceWith(fresh);
        node = fresh;
      }
    } else if (!node) {
      node = render(item);
    }
    node.dataset.key = k;
    node.dataset.sig = sig;
    wanted.push(node);
  }
  const keep = new Set(wanted);
  for (const node of old.values()) if (!keep.has(node)) node.remove();
  wanted.forEach((node, i) => {
    const at = container.children[i];
    if (at !== node) container.insertBefore(node, at || null);
  });
}
