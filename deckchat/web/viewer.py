"""Share links for investors: the unlock gate, the slide viewer, slide images and download."""
from __future__ import annotations

import secrets
from datetime import timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from ..domain import chatlog, sharing, tracking
from ..domain.chatlog import MAX_QUESTION_CHARS as QUESTION_MAX
from ..extensions import db, limiter
from ..models import FaqItem, ShareLink
from .files import send_original, send_slide_image
from .forms import UnlockForm
from .setup import wants_json

bp = Blueprint("viewer", __name__, url_prefix="/s")

VISITOR_COOKIE = "dc_visitor"
GONE = {
    "revoked": ("Link revoked", "The presenter has revoked this link. Ask them for a new one."),
    "expired": ("Link expired", "This link has expired. Ask the presenter for a new one."),
}
GONE_JSON = "This link is no longer active. Ask the presenter for a new one."
LOCKED = "This link now asks for a password or email. Reload the page to unlock it."
EXAMPLE_QUESTIONS = ("What problem does this solve?", "How big is the market?", "Who is on the team?")


def _link_or_error(token: str) -> ShareLink:
    """The active link for a token; 404 when unknown, 410 when revoked or expired."""
    link = sharing.find_link(token)
    if link is None:
        abort(404, "This link does not exist. Check that you copied all of it.")
    state = link.state()
    if state != "active":
        if wants_json():  # chat, feedback and scripted calls read {"error": ...}, not a page
            abort(410, GONE_JSON)
        title, message = GONE[state]
        abort(make_response(render_template("viewer/gone.html", title=title, message=message), 410))
    return link


def _grant(link: ShareLink) -> dict | None:
    """What this browser has unlocked for the link: bound to the link's current password while it has one (a
    new password asks again; a removed one does not), and holding an email when the link now asks for one."""
    grant = session.get("links", {}).get(link.token)
    if grant is None or (link.password_hash and grant.get("pw") != link.password_hash[-16:]):
        return None
    if link.require_email and not grant.get("email"):
        return None
    return grant


def owner_preview(link: ShareLink) -> bool:
    """Whether the signed-in presenter is opening a link to their own deck: a preview, never an investor visit."""
    return bool(current_user.is_authenticated and link.deck.owner_id == current_user.id)


def _needs_unlock(link: ShareLink) -> bool:
    """Whether the link asks for a password or email this browser has not given yet (never its owner)."""
    return bool(link.password_hash or link.require_email) and _grant(link) is None and not owner_preview(link)


def accessible_link(token: str) -> ShareLink:
    """The link, if this browser may see its slides; 403 otherwise."""
    link = _link_or_error(token)
    if _needs_unlock(link):
        abort(403, LOCKED if wants_json() else "Unlock the link first.")
    return link


def _open_limit() -> str:
    return current_app.config["OPEN_RATE_LIMIT"]


@bp.route("/<token>", methods=["GET"])
@limiter.limit(_open_limit, key_func=lambda: f"open:{request.remote_addr}",
               error_message="Too many openings from your address. Wait a minute, then reload.")
def open_link(token: str):
    """The viewer, or the unlock form while the link is locked; an opening starts a visit or resumes this
    browser's live one (a reload is not a second visit, and its chat so far is shown again)."""
    link = _link_or_error(token)
    if _needs_unlock(link):
        return render_template("viewer/gate.html", link=link, form=UnlockForm())
    visitor = request.cookies.get(VISITOR_COOKIE) or secrets.token_urlsafe(16)
    grant = _grant(link) or {}
    preview = owner_preview(link)
    # The presenter's own look at the link would inflate visits, time and drop-off: it records nothing.
    idle = timedelta(minutes=current_app.config["VISIT_IDLE_MINUTES"])
    visit = None if preview else tracking.start_visit(link, visitor, grant.get("email"),
                                                       request.headers.get("User-Agent", ""), resume_within=idle)
    response = make_response(render_template(
        "viewer/viewer.html", link=link, deck=link.deck, visit=visit, preview=preview,
        heartbeat=current_app.config["HEARTBEAT_SECONDS"], examples=example_questions(link.deck_id),
        question_max=QUESTION_MAX, turns=chatlog.visit_turns(visit.id) if visit else [],
    ))
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(VISITOR_COOKIE, visitor, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response


def example_questions(deck_id: int, limit: int = 3) -> list[str]:
    """Questions to offer on the empty chat: the deck's first FAQ questions, else generic ones."""
    rows = db.session.scalars(
        select(FaqItem.question).where(FaqItem.deck_id == deck_id).order_by(FaqItem.position, FaqItem.id)
        .limit(limit)
    )
    questions = [" ".join(q.split())[:QUESTION_MAX] for q in rows if q and q.strip()]
    return questions or list(EXAMPLE_QUESTIONS[:limit])


def _unlock_limit() -> str:
    return current_app.config["UNLOCK_RATE_LIMIT"]


@bp.route("/<token>", methods=["POST"])
@limiter.limit(_unlock_limit, key_func=lambda: f"{request.remote_addr}:{request.view_args.get('token')}",
               error_message="Too many tries. Wait a minute, then try again.")
def unlock(token: str):
    """Check the password and/or take the email; wrong answers get 401 or 400 with the form again."""
    link = _link_or_error(token)
    form = UnlockForm()
    if not form.validate_on_submit():
        return render_template("viewer/gate.html", link=link, form=form), 400
    email = (form.email.data or "").strip().lower()
    if link.require_email and not email:
        form.email.errors.append("Enter your email to open this deck.")
        return render_template("viewer/gate.html", link=link, form=form), 400
    if link.password_hash and not link.check_password(form.password.data or ""):
        form.password.errors.append("Wrong password.")
        return render_template("viewer/gate.html", link=link, form=form), 401
    links = dict(session.get("links", {}))
    links[link.token] = {"pw": (link.password_hash or "")[-16:], "email": email or None}
    session["links"] = links
    return redirect(url_for("viewer.open_link", token=token), 303)


@bp.route("/<token>/slides/<int:number>.png")
def slide_image(token: str, number: int):
    """A slide image, once the link is unlocked."""
    return send_slide_image(accessible_link(token).deck, number)


@bp.route("/<token>/thumbs/<int:number>.png")
def thumb_image(token: str, number: int):
    """A slide thumbnail, once the link is unlocked."""
    return send_slide_image(accessible_link(token).deck, number, "thumbs")


@bp.route("/<token>/download")
def download(token: str):
    """The original file, only when the link allows downloads."""
    link = accessible_link(token)
    if not link.allow_download:
        abort(403, "The presenter has not allowed downloads for this link.")
    return send_original(link.deck)
