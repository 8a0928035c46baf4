"""One slide's speaker notes edited on the deck page: stored, escaped, indexed for the assistant at once; bad
input changes nothing; only the owner may do it."""

from __future__ import annotations

from clients import login

from deckchat.domain.accounts import create_user
from deckchat.domain.decks import deck_content
from deckchat.domain.material import NOTES_MAX
from deckchat.extensions import db
from deckchat.ml.indexing import index_root
from deckchat.ml.retrieval import retrieve
from deckchat.models import Deck


def _notes(app, deck_id):
    with app.app_context():
        deck = db.session.get(Deck, deck_id)
        return {s.number: s.notes for s in deck.slides}, deck.content_version


def _save(client, deck_id, number, notes):
    return client.post(f"/decks/{deck_id}/slides/{number}/notes", data={"notes": notes})


def test_notes_saved_from_the_deck_page_reach_the_assistant(app, client, owner, pitch_deck):
    login(client)
    page = client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert page.count('data-testid="notes-editor"') == 5 and f'action="/decks/{pitch_deck}/slides/2/notes"' in page
    before, version = _notes(app, pitch_deck)
    note = "Pickers walk 12 miles a shift.\r\nThat is where the <b>labour</b> goes.  "
    response = _save(client, pitch_deck, 2, note)
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/decks/{pitch_deck}#slide-2")
    after, new_version = _notes(app, pitch_deck)
    assert after[2] == "Pickers walk 12 miles a shift.\nThat is where the <b>labour</b> goes."
    assert new_version == version + 1 and {n: after[n] for n in (1, 3, 4, 5)} == {n: before[n] for n in (1, 3, 4, 5)}
    page = client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert "Notes of slide 2 saved" in page and "&lt;b&gt;labour&lt;/b&gt;" in page and "<b>labour</b>" not in page
    with app.app_context():  # rebuilt at once: the new note is what answers
        found = retrieve(deck_content(pitch_deck), "How far do pickers walk in a shift?", index_root(app.instance_path))
    assert found.results[0].source == "slide:2" and "12 miles" in found.results[0].text

    assert _save(client, pitch_deck, 2, after[2]).status_code == 303
    assert _notes(app, pitch_deck)[1] == new_version  # unchanged: no new version, no rebuild
    _save(client, pitch_deck, 2, "")
    assert _notes(app, pitch_deck)[0][2] == ""


def test_bad_notes_and_other_owners_change_nothing(app, client, owner, pitch_deck):
    before = _notes(app, pitch_deck)
    login(client)
    too_long = _save(client, pitch_deck, 1, "x" * (NOTES_MAX + 1))
    assert too_long.status_code == 303
    assert "were not saved" in client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert _save(client, pitch_deck, 6, "no such slide").status_code == 404
    with app.app_context():
        create_user("other@example.com", "password123")
    other = app.test_client()
    login(other, "other@example.com")
    assert _save(other, pitch_deck, 1, "mine now").status_code == 404
    assert _notes(app, pitch_deck) == before
