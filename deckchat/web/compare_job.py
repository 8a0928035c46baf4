"""The background comparison job of the serving process: one at a time, beside the live engine.

The job runs on a thread with its own app context and keeps its progress in the comparison's row, so any
request can poll it. Before each model loads it waits until the live engine has no questions queued or in
progress; it loads the compared models beside the live one (it never unloads the model investors use) after
the owner saw how much device memory is free.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

from flask import Flask

from ..domain import comparisons
from ..domain.decks import deck_content
from ..models import ComparisonRun, utcnow

log = logging.getLogger(__name__)
_job_lock = threading.Lock()  # one comparison at a time in this process
IDLE_POLL_S = 0.5
BEAT_S = 15.0       # the job writes a heartbeat this often...
STALE_AFTER_S = 90  # ...so a row without one for this long belongs to a job that is gone


def live_engine(app: Flask) -> dict[str, Any]:
    """What serves investors now, and the device memory a comparison would share with it."""
    from ..ml.runtime import EngineNotReady, get_runtime  # noqa: PLC0415

    runtime = get_runtime(app)
    state = runtime.state()
    info: dict[str, Any] = {"engine": state["engine"], "model": state["model"], "in_process": False,
                            "gpu": False, "needs_confirmation": False}
    try:
        import torch  # noqa: PLC0415

        info["gpu"] = torch.cuda.is_available()
    except ImportError:
        return info
    device = "cuda" if info["gpu"] else "cpu"
    if runtime.kind == "local" and not state["fallback"]:
        info["in_process"] = True
        try:
            engine, _ = runtime.get()
            device = getattr(getattr(engine, "loaded", None), "device", device)
        except EngineNotReady:
            info["loading"] = True
    info["device"] = device
    if info["gpu"]:
        free, total = torch.cuda.mem_get_info()
        info.update(gpu_name=torch.cuda.get_device_name(), free_mib=round(free / 2**20), total_mib=round(total / 2**20))
    info["needs_confirmation"] = info["in_process"] and str(device).startswith("cuda")
    return info


def stale(run: ComparisonRun) -> bool:
    """Whether an active row's job stopped beating (the server restarted while it ran)."""
    last = run.beat_at or run.created_at
    return (utcnow() - last).total_seconds() > STALE_AFTER_S


def is_running() -> bool:
    """Whether this process runs a comparison now."""
    return _job_lock.locked()


def start(app: Flask, run_id: int) -> bool:
    """Start the comparison on a background thread; False when another one is running."""
    if not _job_lock.acquire(blocking=False):
        return False
    try:
        thread = threading.Thread(target=_work, args=(app, run_id), name=f"deckchat-compare-{run_id}", daemon=True)
        thread.start()
    except BaseException:
        _job_lock.release()
        raise
    return True


def wait_until_idle(app: Flask, report, poll_s: float = IDLE_POLL_S) -> None:
    """Block until the live engine is loaded and has no question queued or being answered."""
    from ..ml.runtime import EngineNotReady, get_runtime  # noqa: PLC0415

    runtime = get_runtime(app)
    said = ""
    while True:
        try:
            engine, _ = runtime.get()
        except EngineNotReady:
            message = "waiting for the live assistant to finish loading"
        else:
            stats = engine.stats()
            busy = int(stats.get("waiting") or 0) + int(stats.get("active") or 0)
            if not busy:
                return
            message = f"waiting for the live assistant to answer {busy} investor question(s) first"
        if message != said:
            report(message)
            said = message
        time.sleep(poll_s)


def _work(app: Flask, run_id: int) -> None:
    stop = threading.Event()
    try:
        with app.app_context():
            comparisons.beat(run_id)
            threading.Thread(target=_beat, args=(app, run_id, stop), name="deckchat-compare-beat", daemon=True).start()
            try:
                _run(app, run_id)
            except Exception as exc:  # noqa: BLE001 - the page must show why it stopped
                log.exception("comparison %s failed", run_id)
                comparisons.finish_run(run_id, error=f"{type(exc).__name__}: {exc}")
    finally:
        stop.set()
        _job_lock.release()


def _beat(app: Flask, run_id: int, stop: threading.Event) -> None:
    """Write a heartbeat while the job lives, so a restarted server can tell its row is orphaned."""
    with app.app_context():
        while not stop.wait(BEAT_S):
            try:
                comparisons.beat(run_id)
            except Exception:  # noqa: BLE001 - a locked database now and then must not end the job
                log.warning("comparison %s: heartbeat not written", run_id, exc_info=True)


def _run(app: Flask, run_id: int) -> None:
    from ..extensions import db  # noqa: PLC0415
    from ..ml.compare import CompareOptions, fixed_contexts, run_comparison  # noqa: PLC0415
    from ..ml.compare_script import load_script, replay_script  # noqa: PLC0415
    from ..ml.indexing import index_root  # noqa: PLC0415

    run = db.session.get(ComparisonRun, run_id)
    settings = dict(run.settings or {})
    content = deck_content(run.deck_id)
    script = replace(load_script(), deck=run.deck_id)
    if run.source == "replay":
        questions = comparisons.replay_questions(run.deck_id, int(settings.get("limit") or 20))
        script = replay_script(script, questions, run.deck_id)
    models = list(run.models)

    def waiting(message: str) -> None:
        comparisons.set_progress(run_id, status="waiting", message=message)

    comparisons.set_progress(run_id, status="running", message="retrieving the context of every question",
                             total=len(models) * int(settings.get("runs") or script.runs) * len(script.questions))
    contexts = fixed_contexts(script, content, index_root(app.instance_path), app.config.get("EMBED_MODEL") or None)

    def before_load(model: str) -> None:
        wait_until_idle(app, waiting)
        comparisons.set_progress(run_id, status="running", message=f"loading {model}", model=model)

    def progress(event: dict) -> None:
        comparisons.set_progress(run_id, status="running", done=event["done"], total=event["total"],
                                 model=event["model"], message=event["message"])

    options = CompareOptions(runs=settings.get("runs"), load_format=settings.get("load_format") or "auto",
                             device=app.config.get("COMPARE_DEVICE") or None)
    report = run_comparison(script, models, options, contexts=contexts, title=content.title, progress=progress,
                            before_load=before_load)
    comparisons.finish_run(run_id, report=report)
