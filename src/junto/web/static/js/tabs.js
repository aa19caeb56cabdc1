// On a phone the room's sections (stage, chat, backchannel, people) become tabs; on a wide
// screen they sit side by side and the tab roles are removed. WAI-ARIA Authoring Practices,
// "Tabs with automatic activation": arrow keys move between tabs, Home/End jump.

const NARROW = "(max-width: 760px)";

export class Tabs {
  constructor(tablist) {
    this.tablist = tablist;
    this.tabs = [...tablist.querySelectorAll("[role=tab]")];
    this.selected = this.tabs.find((t) => t.getAttribute("aria-selected") === "true") || this.tabs[0];
    this.mq = window.matchMedia(NARROW);
    this.mq.addEventListener("change", () => this.apply());
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => this.select(tab, true, true));
      tab.addEventListener("keydown", (ev) => this.onKey(ev));
    }
    this.apply();
  }

  panelOf(tab) {
    return document.getElementById(tab.getAttribute("aria-controls"));
  }

  tabFor(section) {
    return this.tabs.find((t) => t.dataset.section === section);
  }

  narrow() {
    return this.mq.matches;
  }

  apply() {
    const narrow = this.narrow();
    for (const tab of this.tabs) {
      const panel = this.panelOf(tab);
      const active = tab === this.selected;
      tab.setAttribute("aria-selected", String(active));
      tab.tabIndex = active ? 0 : -1;
      // A section is named by its own heading; as a tab panel, by its tab.
      panel.dataset.heading ??= panel.getAttribute("aria-labelledby") || "";
      if (narrow) {
        panel.setAttribute("role", "tabpanel");
        panel.setAttribute("aria-labelledby", tab.id);
        panel.classList.toggle("tab-hidden", !active);
      } else {
        panel.removeAttribute("role");
        if (panel.dataset.heading) panel.setAttribute("aria-labelledby", panel.dataset.heading);
        else panel.removeAttribute("aria-labelledby");
        panel.classList.remove("tab-hidden");
      }
    }
  }

  select(tab, focus = false, reveal = false) {
    this.selected = tab;
    tab.classList.remove("unread");
    tab.querySelector(".unread-note")?.remove();
    this.apply();
    if (focus) tab.focus();
    // Bring the tab bar to the top (it then sticks) so the section and its input fill the
    // screen below it instead of sitting under the conversation's header.
    if (reveal && this.narrow() && this.tablist.getBoundingClientRect().top > 1) {
      this.tablist.scrollIntoView({ block: "start" });
    }
  }

  onKey(ev) {
    const i = this.tabs.indexOf(ev.currentTarget);
    const n = this.tabs.length;
    const next = { ArrowRight: (i + 1) % n, ArrowLeft: (i - 1 + n) % n, Home: 0, End: n - 1 }[ev.key];
    if (next === undefined) return;
    ev.preventDefault();
    this.select(this.tabs[next], true, true);
  }

  /** Switch to a section's tab (phone only; on a wide screen every section is visible). */
  show(section) {
    const tab = this.tabFor(section);
    if (tab && this.narrow()) this.select(tab, false, true);
  }

  /** Mark a hidden section's tab as having something new. */
  markUnread(section) {
    const tab = this.tabFor(section);
    if (!tab || !this.narrow() || tab === this.selected || tab.classList.contains("unread")) return;
    tab.classList.add("unread");
    const note = document.createElement("span");
    note.className = "visually-hidden unread-note";
    note.textContent = " (new)";
    tab.append(note);
  }
}
