"""Owner pages: deck list, upload, deck detail, a new version of the slides, renaming, deletion."""
from __future__ import annotations

import errno
import tempfile
from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..domain import ingest
from ..domain.decks import (
    ImportLimits,
    delete_deck,
    import_deck,
    parse_faq,
    read_document,
    read_text_upload,
    rename_deck,
    replace_slides,
)
from ..domain.analytics import deck_activity
from ..domain.ingest import EMPTY_FILE, UploadError
from ..extensions import db
from ..ml.indexing import drop_index, reindex
from ..models import Deck
from .files import send_slide_image
from .forms import ConfirmForm, LinkForm, RenameForm, ReplaceForm, UploadForm
from .guards import owner_deck

bp = Blueprint("decks", __name__, url_prefix="/decks")


@bp.route("/")
@login_required
def list_decks():
    """The owner's decks, newest first."""
    decks = db.session.scalars(
        db.select(Deck).filter_by(owner_id=current_user.id).order_by(Deck.created_at.desc(), Deck.id.desc())
    ).all()
    return render_template("owner/decks.html", decks=decks, activity=deck_activity([d.id for d in decks]))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new_deck():
    """Upload a deck with its notes, FAQ and documents."""
    form = UploadForm()
    if form.validate_on_submit():
        try:
            deck, warnings = _import_from_form(form)
        except UploadErrors as exc:
            for error in exc.errors:
                _field_errors(form, error.field).append(str(error))
        except UploadError as exc:
            _field_errors(form, exc.field).append(str(exc))
        except OSError as exc:
            _out_of_space(exc, form)
            return render_template("owner/new_deck.html", form=form), 507
        else:
            for warning in warnings:
                flash(warning, "warning")
            flash(f"Imported “{deck.title}” with {deck.slide_count} slides.")
            return redirect(url_for("decks.detail", deck_id=deck.id))
    return render_template("owner/new_deck.html", form=form), 400 if form.errors else 200


