// The sources under an answer: slide chips that show the slide, and FAQ or document chips that open the
// passage the answer used. Everything is drawn with textContent.

let turnCount = 0; // each answer's passage region gets its own id

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function sourceLabel(source) {
  if (source.slide) return `Slide ${source.slide}`;
  if (source.source.startsWith("faq:")) return `FAQ: ${source.source.slice(4)}`;
  if (source.source.startsWith("doc:")) return source.source.slice(4).replace("#", " › ");
  return source.source;
}

function passageHeading(source) {
  if (source.source.startsWith("faq:")) return ["From the FAQ", source.source.slice(4)];
  if (source.source.startsWith("doc:")) return ["From a document", sourceLabel(source)];
  return ["Cited passage", sourceLabel(source)];
}

export function renderSources(item, sources) {
  if (!sources.length) return;
  turnCount += 1;
  const list = el("div", "chat-sources");
  list.append(el("span", "muted", "Sources:"));
  const passage = el("div", "chat-passage");
  passage.id = `chat-passage-${turnCount}`;
  passage.dataset.testid = "chat-passage";
  passage.hidden = true;
  passage.setAttribute("role", "region");
  let openChip = null;

  function close() {
    if (openChip) openChip.setAttribute("aria-expanded", "false");
    openChip = null;
    passage.hidden = true;
    passage.replaceChildren();
  }

  sources.forEach((source) => {
    const label = sourceLabel(source);
    const chip = el("button", "chip", label);
    chip.type = "button";
    chip.dataset.testid = "chat-source";
    chip.dataset.source = source.source;
    if (source.slide) {
      chip.dataset.slide = String(source.slide);
      chip.title = `Show slide ${source.slide}`;
      chip.addEventListener("click", () => window.deckViewer.show(source.slide));
    } else {
      chip.classList.add("chip-passage");
      chip.setAttribute("aria-expanded", "false");
      chip.setAttribute("aria-controls", passage.id);
      chip.title = "Show the cited passage";
      chip.addEventListener("click", () => {
        if (openChip === chip) {
          close();
          return;
        }
        close();
        openChip = chip;
        chip.setAttribute("aria-expanded", "true");
        passage.setAttribute("aria-label", `Passage cited from ${label}`);
        const [kind, title] = passageHeading(source);
        const head = el("div", "chat-passage-head");
        head.append(el("span", "chat-passage-kind", kind));
        const hide = el("button", "chat-passage-close", "Hide");
        hide.type = "button";
        hide.setAttribute("aria-label", "Hide the cited passage");
        hide.addEventListener("click", () => { close(); chip.focus(); });
        head.append(hide);
        const heading = el("p", "chat-passage-title", title);
        const text = source.passage
          ? el("blockquote", "chat-passage-text", source.passage)
          : el("p", "chat-passage-text muted", "The cited text is not available for this answer.");
        text.dataset.testid = "chat-passage-text";
        passage.replaceChildren(head, heading, text);
        passage.hidden = false;
        passage.scrollIntoView({ block: "nearest" });
      });
    }
    list.append(chip);
  });
  passage.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && openChip) {
      const chip = openChip;
      close();
      chip.focus();
    }
  });
  item.append(list, passage);
}
