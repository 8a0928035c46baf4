// Comparison page: follow a running comparison by polling its status, then reload to show the report.
const card = document.querySelector("[data-status-url]");

function show(state) {
  const bar = card.querySelector("[data-testid=compare-progress]");
  bar.max = Math.max(1, state.total || 1);
  bar.value = state.done || 0;
  card.querySelector("[data-testid=compare-done]").textContent = String(state.done || 0);
  card.querySelector("[data-testid=compare-total]").textContent = String(state.total || "?");
  card.querySelector("[data-testid=compare-status]").textContent = state.status;
  card.querySelector("[data-testid=compare-message]").textContent = state.message || "";
}

async function poll() {
  try {
    const response = await fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" } });
    if (response.ok) {
      const state = await response.json();
      show(state);
      if (state.status === "done" || state.status === "failed") {
        window.location.reload();
        return;
      }
    }
  } catch (err) {
    // The server may be restarting; keep trying.
  }
  window.setTimeout(poll, 1000);
}

if (card) window.setTimeout(poll, 500);

// Start form: real weights only work for models whose weights are on this machine (data-weights="1").
// Follow the chosen models with the weights setting until the owner picks one by hand.
const loadFormat = document.querySelector("[data-testid=compare-load-format]");
const modelBoxes = Array.from(document.querySelectorAll("[data-testid=compare-models] input[data-weights]"));
if (loadFormat && modelBoxes.length) {
  let chosenByHand = false;
  loadFormat.addEventListener("change", () => { chosenByHand = true; });
  const follow = () => {
    if (chosenByHand) return;
    const checked = modelBoxes.filter((box) => box.checked);
    if (!checked.length) return;
    loadFormat.value = checked.every((box) => box.dataset.weights === "1") ? "auto" : "dummy";
  };
  modelBoxes.forEach((box) => box.addEventListener("change", follow));
}
