"""Changing a deck's material after import: notes, FAQ and documents (examples: domain/examples.py).

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

