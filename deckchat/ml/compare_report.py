"""The comparison report: `report.json` (schema below) and a self-contained `report.html`.

report.json, schema "deckchat.compare/1":
  created_at, total_s, device {device, name, torch, transformers, memory_metric, memory_label, ...},
  options {runs, load_format, device, dtype, max_new_tokens, seed}, script {name, source, template, persona,
  examples, accumulate, preset, presets, runs, max_new_tokens, questions [{text, slide}], ...},
  questions [{index, text, slide, context: [{source, text, score}], answerable}],
  models [{name, status ("ok"|"failed"), error, preset, load_s, engine_setup_s, memory_after_load_mib,
           memory_peak_mib, total_s, failures, info, summary {ttft_s_median, tokens_per_s_median, ...},
           answers [{run, question_index, question, text, error, ttft_s, total_s, completion_tokens,
                     prompt_tokens, tokens_per_s, decode_tokens_per_s, finish_reason, history_turns, ...}]}]
The HTML is rendered with jinja2 alone (no Flask) and carries its CSS inline, so it opens anywhere.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = "deckchat.compare/1"


def build_report(script, models: list[str], options, runs: int, contexts: list[dict], results: list[dict],
                 device: dict, *, total_s: float, title: str | None = None) -> dict[str, Any]:
    """Assemble the JSON report of a finished comparison."""
    opts = {k: v for k, v in asdict(options).items() if k != "keep_prompts"}
    opts["runs"] = runs
    questions = [{"index": i, "text": q.text, "slide": q.slide, "context": c["passages"],
                  "answerable": c.get("answerable", True)} for i, (q, c) in enumerate(zip(script.questions, contexts))]
    return {"schema": SCHEMA, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "title": title or script.title, "total_s": round(total_s, 3), "device": device, "options": opts,
            "script": script.to_dict(), "model_names": list(models), "questions": questions, "models": results}


def answer_grid(report: dict) -> list[dict]:
    """Per question: its text, context and, per model, the answers of every run (for side-by-side views)."""
    grid = []
    for q in report["questions"]:
        cells = []
        for m in report["models"]:
            answers = sorted((a for a in m["answers"] if a["question_index"] == q["index"]), key=lambda a: a["run"])
            cells.append({"model": m["name"], "status": m["status"], "error": m["error"], "answers": answers})
        grid.append({**q, "cells": cells})
    return grid


def render_html(report: dict) -> str:
    """The self-contained HTML page of a report."""
    import jinja2  # noqa: PLC0415

    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    return env.from_string(_TEMPLATE).render(r=report, grid=answer_grid(report))


def write_report(report: dict, out: str | Path) -> tuple[Path, Path]:
    """Write report.json and report.html into `out` (created if needed); return both paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    html_path.write_text(render_html(report), "utf-8")
    return json_path, html_path


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Model comparison · {{ r.script.name }}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:1400px;margin:0 auto;padding:24px}
h1{font-size:1.5rem;margin:0 0 4px}h2{font-size:1.15rem;margin:28px 0 8px}
.muted{color:#667085}.card{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:16px;margin:12px 0}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border-bottom:1px solid #e2e5ea;padding:6px 8px;
text-align:left;vertical-align:top}th{background:#f0f2f5;font-weight:600}td.n{text-align:right;
font-variant-numeric:tabular-nums}
.grid{display:grid;gap:12px;grid-template-columns:repeat({{ r.models|length }},minmax(220px,1fr));overflow-x:auto}
.cell h3{font-size:.95rem;margin:0 0 6px}.answer{white-space:pre-wrap;margin:0 0 8px;padding:8px;
background:#f8f9fb;border-radius:6px}.meta{font-size:.8rem;color:#667085}
.failed{color:#b42318}.badge{font-size:.75rem;padding:1px 6px;border-radius:9px;background:#eef}
details{margin:6px 0}summary{cursor:pointer;color:#344054}pre{white-space:pre-wrap}
</style></head>
<body><main>
<h1>Model comparison: {{ r.script.name }}</h1>
<p class="muted">{{ r.created_at }} · {{ r.device.device }}{% if r.device.name %} ({{ r.device.name }}){% endif %}
 · torch {{ r.device.torch }} · transformers {{ r.device.transformers }} · load format {{ r.options.load_format }}
 · {{ r.options.runs }} run{{ 's' if r.options.runs != 1 }} per model · template {{ r.script.template }}
 · {{ 'answers accumulate as a conversation' if r.script.accumulate else 'each question stands alone' }}
 · context: {{ 'retrieval from deck ' ~ r.script.deck if r.script.deck else ('the script\\'s material'
   if r.script.material else 'none') }} (the same for every model)</p>

<h2>Models</h2>
<table>
<thead><tr><th>Model</th><th>Status</th><th>Preset</th><th>Load s</th><th>Memory after load MiB</th>
<th>Peak MiB</th><th>TTFT s (median)</th><th>Tokens/s (median)</th><th>Total s</th><th>Failures</th></tr></thead>
<tbody>{% for m in r.models %}
<tr><td>{{ m.name }}{% if m.get('info') %} <span class="meta">{{ m.info.architecture }}, {{ m.info.params_millions }} M
 params, {{ m.info.dtype }}</span>{% endif %}</td>
<td class="{{ 'failed' if m.status != 'ok' }}">{{ m.status }}{% if m.error %}: {{ m.error }}{% endif %}</td>
<td>{{ m.preset }}</td><td class="n">{{ m.get('load_s')|num }}</td>
<td class="n">{{ m.get('memory_after_load_mib')|num(1) }}</td><td class="n">{{ m.get('memory_peak_mib')|num(1) }}</td>
<td class="n">{{ m.summary.ttft_s_median|num(3) }}</td><td class="n">{{ m.summary.tokens_per_s_median|num(1) }}</td>
<td class="n">{{ m.total_s|num(1) }}</td><td class="n">{{ m.failures }}</td></tr>
{% endfor %}</tbody></table>
<p class="meta">Memory: {{ r.device.memory_label }}. TTFT: from submitting the prompt to the first generated
token. Tokens/s: generated tokens over the whole answer time. Total: load, set-up and every answer.</p>

{% for q in grid %}
<section class="card">
<h2>Question {{ q.index + 1 }}: {{ q.text }}{% if q.slide %} <span class="badge">slide {{ q.slide }}</span>{% endif %}</h2>
{% if q.context %}<details><summary>Context given to every model ({{ q.context|length }} passage{{ 's' if
 q.context|length != 1 }}{{ '' if q.answerable else '; retrieval judged it insufficient' }})</summary>
{% for c in q.context %}<p><strong>[{{ c.source }}]</strong> {{ c.text }}</p>{% endfor %}</details>{% endif %}
<div class="grid">{% for cell in q.cells %}
<div class="cell"><h3>{{ cell.model }}</h3>
{% if cell.status != 'ok' and not cell.answers %}<p class="failed">Not answered: {{ cell.error }}</p>{% endif %}
{% for a in cell.answers %}
{% if a.error %}<p class="answer failed">Run {{ a.run + 1 }} failed: {{ a.error }}</p>
{% else %}<p class="answer">{{ a.text or '(empty answer)' }}</p>
<p class="meta">run {{ a.run + 1 }} · {{ a.completion_tokens }} tokens · TTFT {{ a.ttft_s|num(3) }} s ·
 {{ a.tokens_per_s|num(1) }} tokens/s · {{ a.total_s|num(2) }} s · {{ a.finish_reason }}{% if a.get('history_turns')
 %} · {{ a.history_turns }} earlier turn{{ 's' if a.history_turns != 1 }} in context{% endif %}{% if
 a.get('dropped_history') or a.get('dropped_context') %} · left out to fit the model: {{ a.dropped_history }} turn(s),
 {{ a.dropped_context }} passage(s){% endif %}</p>{% endif %}
{% endfor %}</div>
{% endfor %}</div>
</section>
{% endfor %}

<details class="card"><summary>Script</summary><pre>{{ r.script|tojson(indent=2) }}</pre></details>
</main></body></html>
"""
