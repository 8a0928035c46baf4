"""Deck import: PDF text, PPTX notes, validation by content, and nothing left behind on failure."""
from __future__ import annotations

from pathlib import Path

import pytest

from deckchat.domain.decks import ImportLimits, import_deck, read_document
from deckchat.domain.ingest import UploadError, detect_kind, extract_pdf_slides
from deckchat.extensions import db
from deckchat.models import Deck, Document, FaqItem, Slide, User
from factories import PITCH_PAGES, REAL_PPTX, make_pdf, make_pptx, make_zip


def _import(app, owner, path: Path, **kwargs):
    with app.app_context():
        deck, warnings = import_deck(
            owner=db.session.get(User, owner), instance_path=app.instance_path, slides_path=path,
            filename=kwargs.pop("filename", path.name), limits=ImportLimits.from_config(app.config), **kwargs)
        return deck.id, warnings


def _nothing_stored(app) -> None:
    with app.app_context():
        for model in (Deck, Slide, FaqItem, Document):
            assert db.session.query(model).count() == 0, model
    decks_dir = Path(app.instance_path) / "decks"
    assert not decks_dir.exists() or not any(decks_dir.iterdir())


def test_pdf_with_text_layer_gives_text_per_slide(tmp_path):
    pdf = tmp_path / "deck.pdf"
    pdf.write_bytes(make_pdf(PITCH_PAGES))
    slides = extract_pdf_slides(pdf)
    assert [s.number for s in slides] == [1, 2, 3, 4, 5]
    assert slides[3].title == "Traction"
    assert "2.1M ARR" in slides[3].text
    assert "Series A" in slides[4].text


def test_pdf_import_stores_slides_notes_faq_and_images(app, owner, pitch_files):
    deck_id, warnings = _import(app, owner, pitch_files["pdf"], notes_md=pitch_files["notes"].read_text(),
                             faq_md=pitch_files["faq"].read_text())
    assert warnings == []
    with app.app_context():
        deck = db.session.get(Deck, deck_id)
        assert deck.slide_count == 5 and deck.source_kind == "pdf"
        assert deck.notes_count == 4
        assert "five minutes" in deck.slides[2].notes
        assert [f.question for f in deck.faq_items][0] == "How much have you raised so far?"
        folder = Path(app.instance_path) / "decks" / deck.storage_key
        assert sorted(p.name for p in (folder / "slides").iterdir()) == [f"{i:03d}.png" for i in range(1, 6)]
        assert len(list((folder / "thumbs").iterdir())) == 5


@pytest.mark.skipif(not REAL_PPTX.exists(), reason="real test deck not present in ../shared/testdata/real")
def test_real_pptx_has_21_slides_with_notes_on_20(app, owner):
    deck_id, _ = _import(app, owner, REAL_PPTX)
    with app.app_context():
        deck = db.session.get(Deck, deck_id)
        assert deck.slide_count == 21
        assert deck.notes_count == 20
        assert deck.slides[2].title == "Setting up your coding environment"
        folder = Path(app.instance_path) / "decks" / deck.storage_key / "slides"
        assert len(list(folder.iterdir())) == 21


def test_pptx_notes_and_text_are_read(tmp_path):
    from deckchat.domain.ingest import extract_pptx_slides

    path = tmp_path / "d.pptx"
    path.write_bytes(make_pptx([("Hello", "World body", "Say hi"), ("Second", "More", "")]))
    slides = extract_pptx_slides(path)
    assert [(s.title, s.notes) for s in slides] == [("Hello", "Say hi"), ("Second", "")]
    assert "World body" in slides[0].text


def test_pptx_without_libreoffice_gets_placeholders_and_a_clear_note(app_factory, tmp_path):
    app = app_factory(SOFFICE="no-such-soffice-binary")
    with app.app_context():
        from deckchat.domain.accounts import create_user

        uid = create_user("p@example.com", "password123").id
    path = tmp_path / "d.pptx"
    path.write_bytes(make_pptx([("Hello", "World", "Notes")]))
    deck_id, warnings = _import(app, uid, path)
    assert warnings and "LibreOffice is not installed" in warnings[0]
    with app.app_context():
        deck = db.session.get(Deck, deck_id)
        assert deck.render_note and (Path(app.instance_path) / "decks" / deck.storage_key / "slides" / "001.png").exists()


