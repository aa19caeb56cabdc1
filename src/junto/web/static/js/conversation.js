// The conversation page (templates/conversation.html): the transcript follows the recording.
// The server renders everything; this adds, on top:
//  - seeking: a word, a segment's time, a chapter or a summary sentence moves the player there
//    (links keep their ?t= href, so without scripts they reload the page at that moment);
//  - the word being spoken is highlighted (binary search over word start times on timeupdate
//    and every animation frame while playing), and the transcript scrolls to keep it in view
//    unless the reader has scrolled it themselves in the last few seconds;
//  - the current chapter is marked; backchannel posts appear as playback passes their time;
//  - search within the transcript: matches marked and counted, Enter / Shift+Enter step through;
//  - ?t=<seconds> (or 1:30, 1m30s) in the address seeks there on load.
// Text from users is never parsed as HTML here: this script only toggles classes and attributes.

const player = document.getElementById("player");
const transcript = document.getElementById("transcript");
const words = transcript ? Array.from(transcript.querySelectorAll("span.w")) : [];
const starts = words.map((w) => Number(w.dataset.start));
const ends = words.map((w) => Number(w.dataset.end));
const chapters = Array.from(document.querySelectorAll("#chapters li[data-start]"));
const posts = Array.from(document.querySelectorAll("#backchannel-replay .bc-post"));
const postTimes = posts.map((p) => Number(p.dataset.at));
const replay = document.getElementById("backchannel-replay");
const bcStatus = document.getElementById("bc-status");

// How long after the reader scrolls the transcript it stops following playback.
const FOLLOW_PAUSE_MS = 5000;
// A word stays highlighted through short pauses after it (up to this long past its end).
const LINGER_MS = 1500;

let currentWord = -1;
let currentChapter = -1;
let shownPosts = -2; // none decided yet: the first update hides the posts still to come
let userScrolledAt = -Infinity;
let frame = 0;

/** Index of the last item whose time is <= t (or -1): binary search over sorted `times`. */
function lastAtOrBefore(times, t) {
  let lo = 0;
  let hi = times.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] <= t) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

function seek(ms, { play = true } = {}) {
  if (!player) return;
  const go = () => {
    player.currentTime = Math.max(0, ms / 1000);
    update();
    if (play) player.play().catch(() => {}); // autoplay policies may refuse; the seek stands
  };
  if (player.readyState >= 1) go();
  else player.addEventListener("loadedmetadata", go, { once: true });
}

function highlightWord(ms) {
  let index = lastAtOrBefore(starts, ms);
  if (index >= 0 && ms > ends[index] + LINGER_MS) index = -1;
  if (index === currentWord) return;
  if (currentWord >= 0) words[currentWord].classList.remove("now");
  currentWord = index;
  if (index < 0) return;
  const word = words[index];
  word.classList.add("now");
  if (!player.paused && performance.now() - userScrolledAt > FOLLOW_PAUSE_MS) keepInView(word);
}

function keepInView(word) {
  const box = transcript.getBoundingClientRect();
  const at = word.getBoundingClientRect();
  const margin = box.height * 0.2;
  if (at.top < box.top + margin || at.bottom > box.bottom - margin) {
    // Scroll the transcript box only (scrollIntoView would also scroll the page).
    const target = transcript.scrollTop + (at.top - box.top) - box.height / 3;
    transcript.scrollTo({ top: target, behavior: "smooth" });
  }
}

function highlightChapter(ms) {
  let index = -1;
  chapters.forEach((li, i) => {
    if (Number(li.dataset.start) <= ms) index = i;
  });
  if (index === currentChapter) return;
  if (currentChapter >= 0) {
    chapters[currentChapter].classList.remove("current");
    chapters[currentChapter].removeAttribute("aria-current");
  }
  currentChapter = index;
  if (index >= 0) {
    chapters[index].classList.add("current");
    chapters[index].setAttribute("aria-current", "true");
  }
}

