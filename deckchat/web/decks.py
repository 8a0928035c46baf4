"""Owner pages: deck list, upload, deck detail, share links, deletion."""
from __future__ import annotations

import errno
import tempfile
from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..domain import sharing
from ..domain.decks import ImportLimits, delete_deck, import_deck, read_document, read_text_upload
from ..domain.ingest import UploadError
from ..extensions import db
from ..models import Deck, ShareLink
from ..ml.indexing import drop_index, reindex
from .files import send_slide_image
from .forms import ConfirmForm, LinkForm, UploadForm
from .guards import owner_deck

bp = Blueprint("decks", __name__, url_prefix="/decks")


@bp.route("/")
@login_required
def list_decks():
    """The owner's decks, newest first."""
    decks = db.session.scalars(
        db.select(Deck).filter_by(owner_id=current_user.id).order_by(Deck.created_at.desc(), Deck.id.desc())
    ).all()
    return render_template("owner/decks.html", decks=decks)


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new_deck():
    """Upload a deck with its notes, FAQ and documents."""
    form = UploadForm()
    if form.validate_on_submit():
        try:
            deck, warnings = _import_from_form(form)
        except UploadError as exc:
            form.slides.errors.append(str(exc))
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            form.slides.errors.append("The server is out of disk space, so nothing was saved. Please try again later.")
            return render_template("owner/new_deck.html", form=form), 507
        else:
            for warning in warnings:
                flash(warning, "warning")
            flash(f"Imported “{deck.title}” with {deck.slide_count} slides.")
            return redirect(url_for("decks.detail", deck_id=deck.id))
    return render_template("owner/new_deck.html", form=form), 400 if form.errors else 200


def _import_from_form(form: UploadForm):
    """Save the uploads to a private temporary folder and import them."""
    tmp_root = Path(current_app.instance_path) / "tmp"
    tmp_root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        slides_path = Path(tmp) / "slides.upload"
        form.slides.data.save(slides_path)
        notes = _text_field(form.notes.data, "speaker notes")
        faq = _text_field(form.faq.data, "FAQ")
        documents = []
        for i, upload in enumerate(form.documents.data or []):
            if not upload or not upload.filename:
                continue
            doc_path = Path(tmp) / f"doc-{i}.upload"
            upload.save(doc_path)
            documents.append(read_document(upload.filename, doc_path))
        deck, warnings = import_deck(
            owner=current_user, instance_path=current_app.instance_path, slides_path=slides_path,
            filename=form.slides.data.filename or "slides", title=form.title.data, notes_md=notes,
            faq_md=faq, documents=documents, limits=ImportLimits.from_config(current_app.config),
        )
    warnings.extend(reindex(deck.id, current_app.instance_path, current_app.config["EMBED_MODEL"]))
    return deck, warnings


def _text_field(upload, label: str) -> str | None:
    """Text of an optional uploaded text file."""
    if not upload or not getattr(upload, "filename", ""):
        return None
    return read_text_upload(upload.read(), label)


@bp.route("/<int:deck_id>")
@owner_deck
def detail(deck: Deck):
    """A deck's slides, notes, documents and links."""
    return render_template("owner/deck.html", deck=deck, link_form=LinkForm(), confirm=ConfirmForm())


@bp.route("/<int:deck_id>/links", methods=["POST"])
@owner_deck
def create_link(deck: Deck):
    """Create a share link."""
    form = LinkForm()
    if not form.validate_on_submit():
        flash("The link could not be created: " + "; ".join(e for es in form.errors.values() for e in es), "error")
        return redirect(url_for("decks.detail", deck_id=deck.id)), 303
    try:
        link = sharing.create_link(
            deck, password=form.password.data or None,
            expires_in=sharing.parse_duration(form.expires_in.data) if form.expires_in.data else None,
            require_email=form.require_email.data, allow_download=form.allow_download.data,
            label=form.label.data or "", webhook_url=form.webhook_url.data or None,
        )
    except ValueError as exc:  # e.g. a webhook to a private or local address
        flash(f"The link could not be created: {exc}", "error")
        return redirect(url_for("decks.detail", deck_id=deck.id)), 303
    flash(f"Link created: {url_for('viewer.open_link', token=link.token, _external=True)}")
    return redirect(url_for("decks.detail", deck_id=deck.id), 303)


@bp.route("/<int:deck_id>/links/<int:link_id>/revoke", methods=["POST"])
@owner_deck
def revoke_link(deck: Deck, link_id: int):
    """Revoke one of the deck's links."""
    link = db.session.get(ShareLink, link_id)
    if link is None or link.deck_id != deck.id or not ConfirmForm().validate_on_submit():
        return render_template("error.html", code=404, title="Not Found", message="No such link."), 404
    sharing.revoke_link(link)
    flash("Link revoked: it now answers “gone”.")
    return redirect(url_for("decks.detail", deck_id=deck.id), 303)


@bp.route("/<int:deck_id>/delete", methods=["POST"])
@owner_deck
def delete(deck: Deck):
    """Delete a deck with its files, links, visits and index."""
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("decks.detail", deck_id=deck.id), 303)
    title = deck.title
    drop_index(deck.id, current_app.instance_path)
    delete_deck(deck, current_app.instance_path)
    flash(f"Deleted “{title}”.")
    return redirect(url_for("decks.list_decks"), 303)


@bp.route("/<int:deck_id>/slides/<int:number>.png")
@owner_deck
def slide_image(deck: Deck, number: int):
    """A slide image, for the owner."""
    return send_slide_image(deck, number)


@bp.route("/<int:deck_id>/thumbs/<int:number>.png")
@owner_deck
def thumb_image(deck: Deck, number: int):
    """A slide thumbnail, for the owner."""
    return send_slide_image(deck, number, "thumbs")
