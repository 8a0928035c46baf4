// Slide viewer: navigation (keys, buttons, swipe, thumbnails) and visible-time reports.
// A "stay" is one continuous period on one slide; the browser reports its running visible time
// (heartbeat, slide change, hide, unload) and the server keeps the largest value per stay.

const root = document.getElementById("viewer");
const count = Number(root.dataset.count);
const visitKey = root.dataset.visit;
const trackUrl = root.dataset.trackUrl;
const heartbeatMs = Number(root.dataset.heartbeat) * 1000;
// The URL carries the images' version (?v=...): a replaced deck is never shown from the browser's cache.
const slideUrl = (n) => root.dataset.slideUrl.replace(/\/0\.png(?=\?|$)/, `/${n}.png`);
const image = root.querySelector('[data-testid="slide-image"]');
const counter = root.querySelector('[data-testid="slide-number"]');
const thumbs = [...root.querySelectorAll(".thumb")];
const slideError = root.querySelector('[data-testid="slide-error"]');
const slideErrorText = root.querySelector('[data-testid="slide-error-text"]');
const banner = root.querySelector('[data-testid="link-gone-banner"]');
const retry = root.querySelector('[data-testid="slide-retry"]');
const SLIDE_FAILED = "This slide could not be loaded. The link may have been revoked or expired.";
const LINK_GONE = "This link is no longer active. Ask the presenter for a new one.";
let gone = false;
let heartbeat = null;

function newKey() {
  // crypto.randomUUID exists only in secure contexts; getRandomValues works everywhere.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

let current = 1;
let stayKey = newKey();
let visibleMs = 0;
let visibleSince = document.visibilityState === "visible" ? performance.now() : null;

function stayTotal() {
  return visibleMs + (visibleSince === null ? 0 : performance.now() - visibleSince);
}

function report() {
  if (gone || !visitKey) return; // nothing to record once the link is gone, nor in the owner's preview
  const body = JSON.stringify({ visit: visitKey, view: stayKey, slide: current, visible_ms: Math.round(stayTotal()) });
  // text/plain keeps the beacon a "simple" request; the server parses the JSON body anyway.
  const blob = new Blob([body], { type: "text/plain" });
  if (!(navigator.sendBeacon && navigator.sendBeacon(trackUrl, blob))) {
    fetch(trackUrl, { method: "POST", body, keepalive: true, headers: { "Content-Type": "text/plain" } }).catch(() => {});
  }
}

// The address keeps the slide ("#slide-4"): a reload, or a link to a slide, opens there.
function slideFromHash() {
  const match = /^#slide-(\d+)$/.exec(window.location.hash);
  return match ? Number(match[1]) : null;
}

function show(n, opening = false) {
  if (!Number.isInteger(n) || n < 1 || n > count || n === current) return;
  if (!opening) report(); // close the stay on the slide we leave (at opening there was none yet)
  current = n;
  stayKey = newKey();
  visibleMs = 0;
  visibleSince = document.visibilityState === "visible" ? performance.now() : null;
  slideError.hidden = true;
  image.classList.remove("failed");
  image.src = slideUrl(n);
  image.alt = `Slide ${n}`;
  counter.textContent = String(n);
  history.replaceState(history.state, "", `#slide-${n}`);
  thumbs.forEach((t) => t.classList.toggle("current", Number(t.dataset.slide) === n));
  thumbs[n - 1]?.scrollIntoView({ block: "nearest", inline: "nearest" });
  if (n < count && !gone) new Image().src = slideUrl(n + 1);
  report(); // open the new stay at once so even a short look is recorded
  document.dispatchEvent(new CustomEvent("deck:slide", { detail: { slide: n } }));
}

// ---- a slide that does not load, and a link that is no longer active ---------------------------

function linkGone(message) {
  if (!gone) {
    gone = true;
    clearInterval(heartbeat);
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {}); // the banner is outside the stage
    document.dispatchEvent(new CustomEvent("deck:link-gone", { detail: { message: message || LINK_GONE } }));
  }
  banner.textContent = message || LINK_GONE;
  banner.hidden = false;
  retry.hidden = true; // a revoked or expired link will not come back
}

