// Investor chat: posts the question with the slide on screen, reads the Server-Sent Events stream,
// and renders everything with textContent (nothing the model or a user wrote is parsed as HTML).
import { el, renderSources } from "./chat_sources.js";

const panel = document.getElementById("chat");
const viewer = document.getElementById("viewer");
const scroller = panel.querySelector(".chat-scroll");
const log = panel.querySelector(".chat-log");
const empty = panel.querySelector('[data-testid="chat-empty"]');
const form = panel.querySelector(".chat-form");
const input = panel.querySelector('[data-testid="chat-input"]');
const send = panel.querySelector('[data-testid="chat-send"]');
const count = panel.querySelector('[data-testid="chat-count"]');
const note = panel.querySelector('[data-testid="chat-note"]');
const status = panel.querySelector('[data-testid="chat-status"]');
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const maxChars = Number(input.getAttribute("maxlength")) || 1000;
const WARN_AT = 0.9; // the counter turns to a warning at 90% of the limit

let busy = false;       // a question is being answered
let waitUntil = 0;      // Date.now() before which the server has asked us not to send (429/503)
let closed = false;     // the link is gone or locked: no more questions from this page
let waitTimer = null;

function scrollToEnd() {
  scroller.scrollTop = scroller.scrollHeight;
}

function currentSlide() {
  return window.deckViewer ? window.deckViewer.current() : 1;
}

// ---- the send button, the counter and the paste note --------------------------------------------

function updateSend() {
  send.disabled = busy || closed || Date.now() < waitUntil;
}

function updateCount() {
  const length = input.value.length;
  count.textContent = `${length}/${maxChars}`;
  count.classList.toggle("near", length >= maxChars * WARN_AT && length < maxChars);
  count.classList.toggle("full", length >= maxChars);
  if (length < maxChars && note.dataset.kind === "limit") setNote("");
  else if (length >= maxChars && !note.textContent) {
    setNote(`Questions can be at most ${maxChars.toLocaleString()} characters.`, "limit");
  }
}

function setNote(text, kind = "") {
  note.textContent = text;
  note.dataset.kind = kind;
}

input.addEventListener("input", updateCount);
input.addEventListener("paste", (event) => {
  const pasted = (event.clipboardData || window.clipboardData)?.getData("text") || "";
  const kept = input.value.length - (input.selectionEnd - input.selectionStart);
  const room = Math.max(0, maxChars - kept);
  if (pasted.length > room) {
    // The browser keeps only what fits (maxlength); say so instead of cutting silently.
    requestAnimationFrame(() => {
      setNote(`Your paste was ${pasted.length.toLocaleString()} characters; only the first `
        + `${room.toLocaleString()} fit. Questions can be at most ${maxChars.toLocaleString()} characters.`,
      "paste");
      updateCount();
    });
  }
});

// ---- retry waits (429, 503) and a closed link (410, 403) ----------------------------------------

function waitFor(seconds) {
  waitUntil = Math.max(waitUntil, Date.now() + seconds * 1000);
  clearInterval(waitTimer);
  const tick = () => {
    const left = Math.ceil((waitUntil - Date.now()) / 1000);
    if (left <= 0 || closed) {
      clearInterval(waitTimer);
      waitTimer = null;
      if (!closed) {
        status.hidden = true;
        status.textContent = "";
      }
      updateSend();
      return;
    }
    status.hidden = false;
    status.classList.remove("gone");
    status.textContent = `You can ask again in ${left} second${left === 1 ? "" : "s"}.`;
    updateSend();
  };
  tick();
  waitTimer = setInterval(tick, 1000);
}

function closeChat(message) {
  closed = true;
  clearInterval(waitTimer);
  input.disabled = true;
  input.placeholder = "Questions are closed for this link.";
  panel.querySelectorAll('[data-testid="chat-example"]').forEach((b) => { b.disabled = true; });
  panel.querySelectorAll(".chat-examples, .chat-examples-label").forEach((node) => { node.hidden = true; });
  status.hidden = false;
  status.classList.add("gone");
  status.textContent = message;
  updateSend();
}

document.addEventListener("deck:link-gone", (event) => {
  if (!closed) closeChat(event.detail.message);
});

function retrySeconds(response, body) {
  const header = Number(response.headers.get("Retry-After"));
  const fromBody = Number(body && body.retry_after);
  const seconds = Number.isFinite(header) && header > 0 ? header : fromBody;
  return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : 0;
}

async function showHttpError(response, answer, question) {
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: a proxy's page */ }
  let message = (body && typeof body.error === "string" && body.error)
    || "The assistant could not answer right now. Please try again in a moment.";
  const code = response.status;
  if (code === 429 || code === 503) {
    // The message says why; the status line under the log counts down to when asking works again.
    answer.textContent = message;
    if (!input.value) {
      input.value = question; // keep the question, so asking again is one click
      updateCount();
    }
    waitFor(retrySeconds(response, body) || (code === 429 ? 60 : 5));
  } else if (code === 410) {
    answer.textContent = message;
    if (window.deckViewer && window.deckViewer.linkGone) window.deckViewer.linkGone(message);
    closeChat(message);
  } else if (code === 403) {
    answer.textContent = message;
    closeChat(message);
  } else {
    answer.textContent = message;
  }
  answer.classList.add("error");
}

