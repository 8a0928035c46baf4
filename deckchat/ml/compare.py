"""Model comparison: the same scripted questions through several models, one model in memory at a time.

Each model is loaded with `models.load_model`, served by a `LocalEngine` (batch 1: the questions of a
conversation are sequential), asked every question of every run, then closed and freed before the next one
loads. Context is fixed before any model runs (the same retrieved passages for every model); with
`accumulate`, a model's own earlier answers in the run join the prompt as history. Per model: load time,
device memory after load and peak, time to first token, tokens/s, total time and failures; a model that fails
to load is reported, never fatal.

Free of Flask, SQLAlchemy, llama-index and LangChain on the path `python -m deckchat.ml.compare` takes, so
it runs on a bare GPU machine with torch, transformers, jinja2 and PyYAML.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare_script import CompareScript, ScriptError, build_prompt, load_script

Progress = Callable[[dict[str, Any]], None]


@dataclass
class CompareOptions:
    """How models are loaded and asked; None keeps the script's or the loader's choice."""

    runs: int | None = None
    load_format: str = "auto"           # "dummy": the architecture's config with random weights
    device: str | None = None           # default: cuda when present
    dtype: str | None = None            # default: the model's on GPU, float32 on CPU
    max_new_tokens: int | None = None
    presets: dict[str, str] = field(default_factory=dict)  # per-model overrides of the script's presets
    seed: int = 0                       # run r samples with seed + r, the same for every model
    timeout_s: float = 300.0            # per answer
    keep_prompts: bool = False          # store each fitted prompt in the report (large with long contexts)


def fixed_contexts(script: CompareScript, content: Any = None, index_root: Path | None = None,
                   embed_model: str | None = None) -> list[dict]:
    """The context of every question, computed once before any model runs: retrieval from the deck or the
    script's material. Items: {"passages": [{"source", "text", "score"}], "answerable"}."""
    if content is None:
        passages = [{"source": "script", "text": script.material, "score": 1.0}] if script.material else []
        return [{"passages": passages, "answerable": True} for _ in script.questions]
    from .retrieval import retrieve  # noqa: PLC0415 - llama-index; only comparisons on a deck need it

    out = []
    for q in script.questions:
        found = retrieve(content, q.text, index_root, k=script.retrieval_k, slide=q.slide, embed_model=embed_model,
                         rebuild=True)
        out.append({"passages": [{"source": h.source, "text": h.text, "score": round(h.score, 6)}
                                 for h in found.results], "answerable": found.answerable})
    return out


