"""Owner deck pages: upload errors beside the field they concern, file pickers that say what they take, renaming."""
from __future__ import annotations

import html
import io
import re

import pytest
from clients import csrf_token, login
from factories import PITCH_FAQ, PITCH_NOTES, PITCH_PAGES, make_pdf

from deckchat.domain.accounts import create_user
from deckchat.extensions import db
from deckchat.models import Deck


@pytest.fixture
def owner_client(app, owner):
    client = app.test_client()
    login(client)
    return client


def _upload(client, **files):
    data = {"title": files.pop("title", "")}
    for name, (content, filename) in files.items():
        data[name] = (io.BytesIO(content), filename)
    return client.post("/decks/new", data=data, content_type="multipart/form-data")


def _errors(page: str) -> dict[str, list[str]]:
    """The error messages under each upload field, by the field's test id."""
    out = {}
    for label in re.findall(r'<label class="field">.*?</label>', page, re.S):
        testid = re.search(r'data-testid="upload-(\w+)"', label)
        if testid:
            out[testid.group(1)] = [html.unescape(e) for e in re.findall(r'role="alert">([^<]*)<', label)]
    return out


def _deck_count(app) -> int:
    with app.app_context():
        return db.session.query(Deck).count()


def test_an_empty_slides_file_says_it_is_empty(app, owner_client):
    response = _upload(owner_client, slides=(b"", "empty.pdf"))
    assert response.status_code == 400
    errors = _errors(response.data.decode())
    assert errors["slides"] == ["The file is empty."]
    assert not any(errors[f] for f in ("notes", "faq", "documents"))
    assert _deck_count(app) == 0


def test_a_notes_error_shows_under_the_notes_field_and_the_title_is_kept(app, owner_client):
    response = _upload(owner_client, title="Acme <Series A>", slides=(make_pdf(PITCH_PAGES), "pitch.pdf"),
                       notes=(b"Just text, no slide headings", "notes.md"))
    assert response.status_code == 400
    page = response.data.decode()
    errors = _errors(page)
    assert errors["slides"] == [] and len(errors["notes"]) == 1 and errors["notes"][0].startswith("Speaker notes:")
    assert 'value="Acme &lt;Series A&gt;"' in page  # re-rendered, not redirected: the typed title stays, escaped
    assert 'data-testid="upload-rechoose"' in page
    assert _deck_count(app) == 0


def test_every_bad_upload_is_reported_beside_its_own_field_at_once(app, owner_client):
    response = _upload(owner_client, slides=(b"MZ\x90\x00 not a deck", "deck.pdf"), notes=(b"", "notes.md"),
                       faq=(b"no questions here", "faq.md"), documents=(b"x", "tool.exe"))
    assert response.status_code == 400
    errors = _errors(response.data.decode())
    assert errors["slides"] == ["The slides must be a PDF or a PowerPoint (.pptx) file."]
    assert errors["notes"] == ["The file is empty."]
    assert len(errors["faq"]) == 1 and errors["faq"][0].startswith("FAQ:")
    assert len(errors["documents"]) == 1 and errors["documents"][0].startswith("tool.exe:")
    assert _deck_count(app) == 0


def test_binary_notes_and_a_bad_document_pdf_go_to_their_fields(app, owner_client):
    response = _upload(owner_client, slides=(make_pdf(PITCH_PAGES), "pitch.pdf"), notes=(b"\x00\x01\x02", "n.md"),
                       documents=(b"not a pdf", "terms.pdf"))
    errors = _errors(response.data.decode())
    assert errors["slides"] == [] and errors["notes"] == ["The speaker notes is not a text file."]
    assert errors["documents"] == ["terms.pdf: the file is not a PDF."]


def test_a_pdf_chosen_as_notes_is_named_as_such_under_notes(app, owner_client):
    pdf = make_pdf(PITCH_PAGES)
    response = _upload(owner_client, slides=(pdf, "pitch.pdf"), notes=(pdf, "pitch.pdf"))
    errors = _errors(response.data.decode())
    assert errors["slides"] == []
    assert errors["notes"] == ["The speaker notes must be Markdown or plain text (.md, .txt); this file is a PDF."]


def test_notes_naming_a_slide_beyond_the_deck_show_under_notes(app, owner_client):
    response = _upload(owner_client, slides=(make_pdf(PITCH_PAGES), "pitch.pdf"), notes=(b"## Slide 9\nToo far", "n.md"))
    errors = _errors(response.data.decode())
    assert errors["slides"] == [] and errors["notes"] == ["Speaker notes name slide 9, but the deck has 5 slides."]


def test_file_pickers_say_what_they_accept(owner_client):
    page = owner_client.get("/decks/new").data.decode()
    accept = dict(re.findall(r'<input accept="([^"]+)"[^>]*data-testid="upload-(\w+)"', page)[i][::-1]
                  for i in range(4))
    assert accept["slides"].startswith(".pdf,.pptx")
    assert accept["notes"].startswith(".md,.markdown,.txt") and accept["faq"] == accept["notes"]
    assert accept["documents"].startswith(".md,.markdown,.txt,.pdf")
    assert 'data-testid="upload-rechoose"' not in page


def test_a_good_upload_still_redirects_to_the_deck(app, owner_client):
    response = _upload(owner_client, slides=(make_pdf(PITCH_PAGES), "pitch.pdf"),
                       notes=(PITCH_NOTES.encode(), "notes.md"), faq=(PITCH_FAQ.encode(), "faq.md"))
    assert response.status_code == 302
    with app.app_context():
        deck = db.session.scalar(db.select(Deck))
        assert deck.title == "Acme Robotics" and deck.notes_count == 4 and len(deck.faq_items) == 2


