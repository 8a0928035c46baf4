"""Serving a deck's stored files: slide images, thumbnails and the original."""
from __future__ import annotations

from flask import abort, current_app, send_file

from ..domain.decks import deck_folder
from ..models import Deck


def send_slide_image(deck: Deck, number: int, kind: str = "slides"):
    """Send slide `number`'s image or thumbnail (cached privately by the browser)."""
    if not 1 <= number <= deck.slide_count:
        abort(404, "No such slide.")
    path = deck_folder(current_app.instance_path, deck) / kind / f"{number:03d}.png"
    if not path.is_file():
        abort(404, "The slide image is missing.")
    response = send_file(path, mimetype="image/png", max_age=3600)
    response.cache_control.private = True
    response.cache_control.public = False
    return response


def send_original(deck: Deck):
    """Send the deck's original file as a download."""
    suffix = "pptx" if deck.source_kind == "pptx" else "pdf"
    path = deck_folder(current_app.instance_path, deck) / f"original.{suffix}"
    if not path.is_file():
        abort(404, "The original file is missing.")
    name = deck.source_filename if deck.source_filename.lower().endswith(suffix) else f"{deck.title}.{suffix}"
    return send_file(path, as_attachment=True, download_name=name)