async function slideFailed() {
  const failedUrl = image.currentSrc || image.src;
  image.classList.add("failed");
  slideErrorText.textContent = SLIDE_FAILED;
  slideError.hidden = false;
  // Ask why: a revoked or expired link answers 410 for its slides.
  try {
    const response = await fetch(failedUrl, { method: "HEAD", cache: "no-store" });
    if (response.status === 410) linkGone(LINK_GONE);
  } catch (e) { /* offline: the message above still applies */ }
}

image.addEventListener("error", slideFailed);
image.addEventListener("load", () => {
  image.classList.remove("failed");
  slideError.hidden = true;
});
retry.addEventListener("click", () => {
  slideError.hidden = true;
  const again = new URL(slideUrl(current), window.location.href);
  again.searchParams.set("retry", String(Date.now()));
  image.src = again.href;
});
thumbs.forEach((t) => {
  t.querySelector("img")?.addEventListener("error", () => t.classList.add("broken"));
});

root.querySelector('[data-testid="next-slide"]').addEventListener("click", () => show(current + 1));
root.querySelector('[data-testid="prev-slide"]').addEventListener("click", () => show(current - 1));
thumbs.forEach((t) => t.addEventListener("click", () => show(Number(t.dataset.slide))));

// ---- full screen: the slide alone (button or F; Esc or F again leaves) ----------------------------

const stage = root.querySelector(".stage");
const fullscreenButton = root.querySelector('[data-testid="fullscreen"]');

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else stage.requestFullscreen().catch(() => {}); // refused (an iframe without permission): nothing changes
}

if (document.fullscreenEnabled && stage.requestFullscreen) {
  fullscreenButton.hidden = false;
  fullscreenButton.addEventListener("click", toggleFullscreen);
  document.addEventListener("fullscreenchange", () => {
    const on = document.fullscreenElement === stage;
    fullscreenButton.setAttribute("aria-pressed", String(on));
    fullscreenButton.textContent = on ? "Exit full screen" : "Full screen";
  });
}

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea, select, [contenteditable]")) return;
  if ((event.key === "f" || event.key === "F") && !event.ctrlKey && !event.metaKey && !event.altKey
      && !fullscreenButton.hidden) {
    event.preventDefault();
    toggleFullscreen();
    return;
  }
  const moves = { ArrowRight: 1, ArrowDown: 1, PageDown: 1, " ": 1, ArrowLeft: -1, ArrowUp: -1, PageUp: -1 };
  if (event.key in moves) {
    event.preventDefault();
    show(current + moves[event.key]);
  } else if (event.key === "Home") {
    show(1);
  } else if (event.key === "End") {
    show(count);
  }
});

let touchX = null;
root.addEventListener("touchstart", (e) => { touchX = e.changedTouches[0].clientX; }, { passive: true });
root.addEventListener("touchend", (e) => {
  if (touchX === null) return;
  const dx = e.changedTouches[0].clientX - touchX;
  touchX = null;
  if (Math.abs(dx) > 50) show(current + (dx < 0 ? 1 : -1));
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    if (visibleSince !== null) visibleMs += performance.now() - visibleSince;
    visibleSince = null;
    report();
  } else if (visibleSince === null) {
    visibleSince = performance.now();
  }
});
window.addEventListener("pagehide", report);
heartbeat = setInterval(() => { if (document.visibilityState === "visible") report(); }, heartbeatMs);

window.addEventListener("hashchange", () => {
  const n = slideFromHash();
  if (n !== null && n >= 1 && n <= count) show(n);
  else history.replaceState(history.state, "", `#slide-${current}`); // no such slide: the address says where we are
});

window.deckViewer = { show, current: () => current, linkGone };
const opening = slideFromHash();
if (opening !== null && opening > 1 && opening <= count) {
  show(opening, true); // opens the first stay on that slide: slide 1 was never really seen
} else {
  if (opening !== null && opening !== 1) history.replaceState(history.state, "", "#slide-1"); // no such slide
  if (image.complete && image.naturalWidth === 0 && image.getAttribute("src")) slideFailed(); // failed before this ran
  report();
}
