"""A new version of a deck's slides: links, FAQ, documents, analytics stay; notes follow slide titles; a refused
file changes nothing; only the owner may do it; the same from the CLI."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from clients import commit_elsewhere, login
from factories import PITCH_PAGES, make_pdf

from deckchat.domain import sharing
from deckchat.domain.accounts import create_user
from deckchat.extensions import db
from deckchat.models import Deck, SlideView

# Version 2 moves "Our solution" up, adds a team slide and changes the ask.
V2_PAGES = [PITCH_PAGES[0], PITCH_PAGES[2], PITCH_PAGES[1], "Team\nTwo founders, ten engineers", PITCH_PAGES[3],
            "The ask\nRaising 10M Series A"]


def _replace(client, deck_id, content: bytes, filename="pitch-v2.pdf"):
    return client.post(f"/decks/{deck_id}/replace", data={"slides": (io.BytesIO(content), filename)},
                       content_type="multipart/form-data")


def _state(app, deck_id):
    with app.app_context():
        deck = db.session.get(Deck, deck_id)
        folder = Path(app.instance_path) / "decks" / deck.storage_key
        return {"count": deck.slide_count, "key": deck.storage_key, "folder": folder, "version": deck.content_version,
                "notes": {s.title: s.notes for s in deck.slides}, "faq": len(deck.faq_items),
                "file": deck.source_filename}


def test_new_slides_keep_links_notes_and_analytics(app, client, owner, pitch_deck):
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    visit = re.search(rb'data-visit="([^"]+)"', app.test_client().get(f"/s/{token}").data).group(1).decode()
    client.post("/api/track", data=json.dumps({"visit": visit, "view": "stay-one-1", "slide": 3, "visible_ms": 4000}),
                content_type="text/plain")
    before = _state(app, pitch_deck)
    login(client)
    deck_page = client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert f'href="/decks/{pitch_deck}/assistant#new-slides"' in deck_page
    settings = client.get(f"/decks/{pitch_deck}/assistant").get_data(as_text=True)
    form = re.search(r'<form[^>]*data-testid="replace-form"[^>]*>.*?</form>', settings, re.S).group(0)
    assert 'enctype="multipart/form-data"' in form and f'action="/decks/{pitch_deck}/replace"' in form
    assert 'name="slides"' in form and 'name="notes"' in form

    response = _replace(client, pitch_deck, make_pdf(V2_PAGES))
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/decks/{pitch_deck}")
    after = _state(app, pitch_deck)
    assert after["count"] == 6 and after["file"] == "pitch-v2.pdf" and after["faq"] == before["faq"] > 0
    assert after["version"] > before["version"] and after["key"] != before["key"]
    assert after["folder"].is_dir() and not before["folder"].exists()  # the old images are gone, the new in place
    # Notes follow the slide titles, wherever the slides moved; the new slide has none.
    for title in ("Acme Robotics", "Our solution", "Traction"):
        assert after["notes"][title] == before["notes"][title] and after["notes"][title]
    assert after["notes"]["Team"] == ""
    flash = client.get(f"/decks/{pitch_deck}").get_data(as_text=True)
    assert "New slides in place: 5 → 6 slides from pitch-v2.pdf." in flash

    investor = app.test_client()  # the same link shows the new version, its images under a new address
    page = investor.get(f"/s/{token}").get_data(as_text=True)
    assert f"v={after['key'][:12]}" in page and f"v={before['key'][:12]}" not in page
    assert investor.get(f"/s/{token}/slides/6.png").status_code == 200
    with app.app_context():  # what investors did before stays
        assert db.session.scalar(db.select(SlideView.visible_ms).where(SlideView.slide == 3)) == 4000
    from deckchat.domain.decks import deck_content
    from deckchat.ml.index import index_fingerprint, read_manifest
    from deckchat.ml.indexing import index_root

    with app.app_context():  # the chat index was rebuilt for the new version
        manifest = read_manifest(pitch_deck, index_root(app.instance_path))
        assert manifest["fingerprint"] == index_fingerprint(deck_content(pitch_deck))


def test_a_refused_file_changes_nothing(app, client, owner, pitch_deck):
    before = _state(app, pitch_deck)
    login(client)
    response = _replace(client, pitch_deck, b"just some text", "pitch-v2.pdf")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'data-testid="replace-form"' in page and "PDF" in page
    missing = client.post(f"/decks/{pitch_deck}/replace", data={}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "Choose a PDF or PPTX file." in missing.get_data(as_text=True)
    after = _state(app, pitch_deck)
    assert after == before and sorted(p.name for p in (after["folder"] / "slides").iterdir())[-1] == "005.png"
    assert [p.name for p in after["folder"].parent.iterdir() if p.name.startswith(".staging")] == []


def test_only_the_owner_replaces(app, client, owner, pitch_deck):
    with app.app_context():
        create_user("other@example.com", "password123")
    login(client, "other@example.com")
    assert _replace(client, pitch_deck, make_pdf(V2_PAGES)).status_code == 404
    assert _state(app, pitch_deck)["count"] == 5


def test_replace_from_the_cli(app, runner, pitch_deck, tmp_path):
    new = tmp_path / "pitch-v2.pdf"
    new.write_bytes(make_pdf(V2_PAGES))
    result = runner.invoke("deck", "replace", str(pitch_deck), str(new), "--no-index", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["slides"] == 6 and out["previous_slides"] == 5 and out["source_filename"] == "pitch-v2.pdf"
    bad = tmp_path / "notes.pdf"
    bad.write_text("not a pdf")
    refused = runner.invoke("deck", "replace", str(pitch_deck), str(bad))
    assert refused.exit_code != 0 and refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert _state(app, pitch_deck)["count"] == 6


def test_analytics_survive_a_shorter_version(app, client, owner, pitch_deck):
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    visit = re.search(rb'data-visit="([^"]+)"', app.test_client().get(f"/s/{token}").data).group(1).decode()
    for slide in (1, 5):
        client.post("/api/track", data=json.dumps({"visit": visit, "view": f"stay-on-{slide}", "slide": slide,
                                                   "visible_ms": 2000}), content_type="text/plain")
    login(client)
    assert _replace(client, pitch_deck, make_pdf(PITCH_PAGES[:2])).status_code == 303
    with app.app_context():
        from deckchat.models import Visit

        visit_id = db.session.scalar(db.select(Visit.id))
    for path in (f"/decks/{pitch_deck}/analytics", f"/decks/{pitch_deck}/analytics/slides.csv",
                 f"/decks/{pitch_deck}/analytics/visits/{visit_id}",
                 f"/decks/{pitch_deck}/analytics/visits.csv", f"/api/decks/{pitch_deck}/analytics"):
        assert client.get(path).status_code == 200, path
    stats = client.get(f"/api/decks/{pitch_deck}/analytics").json
    assert [s["slide"] for s in stats["slides"]] == [1, 2] and stats["visits"] == 1
    assert stats["slides"][0]["visible_seconds"] == 2.0
    # The visit went past what is now the last slide: it reached every slide and completed the deck, on the
    # dashboard and in the visits table alike.
    assert [s["reached"] for s in stats["slides"]] == [1, 1]
    assert stats["completed_visits"] == 1 and stats["completion_rate"] == 1.0
    with app.app_context():
        from deckchat.domain.visit_history import visit_rows

        (row,) = visit_rows(db.session.get(Deck, pitch_deck))
        assert row["furthest_slide"] == 2 and row["completed"] is True


def test_replacing_while_investors_report_views(app, client, owner, pitch_deck, monkeypatch):
    from deckchat.domain import decks

    render = decks._stage

    def render_while_a_heartbeat_commits(*args, **kwargs):
        staged = render(*args, **kwargs)
        commit_elsewhere()  # the request read the deck before rendering; a viewer's report lands meanwhile
        return staged

    monkeypatch.setattr(decks, "_stage", render_while_a_heartbeat_commits)
    login(client)
    assert _replace(client, pitch_deck, make_pdf(V2_PAGES)).status_code == 303
    assert _state(app, pitch_deck)["count"] == 6


def test_notes_follow_only_titles_that_name_one_slide(app, client, owner):
    from deckchat.domain.decks import import_deck
    from deckchat.models import User

    header = "Acme - Confidential"
    pages = [f"{header}\nPage {n}" for n in range(1, 4)]
    notes = "\n\n".join(f"## Slide {n}\nNote {n}" for n in range(1, 4))
    with app.app_context():
        path = Path(app.instance_path) / "v1.pdf"
        path.write_bytes(make_pdf(pages + ["Pricing\n$49 a seat"]))
        deck, _ = import_deck(owner=db.session.get(User, owner), instance_path=app.instance_path,
                              slides_path=path, filename="v1.pdf", notes_md=notes + "\n\n## Slide 4\nPricing note")
        deck_id = deck.id
    login(client)
    _replace(client, deck_id, make_pdf(["Pricing\n$59 a seat"] + list(reversed(pages))))
    state = _state(app, deck_id)
    # The repeated header names no slide: its notes are not guessed onto the wrong pages; Pricing's moved with it.
    assert state["notes"] == {"Pricing": "Pricing note", header: ""}
    page = client.get(f"/decks/{deck_id}").get_data(as_text=True)
    assert "The notes of old slides 1, 2, 3 found no slide with the same title" in page


def test_notes_edited_while_the_new_slides_render_are_carried(app, client, owner, pitch_deck, monkeypatch):
    from sqlalchemy import text

    from deckchat.domain import decks

    render = decks._stage
    title = PITCH_PAGES[2].split("\n")[0]

    def render_while_the_owner_edits_notes(*args, **kwargs):
        staged = render(*args, **kwargs)
        with db.engine.connect() as conn:  # another tab saves the notes of a slide the new version keeps
            conn.execute(text("UPDATE slides SET notes = 'Edited meanwhile' WHERE deck_id = :d AND number = 3"),
                         {"d": pitch_deck})
            conn.commit()
        return staged

    monkeypatch.setattr(decks, "_stage", render_while_the_owner_edits_notes)
    login(client)
    assert _replace(client, pitch_deck, make_pdf(V2_PAGES)).status_code == 303
    assert _state(app, pitch_deck)["notes"][title] == "Edited meanwhile"


def test_notes_that_find_no_place_are_always_reported():
    from types import SimpleNamespace

    from deckchat.domain.content import SlideContent
    from deckchat.domain.decks import _carry_notes, _lost_notes

    old = [SimpleNamespace(number=n, title=t, notes=f"old {n}") for n, t in enumerate(["", "", "Team", "Team"], 1)]
    new = [SlideContent(1, "", "", "own"), SlideContent(2, "", "", ""), SlideContent(3, "Team", "", "own"),
           SlideContent(4, "Team", "", "")]
    # Neither an empty title nor a repeated one carries notes, so all four old notes are gone: all are reported.
    assert _lost_notes(old, _carry_notes(old, new)) == [1, 2, 3, 4]
    # Notes that reach the new version anyway (carried by a unique title, or the same text from a notes file)
    # and notes the presenter replaced on the slide that takes the title are not lost.
    old = [SimpleNamespace(number=1, title="Pricing", notes="p"), SimpleNamespace(number=2, title="Ask", notes="a"),
           SimpleNamespace(number=3, title="Team", notes="t"), SimpleNamespace(number=4, title="Old", notes="o")]
    new = [SlideContent(1, "Ask", "", ""), SlideContent(2, "Pricing", "", ""), SlideContent(3, "Plans", "", " a "),
           SlideContent(4, "Team", "", "rewritten")]
    carried = _carry_notes(old, new)
    assert [s.notes for s in carried] == ["a", "p", " a ", "rewritten"]
    assert _lost_notes(old, carried) == [4]