def test_corrupt_pdf_is_refused_and_leaves_nothing(app, owner, tmp_path):
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(make_pdf(PITCH_PAGES)[:300])
    with pytest.raises(UploadError, match="damaged"):
        _import(app, owner, bad)
    _nothing_stored(app)


def test_renamed_exe_is_refused_and_leaves_nothing(app, owner, tmp_path):
    exe = tmp_path / "deck.pdf"
    exe.write_bytes(b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200 + b"This program cannot be run in DOS mode")
    with pytest.raises(UploadError, match="PDF or a PowerPoint"):
        _import(app, owner, exe)
    _nothing_stored(app)


def test_zip_that_is_not_a_presentation_is_refused(tmp_path):
    path = tmp_path / "x.pptx"
    path.write_bytes(make_zip({"word/document.xml": b"<x/>"}))
    with pytest.raises(UploadError, match="not a PowerPoint"):
        detect_kind(path)


def test_zip_bomb_and_path_traversal_are_refused(app, owner, tmp_path):
    bomb = tmp_path / "bomb.pptx"
    bomb.write_bytes(make_zip({"ppt/presentation.xml": b"<p/>", "ppt/media/big.bin": b"\0" * 50_000_000}))
    with pytest.raises(UploadError, match="zip bomb"):
        _import(app, owner, bomb)
    evil = tmp_path / "evil.pptx"
    evil.write_bytes(make_zip({"ppt/presentation.xml": b"<p/>", "../../etc/evil": b"x"}))
    with pytest.raises(UploadError, match="unsafe entry"):
        _import(app, owner, evil)
    _nothing_stored(app)


def test_failure_after_rendering_removes_the_files(app, owner, pitch_files, monkeypatch):
    """A database failure at commit time must not leave rendered images behind."""
    from sqlalchemy.orm import Session

    def broken_commit(self):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Session, "commit", broken_commit)
    with pytest.raises(RuntimeError):
        _import(app, owner, pitch_files["pdf"])
    monkeypatch.undo()
    _nothing_stored(app)


def test_notes_for_missing_slides_and_empty_faq_are_errors(app, owner, pitch_files):
    with pytest.raises(UploadError, match="slide 9"):
        _import(app, owner, pitch_files["pdf"], notes_md="## Slide 9\nToo far")
    with pytest.raises(UploadError, match="no FAQ questions"):
        _import(app, owner, pitch_files["pdf"], faq_md="Just text, no headings")
    _nothing_stored(app)


def test_documents_are_checked_by_name_and_content(tmp_path):
    fake = tmp_path / "paper.pdf"
    fake.write_bytes(b"plain text pretending")
    with pytest.raises(UploadError, match="not a PDF"):
        read_document("paper.pdf", fake)
    binary = tmp_path / "notes.md"
    binary.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(UploadError, match="not a text file"):
        read_document("notes.md", binary)
    with pytest.raises(UploadError, match="Markdown"):
        read_document("tool.exe", binary)
    good = tmp_path / "white.md"
    good.write_text("# Whitepaper\n\nOur gripper.")
    doc = read_document("../../white.md", good)
    assert doc.filename == "white.md" and doc.kind == "md"


# Titles ---------------------------------------------------------------------------------------------------------

REAL_GIT_PPTX = REAL_PPTX.parent / "ms_workshop_intro_git_github_slides.pptx"


def test_empty_slides_file_says_it_is_empty(app, owner, tmp_path):
    empty = tmp_path / "deck.pdf"
    empty.write_bytes(b"")
    with pytest.raises(UploadError, match=r"^The file is empty\.$") as caught:
        _import(app, owner, empty)
    assert caught.value.field == "slides"
    _nothing_stored(app)


def test_errors_name_the_upload_they_concern(app, owner, pitch_files):
    with pytest.raises(UploadError) as notes:
        _import(app, owner, pitch_files["pdf"], notes_md="## Slide 9\nToo far")
    with pytest.raises(UploadError) as faq:
        _import(app, owner, pitch_files["pdf"], faq_md="Just text, no headings")
    assert (notes.value.field, faq.value.field) == ("notes", "faq")


