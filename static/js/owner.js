// Owner pages: ask before destructive actions (forms marked with data-confirm).
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

// Copy buttons (data-copy holds the text): the clipboard API where the page may use it; otherwise the text
// next to the button is selected, so the owner only has to press Ctrl+C / ⌘C. The button says what happened
// for two seconds, and a status region beside it tells screen readers.
function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

function copyByCommand(source) {
  // The old way, for pages without the clipboard API (plain http on a LAN address): copy a selection.
  if (!source) return false;
  selectText(source);
  try {
    return document.execCommand("copy");
  } catch (error) {
    return false;
  }
}

function report(button, status, copied) {
  button.textContent = copied ? "Copied" : "Selected";
  button.classList.toggle("copied", copied);
  if (status) status.textContent = copied ? "Link copied." : "Link selected: press Ctrl+C (⌘C on a Mac) to copy it.";
  clearTimeout(button.copyTimer);
  button.copyTimer = setTimeout(() => {
    button.textContent = "Copy";
    button.classList.remove("copied");
    if (status) status.textContent = "";
  }, 2000);
}

document.querySelectorAll("button[data-copy]").forEach((button) => {
  const row = button.closest(".share-url-row") || button.parentElement;
  const source = row && row.querySelector(".share-url");
  const status = row && row.querySelector("[data-copy-status]");
  button.addEventListener("click", async () => {
    const text = button.dataset.copy;
    let copied = false;
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch (error) {
        copied = false;
      }
    }
    if (!copied) copied = copyByCommand(source); // leaves the URL selected either way
    report(button, status, copied);
  });
});
