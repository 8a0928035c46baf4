"""Owner analytics: dashboards (deck, link, visitor), visit timelines, knowledge gaps, CSV and JSON."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Regexp

from ..domain.analytics import Scope, deck_analytics
from ..domain.exports import questions_csv, slides_csv, visits_csv
from ..domain.gaps import MAX_ANSWER, MAX_QUESTION, GapError, closed_gap_count, open_gap_count, open_gaps
from ..domain.notify import sweep
from ..domain.visit_history import deck_link, deck_visit, link_rows, question_rows, visit_rows, visit_timeline
from ..ml.gaps import answer_gap, group_by_meaning
from ..models import Deck
from .analytics_charts import CONFIG, funnel_figure, plotly_bundle, time_figure, timeline_figure
from .guards import owner_deck

bp = Blueprint("analytics", __name__)
PAGE = 50


def _render(template: str, **context) -> str:
    """Render an analytics page with Plotly's script URL and style guards."""
    _path, version, guards = plotly_bundle()
    plotly = {"url": url_for("analytics.plotly_js", v=version), "guards": guards}
    return render_template(template, plotly=plotly, chart_config=CONFIG, **context)


def _asked_scope(deck: Deck) -> Scope:
    """The scope asked for by ?link=ID and ?visitor=ID (404 when the link is not this deck's)."""
    link_id = request.args.get("link", type=int)
    if link_id is not None and deck_link(deck, link_id) is None:
        abort(404, "No such link.")
    return Scope(link_id=link_id, visitor_id=(request.args.get("visitor") or "")[:64] or None)


def _dashboard(deck: Deck, scope: Scope, link=None, visitor=None):
    """Render the dashboard for the whole deck, one link, or one visitor (named by one of their visits)."""
    page = max(1, request.args.get("page", 1, type=int))
    stats = deck_analytics(deck, scope)
    visits = visit_rows(deck, scope, limit=PAGE + 1, offset=(page - 1) * PAGE)
    return _render(
        "owner/analytics.html",
        deck=deck,
        stats=stats,
        link=link,
        visitor=visitor,
        visits=visits[:PAGE],
        page=page,
        more=len(visits) > PAGE,
        links=link_rows(deck) if not scope.narrowed else [],
        gaps=open_gap_count(deck.id),
        charts={"funnel": funnel_figure(stats), "time": time_figure(stats)},
    )


@bp.route("/decks/<int:deck_id>/analytics")
@owner_deck
def deck_page(deck: Deck):
    """The deck's dashboard: visits, drop-off, time per slide, questions, links and recent visits."""
    return _dashboard(deck, Scope())


@bp.route("/decks/<int:deck_id>/analytics/links/<int:link_id>")
@owner_deck
def link_page(deck: Deck, link_id: int):
    """The same dashboard for the visits through one share link."""
    link = deck_link(deck, link_id)
    if link is None:
        abort(404, "No such link.")
    return _dashboard(deck, Scope(link_id=link.id), link)


@bp.route("/decks/<int:deck_id>/analytics/visitors/<int:visit_id>")
@owner_deck
def visitor_page(deck: Deck, visit_id: int):
    """The same dashboard for every visit of the visitor who made this visit."""
    visit = deck_visit(deck, visit_id)
    if visit is None:
        abort(404, "No such visit.")
    return _dashboard(deck, Scope(visitor_id=visit.visitor_id), visitor=visit)


@bp.route("/decks/<int:deck_id>/analytics/visits/<int:visit_id>")
@owner_deck
def visit_page(deck: Deck, visit_id: int):
    """One visit as a timeline of slides and questions, with the visitor's other visits and figures."""
    visit = deck_visit(deck, visit_id)
    if visit is None:
        abort(404, "No such visit.")
    timeline = visit_timeline(visit)
    visitor = deck_analytics(deck, Scope(visitor_id=visit.visitor_id))
    return _render(
        "owner/analytics_visit.html",
        deck=deck,
        visit=visit,
        timeline=timeline,
        visitor=visitor,
        visitor_visits=visit_rows(deck, Scope(visitor_id=visit.visitor_id)),
        charts={"timeline": timeline_figure(timeline)},
    )


class GapAnswerForm(FlaskForm):
    """The owner's answer to a group of unanswered questions."""

    ids = HiddenField(validators=[DataRequired(), Regexp(r"^\d+(,\d+)*$")])
    question = StringField("Question for the FAQ", validators=[DataRequired(), Length(max=MAX_QUESTION)])
    answer = TextAreaField("Answer", validators=[DataRequired(), Length(max=MAX_ANSWER)])