def run_comparison(script: CompareScript, models: list[str], options: CompareOptions | None = None, *,
                   contexts: list[dict] | None = None, title: str | None = None, progress: Progress | None = None,
                   before_load: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Ask every model every question of every run; return the report (see compare_report)."""
    from .compare_report import build_report  # noqa: PLC0415

    options = options or CompareOptions()
    contexts = contexts if contexts is not None else fixed_contexts(script)
    if len(contexts) != len(script.questions):
        raise ValueError("one context per question is needed")
    if not models:
        raise ValueError("name at least one model")
    runs = options.runs or script.runs
    state = {"done": 0, "total": len(models) * runs * len(script.questions)}
    notify = _notifier(progress, state, len(models))
    started = time.perf_counter()
    results = []
    for i, name in enumerate(models, 1):
        if before_load is not None:
            before_load(name)  # e.g. wait until the live engine is idle
        results.append(_run_model(name, i, script, contexts, options, runs, title, notify, state))
    notify("done", None, 0, f"finished {len(models)} models in {time.perf_counter() - started:.1f} s")
    return build_report(script, models, options, runs, contexts, results, device_info(options.device),
                        total_s=time.perf_counter() - started, title=title)


def _notifier(progress: Progress | None, state: dict, n_models: int):
    def notify(phase: str, model: str | None, index: int, message: str, **extra: Any) -> None:
        if progress is not None:
            progress({"phase": phase, "model": model, "model_index": index, "models": n_models,
                      "done": state["done"], "total": state["total"], "message": message, **extra})
    return notify


def _run_model(name: str, index: int, script: CompareScript, contexts: list[dict], options: CompareOptions,
               runs: int, title: str | None, notify, state: dict) -> dict[str, Any]:
    """Load, ask and free one model; every failure is recorded in its entry."""
    from .engine import GenerationRequest  # noqa: PLC0415
    from .models import get_preset, load_model  # noqa: PLC0415

    preset = options.presets.get(name) or options.presets.get(Path(name).name) or script.preset_for(name)
    entry: dict[str, Any] = {"name": name, "status": "ok", "error": None, "preset": preset, "answers": []}
    n_answers = runs * len(script.questions)
    device = _device(options.device)
    memory = _Memory(device)
    started = time.perf_counter()
    notify("load", name, index, f"loading {name}")
    engine = loaded = None
    try:
        get_preset(preset)
        loaded = load_model(name, device=options.device, dtype=options.dtype, load_format=options.load_format)
        entry["load_s"] = round(loaded.load_seconds, 3)
        entry["memory_after_load_mib"] = _mib(loaded.device_bytes_after_load)
        entry["info"] = loaded.info()
        memory.sample()
        engine, profile = _serve(loaded, options)
        entry["engine_setup_s"] = round(time.perf_counter() - started - loaded.load_seconds, 3)
        entry["engine_mode"] = engine.mode
        max_new = options.max_new_tokens or script.max_new_tokens
        budget = profile.max_input if profile.seq2seq else profile.max_input - max_new
        for run in range(runs):
            _seed(options.seed + run)
            history: list[tuple[str, str]] = []
            for qi, question in enumerate(script.questions):
                answer = {"run": run, "question_index": qi, "question": question.text, "text": "", "error": None}
                try:
                    prompt = build_prompt(script, question.text, contexts[qi]["passages"], history,
                                          profile.count_tokens, budget, profile.chat, title)
                    answer.update(history_turns=prompt.history_turns, dropped_history=prompt.dropped_history,
                                  dropped_context=prompt.dropped_context)
                    if options.keep_prompts:
                        answer["prompt"] = prompt.messages or prompt.text
                    result = engine.generate(GenerationRequest(
                        prompt=prompt.text, messages=prompt.messages, preset=preset, max_new_tokens=max_new,
                        timeout_s=options.timeout_s))
                    answer.update(_metrics(result))
                    if script.accumulate:
                        history.append((question.text, answer["text"]))
                except Exception as exc:  # noqa: BLE001 - one failed answer must not end the comparison
                    answer["error"] = f"{type(exc).__name__}: {exc}"
                memory.sample()
                entry["answers"].append(answer)
                state["done"] += 1
                notify("answer", name, index, _answer_line(name, run, runs, qi, len(script.questions), answer),
                       answer=answer)
    except Exception as exc:  # noqa: BLE001 - a model that cannot load or serve is reported, not fatal
        entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        state["done"] += n_answers - len(entry["answers"])
        notify("failed", name, index, f"{name} failed: {entry['error']}")
    finally:
        if engine is not None:
            engine.close()
        entry["memory_peak_mib"] = _mib(memory.peak()) if "load_s" in entry else None  # nothing loaded
        del engine, loaded
        _free(device)
        memory.stop()
    entry["total_s"] = round(time.perf_counter() - started, 3)
    entry["failures"] = (1 if entry["status"] == "failed" else 0) + sum(1 for a in entry["answers"] if a["error"])
    entry["summary"] = summarize(entry["answers"])
    if entry["status"] == "ok":
        notify("model_done", name, index, f"{name}: done in {entry['total_s']:.1f} s")
    return entry


def _serve(loaded: Any, options: CompareOptions):
    """A batch-1 engine over the loaded model and its fitting profile; raises if its set-up failed."""
    from .local import LocalEngine  # noqa: PLC0415
    from .runtime import profile_of  # noqa: PLC0415

    # No torch.compile here: each model is served only for a few questions, so compiling would dominate its time.
    engine = LocalEngine(loaded, max_batch=1, max_queue=4, timeout_s=options.timeout_s, compile=False)
    engine.ready.wait(timeout=600)
    if not engine.alive():
        engine.close()
        raise RuntimeError(f"the engine did not start: {engine._dead}")  # noqa: SLF001 - its own crash reason
    return engine, profile_of(engine)


def _metrics(result: Any) -> dict[str, Any]:
    """One answer's text and timings; tokens/s counts generated tokens over the whole answer time."""
    total, ttft, n = result.total_s, result.ttft_s, result.completion_tokens
    decode = (n - 1) / (total - ttft) if ttft is not None and n > 1 and total > ttft else None
    return {"text": result.text.strip(), "finish_reason": result.finish_reason, "prompt_tokens": result.prompt_tokens,
            "completion_tokens": n, "trimmed_tokens": result.trimmed_tokens,
            "ttft_s": None if ttft is None else round(ttft, 4), "total_s": round(total, 4),
            "tokens_per_s": round(n / total, 2) if total > 0 else None,
            "decode_tokens_per_s": None if decode is None else round(decode, 2)}


def summarize(answers: list[dict]) -> dict[str, Any]:
    """Medians and totals over a model's answers (failed answers count only as failures)."""
    ok = [a for a in answers if not a.get("error")]

    def median(key: str) -> float | None:
        values = [a[key] for a in ok if a.get(key) is not None]
        return round(statistics.median(values), 4) if values else None

    return {"answers": len(answers), "ok": len(ok), "ttft_s_median": median("ttft_s"),
            "tokens_per_s_median": median("tokens_per_s"), "decode_tokens_per_s_median": median("decode_tokens_per_s"),
            "answer_s_median": median("total_s"), "completion_tokens": sum(a.get("completion_tokens") or 0 for a in ok),
            "answers_s": round(sum(a.get("total_s") or 0 for a in ok), 3)}


def _answer_line(name: str, run: int, runs: int, qi: int, n_questions: int, answer: dict) -> str:
    where = f"{name} run {run + 1}/{runs} question {qi + 1}/{n_questions}"
    if answer["error"]:
        return f"{where}: failed ({answer['error']})"
    return f"{where}: {answer['completion_tokens']} tokens in {answer['total_s']:.2f} s"


# ---- devices and memory ----

def _device(device: str | None) -> str:
    import torch  # noqa: PLC0415

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def device_info(device: str | None = None) -> dict[str, Any]:
    """What ran the comparison, and what its memory figures measure."""
    import platform  # noqa: PLC0415

    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    device = _device(device)
    info: dict[str, Any] = {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
                            "python": platform.python_version()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(name=props.name, total_mib=_mib(props.total_memory), memory_metric="cuda_allocated",
                    memory_label="GPU memory allocated by PyTorch (MiB): after load, and the peak while answering")
    else:
        info.update(name=platform.processor() or platform.machine(), cpus=os.cpu_count(), memory_metric="rss_growth",
                    memory_label="CPU only: growth of the process's resident memory (RSS, MiB) over its level "
                                 "before the load, sampled; approximate, freed memory is not always returned")
    return info


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:  # Linux; elsewhere no CPU memory figures
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class _Memory:
    """Peak memory of one model: CUDA's own peak counter, or a sampling thread over the process RSS."""

    def __init__(self, device: str):
        import torch  # noqa: PLC0415

        self.cuda = device.startswith("cuda")
        self._peak = 0
        self._stop = threading.Event()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
            self.base = torch.cuda.memory_allocated(device)
            self.device = device
        else:
            self.base = _rss()
            # The peak of a CPU forward lasts milliseconds; sampling often enough to see it costs little.
            threading.Thread(target=self._sample_loop, name="deckchat-compare-rss", daemon=True).start()

    def _sample_loop(self) -> None:
        while not self._stop.wait(0.02):
            self.sample()

    def sample(self) -> None:
        """Record the current level (CPU; CUDA keeps its own peak)."""
        if not self.cuda:
            self._peak = max(self._peak, _rss() - self.base)

    def peak(self) -> int:
        """Peak bytes above the level before the load."""
        if self.cuda:
            import torch  # noqa: PLC0415

            return torch.cuda.max_memory_allocated(self.device) - self.base
        self.sample()
        return self._peak

    def stop(self) -> None:
        """End the sampling thread."""
        self._stop.set()


def _seed(seed: int) -> None:
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)  # also seeds every CUDA device


def _free(device: str) -> None:
    """Return a closed model's memory before the next model loads."""
    gc.collect()
    if device.startswith("cuda"):
        import torch  # noqa: PLC0415

        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# ---- command line (Flask-free) ----

def print_progress(stream=None) -> Progress:
    """A progress callback that prints one line per event (on stderr unless told otherwise)."""
    def show(event: dict[str, Any]) -> None:
        print(f"[{event['done']}/{event['total']}] {event['message']}", file=stream or sys.stderr, flush=True)
    return show


def parse_presets(items: list[str]) -> dict[str, str]:
    """MODEL=PRESET pairs from the command line."""
    out = {}
    for item in items:
        model, sep, preset = item.rpartition("=")
        if not sep or not model or not preset:
            raise ScriptError(f"--preset-for takes MODEL=PRESET, not {item!r}")
        out[model] = preset
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m deckchat.ml.compare`: the comparison without the app (no deck, no database)."""
    from .compare_report import write_report  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m deckchat.ml.compare", description=main.__doc__)
    parser.add_argument("--models", required=True, help="comma-separated registry names, hub ids or folders")
    parser.add_argument("--script", help="comparison script (YAML); default: the shipped investor example")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--load-format", choices=["auto", "dummy"], default="auto")
    parser.add_argument("--device")
    parser.add_argument("--dtype")
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--preset-for", action="append", default=[], metavar="MODEL=PRESET")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-prompts", action="store_true")
    parser.add_argument("--out", required=True, help="folder for report.json and report.html")
    args = parser.parse_args(argv)
    try:
        script = load_script(args.script)
        options = CompareOptions(runs=args.runs, load_format=args.load_format, device=args.device, dtype=args.dtype,
                                 max_new_tokens=args.max_new_tokens, presets=parse_presets(args.preset_for),
                                 seed=args.seed, keep_prompts=args.keep_prompts)
    except ScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    report = run_comparison(script, models, options, progress=print_progress())
    paths = write_report(report, args.out)
    print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0 if any(m["status"] == "ok" for m in report["models"]) else 1


if __name__ == "__main__":
    sys.exit(main())