# Renaming -------------------------------------------------------------------------------------------------------


def _title(app, deck_id: int) -> str:
    with app.app_context():
        return db.session.get(Deck, deck_id).title


def test_owner_renames_a_deck_from_the_settings_page(app, pitch_deck):
    client = app.test_client()
    login(client)
    page = client.get(f"/decks/{pitch_deck}/assistant").data.decode()
    assert 'data-testid="rename-form"' in page and f'action="/decks/{pitch_deck}/rename"' in page
    response = client.post(f"/decks/{pitch_deck}/rename", data={"title": "  Acme <b>Series A</b>\n 2025 ",
                                                                "next": "settings"})
    assert response.status_code == 303 and response.location.endswith(f"/decks/{pitch_deck}/assistant")
    assert _title(app, pitch_deck) == "Acme <b>Series A</b> 2025"  # stripped, one line, stored as typed
    page = client.get(f"/decks/{pitch_deck}/assistant").data.decode()
    assert "Acme &lt;b&gt;Series A&lt;/b&gt; 2025" in page and "<b>Series A</b>" not in page  # escaped on output
    assert "Acme &lt;b&gt;" in client.get("/decks/").data.decode()
    response = client.post(f"/decks/{pitch_deck}/rename", data={"title": "Acme"})
    assert response.status_code == 303 and response.location.endswith(f"/decks/{pitch_deck}")


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_an_empty_or_long_title_is_refused_with_400(app, pitch_deck, title):
    client = app.test_client()
    login(client)
    response = client.post(f"/decks/{pitch_deck}/rename", data={"title": title, "next": "settings"})
    assert response.status_code == 400
    page = response.data.decode()
    assert ("cannot be empty" if not title.strip() else "at most 200 characters") in page
    assert 'data-testid="rename-form"' in page
    response = client.post(f"/decks/{pitch_deck}/rename", data={"title": title})  # from the deck page: a message
    assert response.status_code == 400 and b"The deck was not renamed" in response.data
    assert _title(app, pitch_deck) == "Acme Robotics"


def test_another_owner_cannot_rename_a_deck(app, pitch_deck):
    with app.app_context():
        create_user("intruder@example.com", "password123")
    client = app.test_client()
    login(client, "intruder@example.com")
    assert client.post(f"/decks/{pitch_deck}/rename", data={"title": "Pwned"}).status_code == 404
    assert app.test_client().post(f"/decks/{pitch_deck}/rename", data={"title": "Pwned"}).status_code == 302  # login
    assert _title(app, pitch_deck) == "Acme Robotics"


def test_rename_needs_the_csrf_token(app_factory, owner_deck_factory):
    app, deck_id = owner_deck_factory(app_factory(WTF_CSRF_ENABLED=True))
    client = app.test_client()
    token = csrf_token(client.get("/login").data)
    assert client.post("/login", data={"email": "owner@example.com", "password": "password123",
                                       "csrf_token": token}).status_code == 302
    response = client.post(f"/decks/{deck_id}/rename", data={"title": "No token", "next": "settings"})
    assert response.status_code == 400 and b"CSRF token is missing" in response.data  # refused before the view
    assert _title(app, deck_id) == "Acme Robotics"
    token = csrf_token(client.get(f"/decks/{deck_id}/assistant").data)
    response = client.post(f"/decks/{deck_id}/rename", data={"title": "With token", "csrf_token": token})
    assert response.status_code == 303 and _title(app, deck_id) == "With token"


def test_renaming_an_indexed_deck_rebuilds_its_index(app, pitch_deck, monkeypatch):
    from pathlib import Path

    from deckchat.web import decks as deck_views

    calls = []
    monkeypatch.setattr(deck_views, "reindex", lambda deck_id, *a, **k: calls.append(deck_id) or [])
    client = app.test_client()
    login(client)
    client.post(f"/decks/{pitch_deck}/rename", data={"title": "No index yet"})
    assert calls == []  # no index: the first question builds one with the new title
    manifest = Path(app.instance_path) / "indexes" / str(pitch_deck) / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    client.post(f"/decks/{pitch_deck}/rename", data={"title": "Indexed"})
    client.post(f"/decks/{pitch_deck}/rename", data={"title": "Indexed"})  # unchanged: nothing to rebuild
    assert calls == [pitch_deck]


def test_counts_read_in_the_right_number(app, client, owner, pitch_deck):
    from deckchat.domain.content import DocumentContent
    from deckchat.domain.material import update_material

    login(client)
    page = client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert "5 slides from pitch.pdf" in page and "0 documents" in page
    with app.app_context():
        update_material(db.session.get(Deck, pitch_deck), documents=[DocumentContent("memo.md", "md", "# Memo")])
    page = client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert "· 1 document</p>" in page and "1 documents" not in page


def test_the_deck_list_shows_visits_and_last_activity(app, client, owner, pitch_deck):
    import re as regex

    from deckchat.domain import sharing

    login(client)
    first = client.get("/decks/").get_data(as_text=True)
    assert regex.search(r'data-testid="deck-activity">No visits yet<', first)
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    app.test_client().get(f"/s/{token}")
    app.test_client().get(f"/s/{token}")  # two browsers: two visits
    page = client.get("/decks/").get_data(as_text=True)
    activity = regex.search(r'data-testid="deck-activity">(.*?)</span>', page).group(1)
    assert f'href="/decks/{pitch_deck}/analytics">2 visits</a>, last 20' in activity