function showPosts(ms) {
  if (!posts.length) return;
  const upTo = lastAtOrBefore(postTimes, ms);
  if (upTo === shownPosts) return;
  const grew = upTo > shownPosts;
  posts.forEach((post, i) => {
    post.hidden = i > upTo;
  });
  shownPosts = upTo;
  const count = upTo + 1;
  bcStatus.textContent =
    count === 0
      ? `${posts.length} post${posts.length === 1 ? "" : "s"}: they appear as the recording reaches them.`
      : `${count} of ${posts.length} post${posts.length === 1 ? "" : "s"} so far.`;
  // Newest at the bottom, like the live backchannel: keep the newest in view.
  if (grew) replay.scrollTop = replay.scrollHeight;
}

function update() {
  if (!player) return;
  const ms = player.currentTime * 1000;
  // Nothing is "being spoken" before the reader starts or moves the player.
  if (words.length && (ms > 0 || !player.paused)) highlightWord(ms);
  highlightChapter(ms);
  showPosts(ms);
}

function tick() {
  update();
  frame = player.paused || player.ended ? 0 : requestAnimationFrame(tick);
}

function seekTarget(event) {
  const link = event.target.closest("[data-seek-ms]");
  if (link) return Number(link.dataset.seekMs);
  const word = event.target.closest("span.w");
  if (word && transcript.contains(word)) return Number(word.dataset.start);
  return null;
}

function onActivate(event) {
  if (!player || event.button > 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  // A word click that ends a text selection is someone selecting words (for a snippet).
  if (event.target.closest("span.w") && String(window.getSelection() || "").trim()) return;
  const ms = seekTarget(event);
  if (ms === null) return;
  event.preventDefault();
  seek(ms);
}

// ---- search within the transcript ----------------------------------------------------------

const query = document.getElementById("transcript-query");
const counter = document.getElementById("search-count");
// A word Whisper wrote in pieces ("4" ",500", "US" "-based") is a span per piece with no space
// between them (templates/conversation.html): search reads the pieces as one word.
const units = []; // [first span index, span count] of each written word
words.forEach((w, i) => {
  if (i > 0 && w.previousSibling === words[i - 1]) units[units.length - 1][1] += 1;
  else units.push([i, 1]);
});
const folded = units.map(([i, n]) => fold(words.slice(i, i + n).map((w) => w.textContent).join("")));
let hits = []; // [first span index, span count] of each match
let hitAt = -1;

function fold(text) {
  return text
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, "");
}

function clearHits() {
  for (const w of transcript.querySelectorAll(".hit, .hit-current")) {
    w.classList.remove("hit", "hit-current");
  }
  hits = [];
  hitAt = -1;
}

function search() {
  clearHits();
  const terms = query.value.split(/\s+/).map(fold).filter(Boolean);
  if (!terms.length) {
    counter.textContent = "";
    return;
  }
  // Consecutive words: the first and middle terms match whole words, the last a word's start
  // (so "river ci" finds "river cities" while typing); a single term matches inside a word.
  for (let i = 0; i + terms.length <= units.length; i++) {
    const ok = terms.every((term, j) => {
      const word = folded[i + j];
      if (terms.length === 1) return word.includes(term);
      return j === terms.length - 1 ? word.startsWith(term) : word === term;
    });
    if (!ok) continue;
    const [first] = units[i];
    const [lastStart, lastCount] = units[i + terms.length - 1];
    hits.push([first, lastStart + lastCount - first]);
  }
  for (const [i, n] of hits) for (let k = i; k < i + n; k++) words[k].classList.add("hit");
  counter.textContent = hits.length
    ? `${hits.length} match${hits.length === 1 ? "" : "es"}`
    : "No matches";
  if (hits.length) step(1);
}

