"""Changing a deck's material after import: notes (all at once or one slide's), FAQ and documents, added or
removed one by one (examples: domain/examples.py).

Every change bumps `Deck.content_version`; the caller then rebuilds the chat index.
"""
from __future__ import annotations

from ..database import lock_for_writing
from ..extensions import db
from ..models import Deck, Document, FaqItem
from .content import DocumentContent, SlideContent
from .decks import merge_notes, parse_faq
from .ingest import UploadError


def update_material(deck: Deck, *, notes_md: str | None = None, faq_md: str | None = None,
                    documents: list[DocumentContent] | None = None) -> list[str]:
    """Apply new notes (per slide), a new FAQ (replaces the old) and extra documents; return what changed."""
    if notes_md or faq_md or documents:
        lock_for_writing()  # the request read the deck before reading the uploads (a PDF takes a while)
    changed: list[str] = []
    if notes_md:
        slides = [SlideContent(s.number, s.title, s.text, s.notes) for s in deck.slides]
        merged = merge_notes(slides, notes_md)
        for row, new in zip(deck.slides, merged):
            row.notes = new.notes
        changed.append("notes")
    if faq_md:
        deck.faq_items = [FaqItem(position=i, question=f.question, answer=f.answer)
                          for i, f in enumerate(parse_faq(faq_md))]
        changed.append("FAQ")
    for doc in documents or []:
        deck.documents = [d for d in deck.documents if d.filename != doc.filename]  # same name: replaced
        deck.documents.append(Document(filename=doc.filename, kind=doc.kind, text=doc.text))
        changed.append(doc.filename)
    if changed:
        deck.content_version += 1
        db.session.commit()
    return changed


def _remove_row(deck: Deck, relation: str, row_id: int):
    """Take one row out of the deck's `relation` list under the write lock (delete-orphan deletes it) and mark
    the material changed; the row, or None when it is not this deck's. The caller commits."""
    lock_for_writing()
    rows = getattr(deck, relation)
    row = next((r for r in rows if r.id == row_id), None)
    if row is not None:
        rows.remove(row)
        deck.content_version += 1
    return row


def remove_document(deck: Deck, document_id: int) -> str | None:
    """Remove one of the deck's documents; its file name, or None when it is not this deck's."""
    doc = _remove_row(deck, "documents", document_id)
    db.session.commit()
    return doc.filename if doc else None


def remove_faq_item(deck: Deck, item_id: int) -> str | None:
    """Remove one FAQ item (the others keep their order); its question, or None when it is not this deck's."""
    item = _remove_row(deck, "faq_items", item_id)
    for position, rest in enumerate(deck.faq_items):
        rest.position = position
    db.session.commit()
    return item.question if item else None


NOTES_MAX = 20_000  # characters of one slide's notes


def set_slide_notes(deck: Deck, number: int, notes: str) -> bool:
    """Write one slide's speaker notes (empty removes them); return whether they changed. LookupError for a slide
    the deck lacks, UploadError for notes over NOTES_MAX characters."""
    notes = "\n".join(line.rstrip() for line in (notes or "").replace("\r\n", "\n").strip().split("\n"))
    if len(notes) > NOTES_MAX:
        raise UploadError(f"Speaker notes can be at most {NOTES_MAX:,} characters; these have {len(notes):,}.")
    lock_for_writing()
    slide = next((s for s in deck.slides if s.number == number), None)
    if slide is None:
        raise LookupError(f"the deck has no slide {number}")
    if slide.notes == notes:
        return False
    slide.notes = notes
    deck.content_version += 1
    db.session.commit()
    return True


def add_faq_item(deck: Deck, question: str, answer: str) -> FaqItem:
    """Append a question and answer to the deck's FAQ (e.g. when the owner answers a knowledge gap)."""
    question, answer = " ".join(question.split()), answer.strip()
    if not question or not answer:
        raise UploadError("Both the question and the answer are needed.")
    item = FaqItem(position=len(deck.faq_items), question=question[:1000], answer=answer)
    deck.faq_items.append(item)
    deck.content_version += 1
    db.session.commit()
    return item

