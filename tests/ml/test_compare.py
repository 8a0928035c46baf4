"""Model comparison on two tiny models built in the test: report shape, accumulation, fixed retrieval, failures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deckchat.domain.content import DeckContent, FaqEntry, SlideContent
from deckchat.ml.compare import CompareOptions, fixed_contexts, run_comparison
from deckchat.ml.compare_report import SCHEMA, render_html, write_report
from deckchat.ml.compare_script import (
    CompareScript,
    Question,
    ScriptError,
    build_prompt,
    load_script,
    parse_script,
    plain_fit,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
name: three questions
title: Acme
persona: You are the CEO of {title}.
template: long
examples:
  - question: Who are you?
    answer: The CEO.
material: Acme builds warehouse robots. Revenue is 2.1M ARR.
questions:
  - What does your app do?
  - How much money will we make?
  - How much have you raised?
accumulate: true
preset: greedy
presets: {t5: sampling}
runs: 2
max_new_tokens: 6
"""
METRICS = ("ttft_s", "tokens_per_s", "total_s", "completion_tokens", "prompt_tokens", "finish_reason")


@pytest.fixture(scope="module")
def two_models(tiny_models):
    return [tiny_models("gpt2"), tiny_models("t5")]


@pytest.fixture(scope="module")
def report(two_models):
    events: list[dict] = []
    result = run_comparison(parse_script(SCRIPT), two_models, CompareOptions(device="cpu", keep_prompts=True),
                            progress=events.append)
    return result, events


def test_report_holds_every_question_model_and_run_with_metrics(report, two_models, tmp_path):
    result, events = report
    assert result["schema"] == SCHEMA and result["model_names"] == two_models
    assert [q["text"] for q in result["questions"]] == ["What does your app do?", "How much money will we make?",
                                                        "How much have you raised?"]
    assert result["device"]["memory_metric"] == "rss_growth" and "CPU" in result["device"]["memory_label"]
    for entry in result["models"]:
        assert entry["status"] == "ok" and entry["failures"] == 0, entry["error"]
        for key in ("load_s", "memory_after_load_mib", "memory_peak_mib", "total_s", "engine_setup_s"):
            assert entry[key] is not None, key
        pairs = sorted((a["run"], a["question_index"]) for a in entry["answers"])
        assert pairs == [(r, q) for r in range(2) for q in range(3)]
        for answer in entry["answers"]:
            assert answer["error"] is None
            assert all(answer[k] is not None for k in METRICS), answer
        assert entry["summary"]["ttft_s_median"] is not None and entry["summary"]["ok"] == 6
    assert [m["preset"] for m in result["models"]] == ["greedy", "sampling"]  # per-model preset by folder name
    assert events[-1]["phase"] == "done" and events[-1]["done"] == events[-1]["total"] == 12
    assert [e["phase"] for e in events].count("load") == 2
    json_path, html_path = write_report(result, tmp_path / "out")
    assert json.loads(json_path.read_text())["models"][0]["answers"]
    html = html_path.read_text()
    assert "How much have you raised?" in html and Path(two_models[1]).as_posix() in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")  # self-contained


def test_answers_accumulate_as_a_conversation_within_a_run(report):
    result, _ = report
    gpt2 = result["models"][0]
    by_key = {(a["run"], a["question_index"]): a for a in gpt2["answers"]}
    first, second, third = (by_key[(0, i)] for i in range(3))
    assert first["history_turns"] == 0 and second["history_turns"] == 1 and third["history_turns"] == 2
    assert f"Question: What does your app do?\nAnswer: {first['text']}\n\nQuestion: How much money" in third["prompt"]
    assert by_key[(1, 0)]["history_turns"] == 0  # each run is a new conversation
    t5 = {(a["run"], a["question_index"]): a for a in result["models"][1]["answers"]}
    own = f"Question: What does your app do?\nAnswer: {t5[(0, 0)]['text']}\n\nQuestion: How much money"
    assert own in t5[(0, 2)]["prompt"]  # each model's history holds its own answers


def test_without_accumulation_each_question_stands_alone(two_models):
    script = parse_script(SCRIPT.replace("accumulate: true", "accumulate: false").replace("runs: 2", "runs: 1"))
    result = run_comparison(script, two_models[:1], CompareOptions(device="cpu", keep_prompts=True))
    assert all(a["history_turns"] == 0 for a in result["models"][0]["answers"])


CONTENT = DeckContent(
    11, "Acme", 1,
    slides=[SlideContent(1, "Acme", "Warehouse robots", "We founded Acme in 2021 to build picking robots."),
            SlideContent(2, "Traction", "Revenue", "Revenue is 2.1M ARR, growing 9% a month."),
            SlideContent(3, "Round", "Fundraising", "We raised a 1.5M seed and are raising a 6M Series A.")],
    faq=[FaqEntry("Who are the founders?", "Two robotics engineers.")],
)


