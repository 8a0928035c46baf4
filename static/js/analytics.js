// Analytics pages: draw each chart ([data-chart]) from its JSON data block with the locally served Plotly.
// Every chart's figures are also in a table on the page, so a failed chart loses nothing.
const config = JSON.parse(document.getElementById("chart-config")?.textContent || "{}");

document.querySelectorAll("[data-chart]").forEach((el) => {
  const data = document.getElementById(`chart-${el.dataset.chart}-data`);
  if (!data || !window.Plotly) return;
  const figure = JSON.parse(data.textContent);
  window.Plotly.newPlot(el, figure.data, figure.layout, config).then(() => {
    el.dataset.rendered = "true";
  });
});
