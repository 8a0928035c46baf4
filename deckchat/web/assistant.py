"""Owner pages for what the assistant answers from and how: material, persona, guardrails, examples."""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, url_for

from ..domain import chatlog, examples, material
from ..domain.decks import read_document, read_text_upload
from ..domain.ingest import UploadError
from ..ml.indexing import reindex
from ..models import Deck
from .forms import ConfirmForm, MaterialForm, PairForm, PersonaForm, RenameForm, ReplaceForm, SlideNotesForm
from .guards import owner_deck

bp = Blueprint("assistant", __name__, url_prefix="/decks")


def _back(deck: Deck):
    return redirect(url_for("assistant.settings", deck_id=deck.id), 303)


def _reindex(deck: Deck) -> None:
    """Rebuild the deck's index now, so the bot never answers from stale material."""
    for warning in reindex(deck.id, current_app.instance_path, current_app.config["EMBED_MODEL"]):
        flash(warning, "warning")


@bp.route("/<int:deck_id>/assistant")
@owner_deck
def settings(deck: Deck):
    """The deck's settings: its title, and the assistant's material, persona, guardrails and examples."""
    return render_settings(deck)


def render_settings(deck: Deck, rename: RenameForm | None = None, replace: ReplaceForm | None = None) -> str:
    """The settings page, with rename and new-slides forms that may carry errors (re-shown when refused)."""
    return render_template("owner/assistant.html", deck=deck, material=MaterialForm(), persona=PersonaForm(
        persona=deck.persona or ""), pair=PairForm(), confirm=ConfirmForm(),
        rename=rename or RenameForm(title=deck.title), replace=replace or ReplaceForm())


@bp.route("/<int:deck_id>/material", methods=["POST"])
@owner_deck
def update_material(deck: Deck):
    """Replace notes or the FAQ, add documents; then rebuild the index."""
    form = MaterialForm()
    if not form.validate_on_submit():
        flash("The form expired; please try again.", "error")
        return _back(deck)
    try:
        with tempfile.TemporaryDirectory(dir=current_app.instance_path) as tmp:
            documents = []
            for i, upload in enumerate(form.documents.data or []):
                if upload and upload.filename:
                    path = Path(tmp) / f"doc-{i}"
                    upload.save(path)
                    documents.append(read_document(upload.filename, path))
            notes = read_text_upload(form.notes.data.read(), "speaker notes") if form.notes.data else None
            faq = read_text_upload(form.faq.data.read(), "FAQ") if form.faq.data else None
        changed = material.update_material(deck, notes_md=notes, faq_md=faq, documents=documents)
    except UploadError as exc:
        flash(str(exc), "error")
        return _back(deck)
    if not changed:
        flash("Choose a notes, FAQ or document file to upload.", "warning")
        return _back(deck)
    _reindex(deck)
    flash(f"Updated {', '.join(changed)}; the assistant now answers from the new material.")
    return _back(deck)


def _after_removal(deck: Deck, removed: str | None, what: str, message: str):
    """404 when nothing was removed; else rebuild the index, say what went and go back to the settings."""
    if removed is None:
        return render_template("error.html", code=404, title="Not Found", message=f"No such {what}."), 404
    _reindex(deck)
    flash(f"{message}; the assistant no longer answers from it.")
    return _back(deck)


@bp.route("/<int:deck_id>/documents/<int:item_id>/delete", methods=["POST"])
@owner_deck
def delete_document(deck: Deck, item_id: int):
    """Remove a document; then rebuild the index so the assistant no longer answers from it."""
    filename = material.remove_document(deck, item_id) if ConfirmForm().validate_on_submit() else None
    return _after_removal(deck, filename, "document", f"Removed {filename}")


@bp.route("/<int:deck_id>/faq/<int:item_id>/delete", methods=["POST"])
@owner_deck
def delete_faq_item(deck: Deck, item_id: int):
    """Remove one FAQ item; then rebuild the index."""
    question = material.remove_faq_item(deck, item_id) if ConfirmForm().validate_on_submit() else None
    return _after_removal(deck, question, "FAQ item", f"Removed the FAQ item \u201c{question}\u201d")


@bp.route("/<int:deck_id>/slides/<int:number>/notes", methods=["POST"])
@owner_deck
def update_slide_notes(deck: Deck, number: int):
    """Write one slide's speaker notes from the deck page; then rebuild the index."""
    form = SlideNotesForm()
    back = redirect(url_for("decks.detail", deck_id=deck.id, _anchor=f"slide-{number}"), 303)
    if not form.validate_on_submit():
        flash("The form expired; please try again.", "error")
        return back
    try:
        changed = material.set_slide_notes(deck, number, form.notes.data or "")
    except LookupError:
        return render_template("error.html", code=404, title="Not Found", message="No such slide."), 404
    except UploadError as exc:
        flash(f"The notes of slide {number} were not saved: {exc}", "error")
        return back
    if changed:
        _reindex(deck)
        flash(f"Notes of slide {number} saved; the assistant now answers from them.")
    else:
        flash(f"The notes of slide {number} are unchanged.")
    return back


@bp.route("/<int:deck_id>/persona", methods=["POST"])
@owner_deck
def update_persona(deck: Deck):
    """Set the persona preamble (empty: the default)."""
    form = PersonaForm()
    if form.validate_on_submit():
        chatlog.update_chat_settings(deck, form.persona.data)
        flash("Persona saved.")
    else:
        flash("The persona can be at most 4,000 characters.", "error")
    return _back(deck)


@bp.route("/<int:deck_id>/guardrails", methods=["POST"])
@owner_deck
def add_guardrail(deck: Deck):
    """Add a topic the bot must not discuss."""
    form = PairForm()
    if form.validate_on_submit():
        chatlog.add_guardrail(deck, form.first.data, form.second.data)
        flash("Guardrail added.")
    else:
        flash("A guardrail needs a topic and a reply.", "error")
    return _back(deck)


@bp.route("/<int:deck_id>/guardrails/<int:item_id>/delete", methods=["POST"])
@owner_deck
def delete_guardrail(deck: Deck, item_id: int):
    """Remove a guardrail."""
    if not ConfirmForm().validate_on_submit() or not chatlog.delete_guardrail(deck, item_id):
        return render_template("error.html", code=404, title="Not Found", message="No such guardrail."), 404
    flash("Guardrail removed.")
    return _back(deck)


@bp.route("/<int:deck_id>/examples", methods=["POST"])
@owner_deck
def add_example(deck: Deck):
    """Add an example answer in the presenter's own words."""
    form = PairForm()
    if not form.validate_on_submit():
        flash("An example needs a question and an answer.", "error")
        return _back(deck)
    try:
        examples.add_example(deck, form.first.data, form.second.data)
    except examples.ExampleError as exc:
        flash(str(exc), "error")
    else:
        flash("Example added.")
    return _back(deck)


@bp.route("/<int:deck_id>/examples/<int:item_id>/delete", methods=["POST"])
@owner_deck
def delete_example(deck: Deck, item_id: int):
    """Remove an example answer."""
    if not ConfirmForm().validate_on_submit() or not examples.delete_example(deck, item_id):
        return render_template("error.html", code=404, title="Not Found", message="No such example."), 404
    flash("Example removed.")
    return _back(deck)