def test_retrieval_is_computed_once_and_is_the_same_for_every_model(two_models, tmp_path, monkeypatch):
    from deckchat.ml import retrieval
    from deckchat.ml.index import build_index

    build_index(CONTENT, tmp_path)
    script = parse_script(SCRIPT.replace("runs: 2", "runs: 1"))
    calls = []
    real = retrieval.retrieve
    monkeypatch.setattr(retrieval, "retrieve", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    contexts = fixed_contexts(script, CONTENT, tmp_path)
    assert calls == [q.text for q in script.questions]
    assert any(p["source"] == "slide:3" for p in contexts[2]["passages"])
    monkeypatch.setattr(retrieval, "retrieve", lambda *a, **k: pytest.fail("retrieval ran again"))
    result = run_comparison(script, two_models, CompareOptions(device="cpu", keep_prompts=True), contexts=contexts,
                            title="Acme")
    assert result["questions"][2]["context"] == contexts[2]["passages"]
    for entry in result["models"]:
        prompt = next(a["prompt"] for a in entry["answers"] if a["question_index"] == 2)
        for passage in contexts[2]["passages"]:
            assert f"[{passage['source']}]" in prompt


def test_a_model_that_fails_to_load_is_reported_not_fatal(tiny_models, tmp_path):
    script = parse_script(SCRIPT.replace("runs: 2", "runs: 1"))
    missing = str(tmp_path / "no-such-model")
    result = run_comparison(script, [missing, tiny_models("gpt2")], CompareOptions(device="cpu"))
    broken, ok = result["models"]
    assert broken["status"] == "failed" and broken["error"] and broken["failures"] == 1 and broken["answers"] == []
    assert ok["status"] == "ok" and len(ok["answers"]) == 3
    assert "Not answered" in render_html(result)


def test_script_parsing_and_the_shipped_example():
    example = load_script()
    assert [q.text for q in example.questions] == ["What does your app do?", "How much money will we make?",
                                                   "How exactly does it work?", "How much have you raised?"]
    assert example.accumulate and example.template == "long" and example.examples and example.source == "example"
    assert parse_script("questions:\n  - text: Why?\n    slide: 3").questions == [Question("Why?", 3)]
    for bad, message in [("questions: []", "no questions"), ("questions: [a]\ncolour: red", "unknown key"),
                         ("questions: [a]\npreset: wild", "unknown preset"), ("questions: [a]\nruns: 0", "runs"),
                         ("questions: [a]\ntemplate: medium", "template"), ("- a\n- b", "mapping"),
                         ("questions: [a\n", "YAML")]:
        with pytest.raises(ScriptError, match=message):
            parse_script(bad)


def test_short_template_leaves_out_the_examples():
    words = lambda text: len(text.split())  # noqa: E731
    script = parse_script(SCRIPT)
    long = build_prompt(script, "Why?", [], [], words, 1000, chat=False)
    short = build_prompt(parse_script(SCRIPT.replace("template: long", "template: short")), "Why?", [], [], words,
                         1000, chat=False)
    assert "Who are you?" in long.text and "Who are you?" not in short.text
    assert long.text.startswith("You are the CEO of Acme.")


@pytest.mark.parametrize("chat", [False, True])
def test_the_langchain_free_fitting_matches_the_chains(chat):
    from deckchat.ml.prompts import ContextBlock, PromptParts, fit_prompt

    context = [{"source": f"slide:{i}", "text": f"Passage {i} " * 20, "score": 1.0 / i} for i in range(1, 4)]
    examples = [("What do you do?", "Robots."), ("Why now?", "Labour is scarce.")]
    history = [(f"Question {i}?", "An answer " * 15) for i in range(4)]
    words = lambda text: len(text.split())  # noqa: E731
    parts = PromptParts("You are the CEO.", "How much have you raised?",
                        [ContextBlock(c["source"], c["text"], c["score"]) for c in context], examples, history)
    for budget in (1000, 150, 60, 25):
        theirs = fit_prompt(parts, words, budget, chat=chat)
        ours = plain_fit("You are the CEO.", "How much have you raised?", context, examples, history, words, budget,
                         chat)
        assert (ours.text, ours.messages, ours.tokens) == (theirs.text, theirs.messages, theirs.tokens), budget
        assert (ours.dropped_history, ours.dropped_context, ours.dropped_examples) == (
            theirs.dropped_history, theirs.dropped_context, theirs.dropped_examples)


BLOCKED = ("flask", "flask_sqlalchemy", "flask_migrate", "sqlalchemy", "llama_index", "langchain_core", "langchain",
           "langchain_openai")


@pytest.mark.slow
def test_the_gpu_entry_point_needs_no_flask_database_llama_index_or_langchain(two_models, tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT.replace("runs: 2", "runs: 1"))
    code = textwrap.dedent(f"""
        import runpy, sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None  # `import name` now fails, as on the GPU machine
        sys.argv = ["compare", "--models", {",".join(two_models)!r}, "--script", {str(script)!r}, "--device", "cpu",
                    "--out", {str(tmp_path / "out")!r}]
        try:
            runpy.run_module("deckchat.ml.compare", run_name="__main__")
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        loaded = [n for n in {BLOCKED!r} if sys.modules.get(n) is not None]
        assert not loaded, loaded
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [m["status"] for m in report["models"]] == ["ok", "ok"]
    assert "[6/6]" in out.stderr  # progress lines


@pytest.mark.slow
def test_gpu_script_dry_run_on_tiny_models(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}  # the script's python3 may be one without torch
    out = subprocess.run(["bash", str(ROOT / "bench" / "compare_gpu.sh"), "--tiny", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, check=False, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["models"]) == 4 and all(m["status"] == "ok" for m in report["models"]), report["models"]
    assert (tmp_path / "report.html").exists()


def test_example_script_runs_by_default_from_the_command_line(tiny_models, tmp_path):
    from deckchat.ml.compare import main

    assert main(["--models", tiny_models("gpt2"), "--device", "cpu", "--runs", "1", "--max-new-tokens", "3",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["script"]["source"] == "example" and len(report["models"][0]["answers"]) == 4
    assert main(["--models", "x", "--preset-for", "oops", "--out", str(tmp_path)]) == 2


def test_script_dataclass_defaults_are_valid():
    script = CompareScript(name="x", questions=[Question("Why?")])
    assert script.preset_for("anything") == "sampling" and script.to_dict()["questions"] == [{"text": "Why?",
                                                                                               "slide": None}]
