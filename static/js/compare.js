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