function step(direction) {
  if (!hits.length) return;
  if (hitAt >= 0) {
    const [i, n] = hits[hitAt];
    for (let k = i; k < i + n; k++) words[k].classList.remove("hit-current");
  }
  hitAt = (hitAt + direction + hits.length) % hits.length;
  const [i, n] = hits[hitAt];
  for (let k = i; k < i + n; k++) words[k].classList.add("hit-current");
  userScrolledAt = performance.now(); // reading a match: do not pull the view back to playback
  const box = transcript.getBoundingClientRect();
  const at = words[i].getBoundingClientRect();
  transcript.scrollTop += at.top - box.top - box.height / 3;
  counter.textContent = `${hitAt + 1} of ${hits.length} match${hits.length === 1 ? "" : "es"}`;
}

function setUpSearch() {
  if (!query || !transcript) return;
  let timer = 0;
  query.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 120);
  });
  query.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    clearTimeout(timer);
    if (!hits.length) search();
    else step(event.shiftKey ? -1 : 1);
  });
  document.getElementById("search-next").addEventListener("click", () => step(1));
  document.getElementById("search-prev").addEventListener("click", () => step(-1));
  document.getElementById("transcript-search").addEventListener("submit", (e) => e.preventDefault());
  // "/" jumps to the transcript search, as on most sites with a search box (not while typing).
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing =
      target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
    if (event.key !== "/" || typing || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    query.focus();
    query.select();
  });
}

// ---- the summary, once it is computed ---------------------------------------------------------
// While the knowledge job runs, the page says so (the processing panel shows its progress).
// When it is done, offer to show it: a reload at the current moment, never an automatic one
// that would interrupt someone listening.

const KNOWLEDGE_POLL_MS = 5000;

function watchKnowledge() {
  const pending = document.getElementById("knowledge-pending");
  if (!pending) return;
  const slug = document.getElementById("conversation-page").dataset.slug;
  const path = `/api/conversations/${encodeURIComponent(slug)}/jobs`;
  const poll = async () => {
    try {
      const response = await fetch(path, { credentials: "same-origin" });
      if (response.ok) {
        const jobs = await response.json();
        const busy = jobs.some(
          (job) => job.kind === "knowledge.extract" && ["queued", "running"].includes(job.state),
        );
        if (!busy) {
          const at = player ? Math.floor(player.currentTime) : 0;
          const link = document.createElement("a");
          link.href = at > 0 ? `?t=${at}` : location.pathname;
          link.className = "button small";
          link.textContent = "Show the summary";
          pending.textContent = "The summary, chapters and key points are ready. ";
          pending.append(link);
          link.addEventListener("click", () => {
            const now = player ? Math.floor(player.currentTime) : 0;
            link.href = now > 0 ? `?t=${now}` : location.pathname;
          });
          return;
        }
      }
    } catch {
      // Offline for a moment: try again later.
    }
    setTimeout(poll, KNOWLEDGE_POLL_MS);
  };
  setTimeout(poll, KNOWLEDGE_POLL_MS);
}

// ---- wiring ------------------------------------------------------------------------------------

/** Where ?t= asks to start, in seconds: the server parsed it (90, 1:30, 1m30s...). */
function startAt() {
  const data = document.getElementById("conversation-data");
  try {
    const seconds = Number(JSON.parse(data ? data.textContent : "{}").start_at);
    return Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
  } catch {
    return 0;
  }
}

function init() {
  document.addEventListener("click", onActivate);
  watchKnowledge();
  setUpSearch();
  if (transcript) {
    // From the keyboard, each segment's time is a link (Tab, then Enter seeks there); words
    // are not tab stops, which would mean hundreds of Tab presses through a transcript.
    // The reader scrolling the transcript stops it following playback for a while.
    for (const type of ["wheel", "touchmove"]) {
      transcript.addEventListener(type, () => (userScrolledAt = performance.now()), {
        passive: true,
      });
    }
    transcript.addEventListener("keydown", (event) => {
      if (["ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"].includes(event.key)) {
        userScrolledAt = performance.now();
      }
    });
  }
  if (!player) return;
  player.addEventListener("timeupdate", update);
  player.addEventListener("seeked", update);
  player.addEventListener("play", () => {
    if (!frame) frame = requestAnimationFrame(tick);
  });
  const t = startAt();
  if (t > 0) seek(t * 1000, { play: false });
  update();
}

init();