def _out_of_space(exc: OSError, form) -> None:
    """Say on the form that the disk is full (nothing was saved); any other OSError goes on up."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        raise exc
    _field_errors(form, "slides").append("The server is out of disk space, so nothing was saved. Please try again later.")


@bp.route("/<int:deck_id>/replace", methods=["POST"])
@owner_deck
def replace(deck: Deck):
    """Put a new version of the slides in place: links, FAQ, documents and analytics stay; the index is rebuilt."""
    from .assistant import render_settings  # noqa: PLC0415 - the settings page lives with the assistant's

    form = ReplaceForm()
    if form.validate_on_submit():
        before = deck.slide_count
        tmp_root = Path(current_app.instance_path) / "tmp"
        tmp_root.mkdir(exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
                slides_path = Path(tmp) / "slides.upload"
                form.slides.data.save(slides_path)
                warnings = replace_slides(
                    deck, instance_path=current_app.instance_path, slides_path=slides_path,
                    filename=form.slides.data.filename or "slides",
                    notes_md=_text_field(form.notes.data, "speaker notes", "notes"),
                    limits=ImportLimits.from_config(current_app.config))
        except UploadError as exc:
            _field_errors(form, exc.field).append(str(exc))
        except OSError as exc:
            _out_of_space(exc, form)
            return render_settings(deck, replace=form), 507
        else:
            for warning in warnings + reindex(deck.id, current_app.instance_path, current_app.config["EMBED_MODEL"]):
                flash(warning, "warning")
            flash(f"New slides in place: {before} → {deck.slide_count} slides from {deck.source_filename}. "
                  "Share links, FAQ, documents and analytics stay.")
            return redirect(url_for("decks.detail", deck_id=deck.id), 303)
    return render_settings(deck, replace=form), 400


class UploadErrors(Exception):
    """Several uploads of one form refused at once, so each field shows its own problem."""

    def __init__(self, errors: list[UploadError]):
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def _field_errors(form: UploadForm | ReplaceForm, name: str) -> list[str]:
    """The error list of the upload field an error concerns (the slides when it names none of the form's)."""
    field = form[name] if name in ("slides", "notes", "faq", "documents") and name in form else form.slides
    if not isinstance(field.errors, list):
        field.errors = list(field.errors)
    return field.errors


def _import_from_form(form: UploadForm):
    """Save the uploads to a private temporary folder and import them."""
    tmp_root = Path(current_app.instance_path) / "tmp"
    tmp_root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        slides_path = Path(tmp) / "slides.upload"
        form.slides.data.save(slides_path)
        problems: list[UploadError] = []

        def check(read, *args):
            """Run one reader; keep its error to report with the others' instead of stopping at the first."""
            try:
                return read(*args)
            except UploadError as exc:
                problems.append(exc)
                return None

        check(ingest.detect_kind, slides_path)
        notes = check(_text_field, form.notes.data, "speaker notes", "notes")
        faq = check(_text_field, form.faq.data, "FAQ", "faq")
        if faq:
            check(parse_faq, faq)
        documents = []
        for i, upload in enumerate(form.documents.data or []):
            if not upload or not upload.filename:
                continue
            doc_path = Path(tmp) / f"doc-{i}.upload"
            upload.save(doc_path)
            documents.append(check(read_document, upload.filename, doc_path))
        if problems:
            raise UploadErrors(problems)
        deck, warnings = import_deck(
            owner=current_user, instance_path=current_app.instance_path, slides_path=slides_path,
            filename=form.slides.data.filename or "slides", title=form.title.data, notes_md=notes,
            faq_md=faq, documents=documents, limits=ImportLimits.from_config(current_app.config),
        )
    warnings.extend(reindex(deck.id, current_app.instance_path, current_app.config["EMBED_MODEL"]))
    return deck, warnings


def _text_field(upload, label: str, field: str) -> str | None:
    """Text of an optional uploaded text file; errors name the form field."""
    if not upload or not getattr(upload, "filename", ""):
        return None
    data = upload.read()
    if not data:
        raise UploadError(EMPTY_FILE, field)
    return read_text_upload(data, label, field)


@bp.route("/<int:deck_id>")
@owner_deck
def detail(deck: Deck):
    """A deck's slides, notes, documents and links."""
    return render_template("owner/deck.html", deck=deck, link_form=LinkForm(), confirm=ConfirmForm(),
                           rename=RenameForm(title=deck.title))


@bp.route("/<int:deck_id>/rename", methods=["POST"])
@owner_deck
def rename(deck: Deck):
    """Give a deck a new title (1 to 200 characters, stripped); investors see it on their next page."""
    form = RenameForm()
    from_settings = request.form.get("next") == "settings"
    if not form.validate_on_submit():
        if form.errors.keys() - {"title"}:
            flash("The deck was not renamed: the form expired; reload the page and try again.", "error")
        elif not from_settings:  # the deck page shows no field errors of this form: say it in a message
            flash("The deck was not renamed: " + " ".join(form.title.errors), "error")
        if from_settings:
            from .assistant import render_settings  # noqa: PLC0415 - the settings page lives with the assistant's

            return render_settings(deck, rename=form), 400
        return render_template("owner/deck.html", deck=deck, link_form=LinkForm(), confirm=ConfirmForm(),
                               rename=form), 400
    old = deck.title
    try:
        changed = rename_deck(deck, form.title.data)
    except ValueError as exc:  # a title of only control characters
        flash(f"The deck was not renamed: {exc}", "error")
        return redirect(_back(deck, from_settings), 303)
    if changed:
        for warning in reindex_if_indexed(deck.id):
            flash(warning, "warning")
        flash(f"Renamed “{old}” to “{deck.title}”.")
    else:
        flash("The title is unchanged.")
    return redirect(_back(deck, from_settings), 303)


def _back(deck: Deck, from_settings: bool) -> str:
    return url_for("assistant.settings" if from_settings else "decks.detail", deck_id=deck.id)


def reindex_if_indexed(deck_id: int) -> list[str]:
    """Rebuild a deck's chat index when it has one (its fingerprint covers the title); else the first question builds it."""
    from ..ml.index import read_manifest  # noqa: PLC0415 - the index module loads numpy
    from ..ml.indexing import index_root  # noqa: PLC0415

    if read_manifest(deck_id, index_root(current_app.instance_path)) is None:
        return []
    return reindex(deck_id, current_app.instance_path, current_app.config["EMBED_MODEL"])


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