function renderFeedback(item, exchangeId) {
  const bar = el("div", "chat-feedback");
  if (exchangeId === null || exchangeId === undefined) { // the owner's preview: nothing was stored to rate
    bar.append(el("span", "muted", "Preview: this answer is not logged."));
    item.append(bar);
    return;
  }
  bar.append(el("span", "muted", "Was this helpful?"));
  for (const [value, label, testid] of [[1, "Yes", "feedback-up"], [-1, "No", "feedback-down"]]) {
    const button = el("button", "feedback-button", label);
    button.type = "button";
    button.dataset.testid = testid;
    button.setAttribute("aria-label", value > 0 ? "Helpful" : "Not helpful");
    button.addEventListener("click", async () => {
      const url = panel.dataset.feedbackUrl.replace(/\/0\/feedback$/, `/${exchangeId}/feedback`);
      let response;
      try {
        response = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
          body: JSON.stringify({ visit: viewer.dataset.visit, value }),
        });
      } catch (e) {
        return;
      }
      if (response.ok) {
        bar.replaceChildren(el("span", "muted", value > 0 ? "Thanks!" : "Thanks — the presenter will see this."));
      } else if (response.status === 410) {
        let message = "This link is no longer active. Ask the presenter for a new one.";
        try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
        if (window.deckViewer && window.deckViewer.linkGone) window.deckViewer.linkGone(message);
        closeChat(message);
      }
    });
    bar.append(button);
  }
  item.append(bar);
}

async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      let data = "";
      for (const line of raw.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield { event, data: data ? JSON.parse(data) : {} };
    }
  }
}

function newTurn(question, answerText = "") {
  // One question and its answer in the log: the item and the answer's paragraph.
  if (empty) empty.hidden = true;
  const item = el("li", "chat-turn");
  item.append(el("p", "chat-question", question));
  const answer = el("p", "chat-answer", answerText);
  answer.dataset.testid = "chat-answer";
  item.append(answer);
  log.append(item);
  return { item, answer };
}

function restoreTurns() {
  // After a reload the visit goes on: show its chat so far as it was (feedback already given stays given).
  let turns = [];
  try {
    turns = JSON.parse(document.getElementById("chat-turns")?.textContent || "[]");
  } catch (e) { /* a damaged block: start with an empty log */ }
  for (const turn of turns) {
    const failed = turn.kind === "error"; // shown as it was live: what had come, then that it stopped, no sources
    const text = failed ? `${turn.answer || ""} The answer was interrupted.`.trim() : turn.answer;
    const { item, answer } = newTurn(turn.question, text);
    if (failed) answer.classList.add("error");
    if (!turn.answerable) item.classList.add("unanswered");
    if (!failed) renderSources(item, turn.sources || []);
    if (turn.feedback) {
      const bar = el("div", "chat-feedback");
      bar.append(el("span", "muted", turn.feedback > 0 ? "You found this helpful." : "You found this not helpful."));
      item.append(bar);
    } else if (turn.kind !== "error") {
      renderFeedback(item, turn.exchange);
    }
  }
  if (turns.length) scrollToEnd();
}

async function ask(question) {
  const slide = currentSlide();
  const { item, answer } = newTurn(question);
  answer.classList.add("pending");
  scrollToEnd();
  busy = true;
  updateSend();
  try {
    const response = await fetch(panel.dataset.askUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
      body: JSON.stringify({ question, slide, visit: viewer.dataset.visit }),
    });
    if (!response.ok) {
      await showHttpError(response, answer, question);
      return;
    }
    for await (const { event, data } of sseEvents(response)) {
      if (event === "delta") {
        answer.textContent += data.text;
        scrollToEnd();
      } else if (event === "done") {
        answer.textContent = data.text;
        if (!data.answerable) item.classList.add("unanswered");
        renderSources(item, data.sources || []);
        renderFeedback(item, data.exchange);
      } else if (event === "error") {
        answer.classList.add("error");
        answer.textContent += ` ${data.message}`;
      }
    }
  } catch (error) {
    answer.textContent = "The connection was lost before the answer finished. Please ask again.";
    answer.classList.add("error");
  } finally {
    answer.classList.remove("pending");
    busy = false;
    if (note.dataset.kind === "busy") setNote("");
    updateSend();
    scrollToEnd();
  }
}

function submitQuestion(text) {
  const question = text.trim();
  if (question && busy && !closed) {
    // Enter pressed while an answer streams: keep the text and say why nothing was sent.
    setNote("One question at a time: yours is kept here, send it when the answer above has finished.", "busy");
    return false;
  }
  if (!question || busy || closed || Date.now() < waitUntil) return false;
  input.value = "";
  setNote("");
  updateCount();
  ask(question);
  return true;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  submitQuestion(input.value);
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});
panel.querySelectorAll('[data-testid="chat-example"]').forEach((button) => {
  button.addEventListener("click", () => {
    const question = button.dataset.question || button.textContent;
    input.value = question; // shown in the box for a moment, then sent like a typed question
    updateCount();
    submitQuestion(question);
  });
});
restoreTurns();
updateCount();
