"""Creating, reading and deleting decks; a failed import leaves no rows and no files behind."""
from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..extensions import db
from ..models import Deck, Document, FaqItem, Slide, User
from . import ingest
from .content import DeckContent, DocumentContent, FaqEntry, SlideContent
from .ingest import UploadError
from .markdown import parse_faq_markdown, parse_notes_markdown

log = logging.getLogger(__name__)

DOC_KINDS = {".md": "md", ".markdown": "md", ".txt": "txt", ".pdf": "pdf"}


@dataclass
class ImportLimits:
    """Limits and rendering settings for an import."""

    max_slides: int = 300
    max_unzipped: int = 500 * 2**20
    width: int = 1600
    thumb_width: int = 240
    soffice: str = "soffice"

    @classmethod
    def from_config(cls, cfg) -> ImportLimits:
        """Limits from an app's configuration mapping."""
        return cls(cfg["MAX_SLIDES"], cfg["MAX_UNZIPPED_BYTES"], cfg["SLIDE_IMAGE_WIDTH"], cfg["THUMB_WIDTH"],
                   cfg["SOFFICE"])


def read_text_upload(data: bytes, label: str) -> str:
    """Decode an uploaded text file, refusing binary content."""
    if b"\x00" in data[:8192]:
        raise UploadError(f"The {label} is not a text file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(f"The {label} is not UTF-8 text.") from exc


def read_document(filename: str, path: Path) -> DocumentContent:
    """Read an extra document (Markdown, text or PDF), checking its content against its name."""
    suffix = Path(filename).suffix.lower()
    kind = DOC_KINDS.get(suffix)
    if kind is None:
        raise UploadError(f"{filename}: documents must be Markdown (.md), text (.txt) or PDF (.pdf).")
    data = path.read_bytes()
    if kind == "pdf":
        if not data.startswith(ingest.PDF_MAGIC):
            raise UploadError(f"{filename}: the file is not a PDF.")
        text = ingest.pdf_text(path)
    else:
        text = read_text_upload(data, f"document {filename}")
    if not text.strip():
        raise UploadError(f"{filename}: the document has no text.")
    return DocumentContent(safe_name(filename), kind, text)


def safe_name(filename: str) -> str:
    """A display name for an uploaded file: no folders, no control characters, bounded length."""
    name = Path(filename.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "upload"
    return name[:200]


def storage_root(instance_path: str | Path) -> Path:
    """Folder that holds every deck's files."""
    return Path(instance_path) / "decks"


def deck_folder(instance_path: str | Path, deck: Deck) -> Path:
    """Folder of one deck's original file and images."""
    return storage_root(instance_path) / deck.storage_key


def import_deck(
    *,
    owner: User,
    instance_path: str | Path,
    slides_path: Path,
    filename: str,
    title: str | None = None,
    notes_md: str | None = None,
    faq_md: str | None = None,
    documents: list[DocumentContent] | None = None,
    limits: ImportLimits | None = None,
) -> tuple[Deck, list[str]]:
    """Validate, parse, render and store a deck; return it with warnings for the presenter."""
    limits = limits or ImportLimits()
    warnings: list[str] = []
    kind = ingest.detect_kind(slides_path)
    if kind == "pptx":
        ingest.check_archive(slides_path, limits.max_unzipped)
        slides = ingest.extract_pptx_slides(slides_path)
        if not slides:
            raise UploadError("The presentation has no slides.")
    else:
        slides = ingest.extract_pdf_slides(slides_path, limits.max_slides)
    if len(slides) > limits.max_slides:
        raise UploadError(f"The deck has {len(slides)} slides; the limit is {limits.max_slides}.")
    slides = merge_notes(slides, notes_md)
    faq = parse_faq(faq_md) if faq_md else []

    key = uuid.uuid4().hex
    root = storage_root(instance_path)
    staging = root / f".staging-{key}"
    final = root / key
    staging.mkdir(parents=True)
    try:
        suffix = ".pptx" if kind == "pptx" else ".pdf"
        shutil.copyfile(slides_path, staging / f"original{suffix}")
        render_note = _render(kind, slides_path, slides, staging, limits)
        if render_note:
            warnings.append(render_note)
        deck = Deck(
            owner=owner, title=(title or "").strip()[:200] or _default_title(filename, slides),
            source_filename=safe_name(filename), source_kind=kind, storage_key=key,
            slide_count=len(slides), render_note=render_note,
        )
        deck.slides = [Slide(number=s.number, title=s.title[:300], text=s.text, notes=s.notes) for s in slides]
        deck.faq_items = [FaqItem(position=i, question=f.question, answer=f.answer) for i, f in enumerate(faq)]
        deck.documents = [Document(filename=d.filename, kind=d.kind, text=d.text) for d in documents or []]
        db.session.add(deck)
        db.session.flush()
        staging.rename(final)
        try:
            db.session.commit()
        except Exception:
            final.rename(staging)
            raise
    except BaseException:
        db.session.rollback()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return deck, warnings


def parse_faq(faq_md: str) -> list[FaqEntry]:
    """FAQ entries, or an UploadError that says how the file should look."""
    try:
        return parse_faq_markdown(faq_md)
    except ValueError as exc:
        raise UploadError(f"FAQ: {exc}") from exc


def _default_title(filename: str, slides: list[SlideContent]) -> str:
    """The first slide's title, else the file name without its extension."""
    return (slides[0].title if slides and slides[0].title else Path(safe_name(filename)).stem)[:200]


def merge_notes(slides: list[SlideContent], notes_md: str | None) -> list[SlideContent]:
    """Apply notes from a Markdown file with '## Slide N' headings over the slides' own notes."""
    if not notes_md:
        return slides
    try:
        notes = parse_notes_markdown(notes_md)
    except ValueError as exc:
        raise UploadError(f"Speaker notes: {exc}") from exc
    beyond = sorted(n for n in notes if not 1 <= n <= len(slides))
    if beyond:
        raise UploadError(f"Speaker notes name slide {beyond[0]}, but the deck has {len(slides)} slides.")
    return [SlideContent(s.number, s.title, s.text, notes.get(s.number, s.notes)) for s in slides]


def _render(kind: str, path: Path, slides: list[SlideContent], out: Path, limits: ImportLimits) -> str | None:
    """Render slide images into `out`; return a note when only placeholders could be made."""
    if kind == "pdf":
        ingest.render_pdf(path, out, limits.width, limits.thumb_width)
        return None
    try:
        pdf = ingest.pptx_to_pdf(path, out, limits.soffice)
    except ingest.RenderUnavailable as exc:
        log.warning("%s", exc)
        ingest.render_placeholders(slides, out, limits.width, limits.thumb_width)
        return str(exc)
    rendered = ingest.render_pdf(pdf, out, limits.width, limits.thumb_width)
    pdf.unlink()
    if rendered != len(slides):
        # Hidden or odd slides can make LibreOffice's page count differ; keep numbering honest.
        ingest.render_placeholders(slides[rendered:], out, limits.width, limits.thumb_width)
    return None


def delete_deck(deck: Deck, instance_path: str | Path) -> None:
    """Delete a deck's rows (links, visits, views cascade) and then its files."""
    folder = deck_folder(instance_path, deck)
    db.session.delete(deck)
    db.session.commit()
    shutil.rmtree(folder, ignore_errors=True)


def owned_deck(owner_id: int, deck_id: int) -> Deck | None:
    """The deck if it exists and belongs to this owner, else None."""
    deck = db.session.get(Deck, deck_id)
    return deck if deck is not None and deck.owner_id == owner_id else None


def deck_content(deck_id: int) -> DeckContent:
    """Load a deck's material from the database as plain data."""
    deck = db.session.get(Deck, deck_id)
    if deck is None:
        raise LookupError(f"deck {deck_id} does not exist")
    return DeckContent(
        deck_id=deck.id,
        title=deck.title,
        version=deck.content_version,
        slides=[SlideContent(s.number, s.title, s.text, s.notes) for s in deck.slides],
        faq=[FaqEntry(f.question, f.answer) for f in deck.faq_items],
        documents=[DocumentContent(d.filename, d.kind, d.text) for d in deck.documents],
        examples=[FaqEntry(e.question, e.answer) for e in deck.examples],
    )

