"""`deckchat compare`: the same scripted questions through several models, side by side, into a report."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from flask import current_app

from .base import emit, fail, main


@main.command("compare")
@click.option("--models", "models_csv", required=True, help="Comma-separated registry names, hub ids or folders.")
@click.option("--script", "script_path", type=click.Path(dir_okay=False), default=None,
              help="Comparison script (YAML); default: the shipped example, an investor questioning the CEO.")
@click.option("--deck", "deck_id", type=int, default=None,
              help="Retrieval from this deck supplies the context (the same for every model).")
@click.option("--replay", is_flag=True, help="Ask the questions investors asked the deck's assistant (needs --deck).")
@click.option("--limit", type=int, default=20, show_default=True, help="At most this many replayed questions.")
@click.option("--runs", type=click.IntRange(1, 100), default=None, help="Runs per model (default: the script's).")
@click.option("--load-format", type=click.Choice(["auto", "dummy"]), default="auto",
              help="dummy: the architecture's config with random weights.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present).")
@click.option("--dtype", default=None, help="float16, bfloat16, float32 (default: the model's on GPU).")
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=None)
@click.option("--preset-for", multiple=True, metavar="MODEL=PRESET", help="A model's generation preset.")
@click.option("--keep-prompts", is_flag=True, help="Store every fitted prompt in the report.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the report.")
@click.option("--json", "as_json", is_flag=True)
def compare_cmd(models_csv: str, script_path: str | None, deck_id: int | None, replay: bool, limit: int,
                runs: int | None, load_format: str, device: str | None, dtype: str | None,
                max_new_tokens: int | None, preset_for: tuple[str, ...], keep_prompts: bool, out_dir: str,
                as_json: bool) -> None:
    """Run a comparison script through each model in turn; write report.json and report.html to --out."""
    from ..ml.compare import CompareOptions, fixed_contexts, parse_presets, print_progress, run_comparison  # noqa: PLC0415
    from ..ml.compare_report import write_report  # noqa: PLC0415
    from ..ml.compare_script import ScriptError, load_script  # noqa: PLC0415

    models = [m.strip() for m in models_csv.split(",") if m.strip()]
    if not models:
        fail("name at least one model with --models")
    try:
        script = load_script(script_path)
        options = CompareOptions(runs=runs, load_format=load_format, device=device, dtype=dtype,
                                 max_new_tokens=max_new_tokens, presets=parse_presets(list(preset_for)),
                                 keep_prompts=keep_prompts)
    except ScriptError as exc:
        fail(str(exc))
    deck_id = deck_id or script.deck
    if replay and deck_id is None:
        fail("--replay needs --deck")
    content, title = None, None
    if deck_id is not None:
        content, title, script = _deck_context(deck_id, script, replay, limit)
    contexts = fixed_contexts(script, content, Path(current_app.instance_path) / "indexes",
                              current_app.config.get("EMBED_MODEL") or None)
    report = run_comparison(script, models, options, contexts=contexts, title=title, progress=print_progress())
    json_path, html_path = write_report(report, out_dir)
    summary = {"report_json": str(json_path), "report_html": str(html_path),
               "models": [{"name": m["name"], "status": m["status"], "error": m["error"], "failures": m["failures"],
                           **{k: m.get(k) for k in ("load_s", "memory_after_load_mib", "memory_peak_mib", "total_s")},
                           "ttft_s_median": m["summary"]["ttft_s_median"],
                           "tokens_per_s_median": m["summary"]["tokens_per_s_median"]} for m in report["models"]]}
    lines = [f"{m['name']}: {m['status']}" + (f" ({m['error']})" if m["error"] else
             f", load {m['load_s']} s, TTFT {m['ttft_s_median']} s, {m['tokens_per_s_median']} tokens/s")
             for m in summary["models"]]
    emit(summary, as_json, "\n".join([*lines, f"report: {html_path}"]))
    if not any(m["status"] == "ok" for m in report["models"]):
        fail("no model could be compared")


def _deck_context(deck_id: int, script, replay: bool, limit: int):
    """The deck's material and title, and the script with replayed questions when asked."""
    from ..domain.comparisons import replay_questions  # noqa: PLC0415
    from ..domain.decks import deck_content  # noqa: PLC0415
    from ..ml.compare_script import ScriptError, replay_script  # noqa: PLC0415
    from .decks import get_deck  # noqa: PLC0415

    deck = get_deck(deck_id)
    script = dataclasses.replace(script, deck=deck.id)
    if replay:
        try:
            script = replay_script(script, replay_questions(deck.id, limit), deck.id)
        except ScriptError as exc:
            fail(str(exc))
    return deck_content(deck.id), deck.title, script