@bp.route("/decks/<int:deck_id>/analytics/gaps", methods=["GET", "POST"])
@owner_deck
def gaps_page(deck: Deck):
    """Questions the bot could not answer, grouped; answering a group adds it to the FAQ and reindexes."""
    form = GapAnswerForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            flash(
                "The answer was not saved: " + "; ".join(e for es in form.errors.values() for e in es),
                "error",
            )
            return redirect(url_for("analytics.gaps_page", deck_id=deck.id), 303)
        try:
            item, warnings = answer_gap(
                deck,
                [int(i) for i in form.ids.data.split(",")],
                form.question.data,
                form.answer.data,
                current_app.instance_path,
                current_app.config.get("EMBED_MODEL") or None,
            )
        except GapError as exc:
            flash(str(exc), "error")
        else:
            for warning in warnings:
                flash(warning, "warning")
            flash(f"Added to the FAQ: “{item.question}”. The bot answers it from now on.")
        return redirect(url_for("analytics.gaps_page", deck_id=deck.id), 303)
    groups = group_by_meaning(open_gaps(deck.id), current_app.config.get("EMBED_MODEL") or None)
    return _render(
        "owner/analytics_gaps.html",
        deck=deck,
        groups=groups,
        closed=closed_gap_count(deck.id),
        csrf_form=form,
    )


def _csv(text: str, name: str) -> Response:
    """A CSV download."""
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


def _scoped_csv(deck: Deck, name: str, render) -> Response:
    """A CSV download of the scope asked for (?link=ID, ?visitor=ID): `render(scope)` makes its text."""
    scope = _asked_scope(deck)
    suffix = f"-link{scope.link_id}" if scope.link_id else ""
    return _csv(render(scope), f"deck{deck.id}{suffix}-{name}.csv")


@bp.route("/decks/<int:deck_id>/analytics/visits.csv")
@owner_deck
def visits_export(deck: Deck):
    """Every visit (or one link's, with ?link=ID) as CSV."""
    return _scoped_csv(deck, "visits", lambda scope: visits_csv(visit_rows(deck, scope)))


@bp.route("/decks/<int:deck_id>/analytics/slides.csv")
@owner_deck
def slides_export(deck: Deck):
    """Per-slide figures (or one link's, with ?link=ID) as CSV."""
    return _scoped_csv(deck, "slides", lambda scope: slides_csv(deck_analytics(deck, scope)))


@bp.route("/decks/<int:deck_id>/analytics/questions.csv")
@owner_deck
def questions_export(deck: Deck):
    """Every question asked (or one link's, with ?link=ID), with its answer, as CSV."""
    return _scoped_csv(deck, "questions", lambda scope: questions_csv(question_rows(deck, scope)))


@bp.route("/api/decks/<int:deck_id>/analytics")
@owner_deck
def deck_json(deck: Deck):
    """The dashboard's figures as JSON, for owners only (?link=ID or ?visitor=ID narrow them)."""
    return deck_analytics(deck, _asked_scope(deck))


@bp.route("/analytics/assets/plotly.min.js")
def plotly_js():
    """Plotly's browser bundle, from the installed Python package (no CDN)."""
    path, _version, _guards = plotly_bundle()
    return send_file(path, mimetype="text/javascript", max_age=365 * 24 * 3600)


_notifier_started = threading.Event()


@bp.before_app_request
def _start_notifier() -> None:
    # Started lazily in the serving process (never in the reloader parent or before gunicorn forks).
    if (
        _notifier_started.is_set()
        or not current_app.config.get("WEBHOOK_THREAD", True)
        or current_app.testing
    ):
        return
    _notifier_started.set()
    app = current_app._get_current_object()
    threading.Thread(target=_notify_loop, args=(app,), name="deckchat-webhooks", daemon=True).start()


def _notify_loop(app) -> None:
    """Sweep for ended visits every minute and deliver their webhooks."""
    idle = timedelta(minutes=float(app.config.get("VISIT_IDLE_MINUTES", 30)))
    interval = float(app.config.get("WEBHOOK_SWEEP_SECONDS", 60))
    while True:
        time.sleep(interval)
        try:
            with app.app_context():
                sweep(idle)
        except Exception:  # one bad sweep (database busy, a bug) must not end the thread
            app.logger.exception("webhook sweep failed")
