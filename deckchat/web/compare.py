"""Owner pages for model comparisons: start one in the background, follow it, read the report, vote blind."""
from __future__ import annotations

import os

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, RadioField, SelectField, SelectMultipleField
from wtforms.validators import NumberRange
from wtforms.widgets import CheckboxInput, ListWidget

from ..domain import comparisons
from ..models import ComparisonRun, Deck
from . import compare_job
from .guards import owner_deck

bp = Blueprint("compare", __name__, url_prefix="/decks")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"  # the standalone page has no script


class CompareForm(FlaskForm):
    """A new comparison: models, questions, runs, load format, and the memory confirmation."""

    models = SelectMultipleField("Models", option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))
    source = RadioField("Questions", default="example", choices=[
        ("example", "The example script: an investor questions the CEO (four questions, one conversation)"),
        ("replay", "Replay the questions investors asked this deck's assistant")])
    runs = IntegerField("Runs per model", default=1, validators=[NumberRange(1, 5)])
    load_format = SelectField("Weights", default="auto", choices=[
        ("auto", "Real weights (the model must be on this machine)"),
        ("dummy", "Random weights of the same architecture: a speed and memory test, not answer quality")])
    confirm_memory = BooleanField("Load each compared model beside the live model")


class VoteForm(FlaskForm):
    """A blind vote: which answer is better."""

    winner = RadioField("Better answer", choices=[(w, w) for w in comparisons.WINNERS])


NO_WEIGHTS = "weights not on this machine: random weights only"


def model_names() -> list[str]:
    """Models an owner may compare: the live model, those the operator allows, then the registry."""
    from ..ml.models import REGISTRY  # noqa: PLC0415

    # Folders must be named by the operator: owners must not make the server probe arbitrary paths.
    extra = current_app.config.get("COMPARE_MODELS", "")
    names = [m.strip() for m in str(extra).split(",") if m.strip()]
    if current_app.config.get("ENGINE") in ("hf", "local") and current_app.config.get("MODEL"):
        names.insert(0, current_app.config["MODEL"])
    names += [n for n in REGISTRY if n not in names]
    return list(dict.fromkeys(names))


def weights_on_this_machine(names: list[str]) -> dict[str, bool]:
    """Whether each model's real weights are here (a local folder or the Hugging Face cache); nothing is fetched."""
    from ..ml.runtime import weights_available  # noqa: PLC0415

    return {n: weights_available(n) for n in names}


def short_name(name: str) -> str:
    return os.path.basename(name.rstrip("/")) or name


def model_choices(available: dict[str, bool] | None = None) -> list[tuple[str, str]]:
    """(name, label) of every model an owner may compare; the label says when only random weights can be used."""
    names = model_names()
    available = available if available is not None else weights_on_this_machine(names)
    return [(n, short_name(n) + ("" if available.get(n) else f" ({NO_WEIGHTS})")) for n in names]


def _form(available: dict[str, bool]) -> CompareForm:
    form = CompareForm()
    form.models.choices = model_choices(available)
    if not request.form and not any(available.values()):
        # Real weights would fail for every model: start from the test that can run here.
        form.load_format.data = "dummy"
    return form


@bp.route("/<int:deck_id>/compare")
@owner_deck
def index(deck: Deck):
    """The start form, what serves investors now, and this deck's comparisons."""
    available = weights_on_this_machine(model_names())
    return render_template("owner/compare.html", deck=deck, form=_form(available), available=available, no_weights=NO_WEIGHTS,
                           live=compare_job.live_engine(current_app),
                           runs=comparisons.list_runs(deck), replay_count=comparisons.count_replay_questions(deck.id),
                           busy=compare_job.is_running() or comparisons.active_run() is not None)


@bp.route("/<int:deck_id>/compare", methods=["POST"])
@owner_deck
def start(deck: Deck):
    """Start a comparison in the background (one at a time)."""
    available = weights_on_this_machine(model_names())
    form = _form(available)
    back = redirect(url_for("compare.index", deck_id=deck.id), 303)
    if not form.validate_on_submit():
        for errors in form.errors.values():
            flash(errors[0], "error")
        return back
    models = list(dict.fromkeys(form.models.data))
    if not models:
        flash("Choose at least one model.", "error")
        return back
    missing = [m for m in models if not available.get(m)]
    if form.load_format.data != "dummy" and missing:
        names = ", ".join(short_name(m) for m in missing)
        flash(f"Real weights of {names} are not on this machine, and this server does not download models: "
              f"choose “Random weights” for a speed and memory test, or ask the operator to put the model in a "
              f"local folder and list it in DECKCHAT_COMPARE_MODELS.", "error")
        return back
    live = compare_job.live_engine(current_app)
    if live["needs_confirmation"] and not form.confirm_memory.data:
        flash("Confirm that the compared models may share the GPU with the live model investors use.", "error")
        return back
    if form.source.data == "replay" and not comparisons.count_replay_questions(deck.id):
        flash("Nobody has asked this deck's assistant a question yet: there is nothing to replay.", "error")
        return back
    _clear_orphans()
    if compare_job.is_running() or comparisons.active_run() is not None:
        flash("A comparison is already running on this server; start yours when it has finished.", "error")
        return back
    run = comparisons.create_run(deck, models, form.source.data, {
        "runs": form.runs.data, "load_format": form.load_format.data, "memory_confirmed": bool(form.confirm_memory.data),
        "live": {k: live.get(k) for k in ("engine", "model", "device", "free_mib", "total_mib")}})
    if not compare_job.start(current_app._get_current_object(), run.id):  # noqa: SLF001 - the app for the thread
        comparisons.finish_run(run.id, error="another comparison started first")
        flash("A comparison is already running on this server.", "error")
        return back
    return redirect(url_for("compare.show", deck_id=deck.id, run_id=run.id), 303)