def test_a_pdf_title_wrapped_over_lines_is_read_whole(tmp_path):
    # PowerPoint's PDF export draws the space where a title wrapped; the next box ("Presented by:") is not the title.
    pdf = tmp_path / "deck.pdf"
    pdf.write_bytes(make_pdf(["Create a resume website in \nthe browser using \ngithub.dev and GitHub Pages\nPresented by:",
                              "Add your skills, education, and \nabout you\nList your skills"]))
    slides = extract_pdf_slides(pdf)
    assert [s.title for s in slides] == ["Create a resume website in the browser using github.dev and GitHub Pages",
                                         "Add your skills, education, and about you"]


def test_a_pdf_title_wrapped_without_a_drawn_space_is_joined_by_geometry(tmp_path):
    pdf = tmp_path / "deck.pdf"
    pdf.write_bytes(make_pdf(["Warehouse robots that pick anything at\nall\nBody", "Acme Robotics\nWarehouse robots"]))
    assert [s.title for s in extract_pdf_slides(pdf)] == ["Warehouse robots that pick anything at all", "Acme Robotics"]


def test_a_long_pdf_title_is_cut_at_a_word_with_an_ellipsis(tmp_path):
    words = "word " * 60
    pdf = tmp_path / "deck.pdf"
    pdf.write_bytes(make_pdf([words]))
    title = extract_pdf_slides(pdf)[0].title
    assert len(title) <= 120 and title.endswith("word…")


def test_title_lines_break_at_another_font_size_or_a_blank_line():
    from deckchat.domain.titles import TextLine, title_from_lines

    big = TextLine("Our traction ", 40, 60, 400, 300, 440, 100)
    small = TextLine("12 customers", 20, 60, 370, 200, 390, 40)
    assert title_from_lines([big, small]) == "Our traction"
    assert title_from_lines([TextLine(""), TextLine("First "), TextLine(""), TextLine("Second")]) == "First"
    assert title_from_lines([TextLine("Wrapped "), TextLine("title"), TextLine("Body")]) == "Wrapped title"


@pytest.mark.skipif(not REAL_PPTX.exists(), reason="real test deck not present in ../shared/testdata/real")
def test_real_pptx_titles_are_whole_and_the_deck_title_comes_from_the_file(app, owner):
    from deckchat.domain.ingest import extract_pptx_slides

    titles = [s.title for s in extract_pptx_slides(REAL_PPTX)]
    assert titles[0] == "Create a resume website in the browser using github.dev and GitHub Pages"
    assert titles[11] == "Add your skills, education, and about you" and titles[9] == "HTML Lists"
    deck_id, _ = _import(app, owner, REAL_PPTX)
    with app.app_context():  # no title given: the one in the file's properties
        assert db.session.get(Deck, deck_id).title == (
            "Create a resume website in the Browser using github.dev and GitHub Pages")


@pytest.mark.skipif(not REAL_GIT_PPTX.exists(), reason="real test deck not present in ../shared/testdata/real")
def test_real_pptx_without_title_placeholders_or_a_set_title(app, owner):
    from deckchat.domain.ingest import extract_pptx_slides, pptx_document_title

    titles = [s.title for s in extract_pptx_slides(REAL_GIT_PPTX)]
    assert titles[0] == "Introduction to Git & GitHub & Version Control"  # a heading in a text box, on two lines
    assert titles[3] == "This Idea of a safe point is exactly What Version Control is"  # a line break inside the title
    assert titles[1] == "Agenda" and titles[9] == "Exercise – Install and Configure Git"
    assert pptx_document_title(REAL_GIT_PPTX) == ""  # "PowerPoint Presentation" is PowerPoint's default, not a title
    deck_id, _ = _import(app, owner, REAL_GIT_PPTX)
    with app.app_context():
        assert db.session.get(Deck, deck_id).title == "Introduction to Git & GitHub & Version Control"


def test_deck_title_falls_back_to_a_readable_file_name(app, owner, tmp_path):
    pdf = tmp_path / "q3_board-deck.pdf"
    pdf.write_bytes(make_pdf(["", "Second page"]))
    deck_id, _ = _import(app, owner, pdf)
    with app.app_context():
        assert db.session.get(Deck, deck_id).title == "Q3 board deck"
