"""Owner pages for share links: create one, change its rules, revoke it."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from ..domain import sharing
from ..extensions import db
from ..models import Deck, ShareLink, utcnow
from .forms import ConfirmForm, EditLinkForm, LinkForm
from .guards import owner_deck

bp = Blueprint("links", __name__, url_prefix="/decks")


def _deck_page(deck: Deck):
    return redirect(url_for("decks.detail", deck_id=deck.id), 303)


def _no_such_link():
    return render_template("error.html", code=404, title="Not Found", message="No such link."), 404


def _own_link(deck: Deck, link_id: int) -> ShareLink | None:
    """The deck's link with this id, or None (another deck's link is as unknown as a missing one)."""
    link = db.session.get(ShareLink, link_id)
    return link if link is not None and link.deck_id == deck.id else None


@bp.route("/<int:deck_id>/links", methods=["POST"])
@owner_deck
def create(deck: Deck):
    """Create a share link."""
    form = LinkForm()
    if not form.validate_on_submit():
        flash("The link could not be created: " + "; ".join(e for es in form.errors.values() for e in es), "error")
        return _deck_page(deck)
    try:
        link = sharing.create_link(
            deck, password=form.password.data or None,
            expires_in=sharing.parse_duration(form.expires_in.data) if form.expires_in.data else None,
            require_email=form.require_email.data, allow_download=form.allow_download.data,
            label=form.label.data or "", webhook_url=form.webhook_url.data or None,
        )
    except ValueError as exc:  # e.g. a webhook to a private or local address
        flash(f"The link could not be created: {exc}", "error")
        return _deck_page(deck)
    flash(f"Link created: {url_for('viewer.open_link', token=link.token, _external=True)}")
    return _deck_page(deck)


@bp.route("/<int:deck_id>/links/<int:link_id>/edit", methods=["GET", "POST"])
@owner_deck
def edit(deck: Deck, link_id: int):
    """Change an active link's label, password, expiry, email and download rules or webhook; its address stays."""
    link = _own_link(deck, link_id)
    if link is None:
        return _no_such_link()
    if link.state() != "active":
        flash(f"This link is {link.state()}: its rules can no longer change. Create a new link instead.", "error")
        return _deck_page(deck)
    form = EditLinkForm(data={"label": link.label, "require_email": link.require_email,
                              "allow_download": link.allow_download, "webhook_url": link.webhook_url or ""})
    if form.validate_on_submit():
        choice = form.expires_in.data
        expires = (sharing.KEEP if choice == "keep" else None if choice == "never"
                   else utcnow() + sharing.parse_duration(choice))
        password = None if form.remove_password.data else (form.password.data or sharing.KEEP)
        try:
            changes = sharing.update_link(
                link, label=form.label.data or "", password=password, expires_at=expires,
                require_email=form.require_email.data, allow_download=form.allow_download.data,
                webhook_url=form.webhook_url.data or None,
            )
        except ValueError as exc:  # a webhook to a private or local address
            db.session.rollback()
            form.webhook_url.errors = [*form.webhook_url.errors, str(exc)]
        else:
            flash(f"Link updated ({', '.join(changes)}); its address is the same." if changes
                  else "Nothing changed.")
            return _deck_page(deck)
    return render_template("owner/link_edit.html", deck=deck, link=link, form=form), 400 if form.errors else 200


@bp.route("/<int:deck_id>/links/<int:link_id>/revoke", methods=["POST"])
@owner_deck
def revoke(deck: Deck, link_id: int):
    """Revoke one of the deck's links."""
    link = _own_link(deck, link_id)
    if link is None or not ConfirmForm().validate_on_submit():
        return _no_such_link()
    sharing.revoke_link(link)
    flash("Link revoked: it now answers “gone”.")
    return _deck_page(deck)