def _clear_orphans() -> None:
    """Fail rows whose job no longer beats (the server restarted while they ran)."""
    run = comparisons.active_run()
    if run is not None and not compare_job.is_running() and compare_job.stale(run):
        comparisons.fail_orphans()


def _run_or_404(deck: Deck, run_id: int) -> ComparisonRun:
    run = comparisons.get_run(deck, run_id)
    if run is None:
        abort(404, "No such comparison.")
    return run


@bp.route("/<int:deck_id>/compare/<int:run_id>")
@owner_deck
def show(deck: Deck, run_id: int):
    """Progress while it runs; then the answers side by side, the ratings and the way to vote."""
    from ..ml.compare_report import answer_grid  # noqa: PLC0415

    run = _run_or_404(deck, run_id)
    grid = answer_grid(run.report) if run.report else []
    return render_template("owner/compare_run.html", deck=deck, run=run, grid=grid,
                           ratings=comparisons.ratings(run) if run.report else [])


@bp.route("/<int:deck_id>/compare/<int:run_id>/status")
@owner_deck
def status(deck: Deck, run_id: int):
    """The comparison's progress as JSON (polled by the page)."""
    run = _run_or_404(deck, run_id)
    progress = run.progress or {}
    return jsonify(status=run.status, done=progress.get("done", 0), total=progress.get("total", 0),
                   model=progress.get("model"), message=progress.get("message", ""), error=run.error)


@bp.route("/<int:deck_id>/compare/<int:run_id>/report.json")
@owner_deck
def report_json(deck: Deck, run_id: int):
    """The report as JSON."""
    run = _run_or_404(deck, run_id)
    if not run.report:
        abort(404, "The comparison has no report yet.")
    return jsonify(run.report)


@bp.route("/<int:deck_id>/compare/<int:run_id>/report.html")
@owner_deck
def report_html(deck: Deck, run_id: int):
    """The self-contained HTML report (the same file `deckchat compare` writes)."""
    from ..ml.compare_report import render_html  # noqa: PLC0415

    run = _run_or_404(deck, run_id)
    if not run.report:
        abort(404, "The comparison has no report yet.")
    response = current_app.make_response(render_html(run.report))
    response.headers["Content-Security-Policy"] = REPORT_CSP
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f'attachment; filename="comparison-{run.id}.html"'
    return response


@bp.route("/<int:deck_id>/compare/<int:run_id>/vote")
@owner_deck
def vote(deck: Deck, run_id: int):
    """A blind ballot: two models' answers to one question, sides chosen at random, names hidden."""
    run = _run_or_404(deck, run_id)
    ballot = comparisons.ballot(run) if run.status == "done" else None
    if ballot is None:
        if len(run.models or []) < 2:
            flash("Blind voting compares the answers of two models; this comparison ran only one.", "warning")
        else:
            flash("There are no more pairs of answers to compare in this report.", "warning")
        return redirect(url_for("compare.show", deck_id=deck.id, run_id=run.id), 303)
    question = run.report["questions"][ballot.question_index]
    left = comparisons.answer_text(run.report, ballot.left_model, ballot.question_index, ballot.left_run)
    right = comparisons.answer_text(run.report, ballot.right_model, ballot.question_index, ballot.right_run)
    voted = comparisons.vote_count(run)
    return render_template("owner/compare_vote.html", deck=deck, run=run, ballot=ballot, question=question,
                           left=left, right=right, form=VoteForm(), voted=voted)


@bp.route("/<int:deck_id>/compare/<int:run_id>/vote/<int:ballot_id>", methods=["POST"])
@owner_deck
def cast(deck: Deck, run_id: int, ballot_id: int):
    """Record a blind vote, then offer the next pair."""
    run = _run_or_404(deck, run_id)
    ballot = comparisons.get_ballot(run, ballot_id)
    form = VoteForm()
    if ballot is None:
        abort(404, "No such ballot.")
    if not form.validate_on_submit():
        flash("Choose the better answer, or a tie.", "error")
    elif ballot.winner is None:
        comparisons.cast_vote(ballot, form.winner.data)
        flash("Vote recorded.")
    return redirect(url_for("compare.vote", deck_id=deck.id, run_id=run.id), 303)
