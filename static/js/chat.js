// Investor chat: posts the question with the slide on screen, reads the Server-Sent Events stream,
// and renders everything with textContent (nothing the model or a user wrote is parsed as HTML).

const panel = document.getElementById("chat");
const viewer = document.getElementById("viewer");
const log = panel.querySelector(".chat-log");
const form = panel.querySelector(".chat-form");
const input = panel.querySelector('[data-testid="chat-input"]');
const send = panel.querySelector('[data-testid="chat-send"]');
const csrf = document.querySelector('meta[name="csrf-token"]').content;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function currentSlide() {
  return window.deckViewer ? window.deckViewer.current() : 1;
}

function sourceLabel(source) {
  if (source.slide) return `Slide ${source.slide}`;
  if (source.source.startsWith("faq:")) return `FAQ: ${source.source.slice(4)}`;
  if (source.source.startsWith("doc:")) return source.source.slice(4).replace("#", " › ");
  return source.source;
}

function renderSources(item, sources) {
  if (!sources.length) return;
  const list = el("div", "chat-sources");
  list.append(el("span", "muted", "Sources:"));
  for (const source of sources) {
    const chip = el("button", "chip", sourceLabel(source));
    chip.type = "button";
    chip.dataset.testid = "chat-source";
    chip.dataset.source = source.source;
    if (source.slide) {
      chip.dataset.slide = String(source.slide);
      chip.title = `Show slide ${source.slide}`;
      chip.addEventListener("click", () => window.deckViewer.show(source.slide));
    } else {
      chip.disabled = true;
    }
    list.append(chip);
  }
  item.append(list);
}

function renderFeedback(item, exchangeId) {
  const bar = el("div", "chat-feedback");
  bar.append(el("span", "muted", "Was this helpful?"));
  for (const [value, label, testid] of [[1, "Yes", "feedback-up"], [-1, "No", "feedback-down"]]) {
    const button = el("button", "feedback-button", label);
    button.type = "button";
    button.dataset.testid = testid;
    button.setAttribute("aria-label", value > 0 ? "Helpful" : "Not helpful");
    button.addEventListener("click", async () => {
      const url = panel.dataset.feedbackUrl.replace(/\/0\/feedback$/, `/${exchangeId}/feedback`);
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ visit: viewer.dataset.visit, value }),
      });
      if (response.ok) {
        bar.replaceChildren(el("span", "muted", value > 0 ? "Thanks!" : "Thanks — the presenter will see this."));
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

async function ask(question) {
  const slide = currentSlide();
  const item = el("li", "chat-turn");
  item.append(el("p", "chat-question", question));
  const answer = el("p", "chat-answer pending");
  answer.dataset.testid = "chat-answer";
  item.append(answer);
  log.append(item);
  log.scrollTop = log.scrollHeight;
  send.disabled = true;
  try {
    const response = await fetch(panel.dataset.askUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
      body: JSON.stringify({ question, slide, visit: viewer.dataset.visit }),
    });
    if (!response.ok) {
      let message = `The assistant could not answer (${response.status}).`;
      try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
      answer.textContent = message;
      answer.classList.add("error");
      return;
    }
    for await (const { event, data } of sseEvents(response)) {
      if (event === "delta") {
        answer.textContent += data.text;
        log.scrollTop = log.scrollHeight;
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
    send.disabled = false;
    log.scrollTop = log.scrollHeight;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question) return;
  input.value = "";
  ask(question);
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});
