"""Creating, reading and deleting decks; a failed import leaves no rows and no files behind."""
from __future__ import annotations

import logging
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from ..database import lock_for_writing
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


def read_text_upload(data: bytes, label: str, field: str = "notes") -> str:
    """Decode an uploaded text file, refusing binary content; errors name the form `field` they concern."""
    for magic, kind in ((ingest.PDF_MAGIC, "a PDF"), (ingest.ZIP_MAGIC, "an Office file or zip archive")):
        if data.startswith(magic):
            raise UploadError(f"The {label} must be Markdown or plain text (.md, .txt); this file is {kind}.", field)
    if b"\x00" in data[:8192]:
        raise UploadError(f"The {label} is not a text file.", field)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(f"The {label} is not UTF-8 text.", field) from exc


def read_document(filename: str, path: Path) -> DocumentContent:
    """Read an extra document (Markdown, text or PDF), checking its content against its name."""
    suffix = Path(filename).suffix.lower()
    kind = DOC_KINDS.get(suffix)
    if kind is None:
        raise UploadError(f"{filename}: documents must be Markdown (.md), text (.txt) or PDF (.pdf).", "documents")
    data = path.read_bytes()
    if not data:
        raise UploadError(f"{filename}: the file is empty.", "documents")
    try:
        if kind == "pdf":
            if not data.startswith(ingest.PDF_MAGIC):
                raise UploadError(f"{filename}: the file is not a PDF.")
            text = ingest.pdf_text(path)
        else:
            text = read_text_upload(data, f"document {filename}")
    except UploadError as exc:
        exc.field = "documents"
        raise
    if not text.strip():
        raise UploadError(f"{filename}: the document has no text.", "documents")
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
    kind, slides, document_title = _read_slides(slides_path, limits)
    slides = merge_notes(slides, notes_md)
    faq = parse_faq(faq_md) if faq_md else []
    key, staging, warnings = _stage(kind, slides_path, slides, instance_path, limits)
    with _landing(staging, key):
        deck = Deck(
            owner=owner, title=(title or "").strip()[:200] or _default_title(filename, slides, document_title),
            source_filename=safe_name(filename), source_kind=kind, storage_key=key,
            slide_count=len(slides), render_note=warnings[0] if warnings else None,
        )
        deck.slides = _slide_rows(slides)
        deck.faq_items = [FaqItem(position=i, question=f.question, answer=f.answer) for i, f in enumerate(faq)]
        deck.documents = [Document(filename=d.filename, kind=d.kind, text=d.text) for d in documents or []]
        db.session.add(deck)
    return deck, warnings


def replace_slides(deck: Deck, *, instance_path: str | Path, slides_path: Path, filename: str,
                   notes_md: str | None = None, limits: ImportLimits | None = None) -> list[str]:
    """Put a new version of the slides (PDF or PPTX) in place of the deck's, keeping its links, FAQ, documents,
    analytics and title; return warnings for the presenter. Nothing changes when the new file is refused.

    Speaker notes: the new file's own (PPTX), then `notes_md`; a slide left without notes keeps those of the old
    slide with the same title when that title names one slide in each version (a running header repeated on
    every page names none), so a reordered or extended deck keeps what the presenter wrote. A warning lists the
    old slides whose notes found no place.
    """
    limits = limits or ImportLimits()
    kind, slides, _ = _read_slides(slides_path, limits)
    merge_notes(slides, notes_md)  # a notes file that does not fit is refused before the slides are rendered
    key, staging, warnings = _stage(kind, slides_path, slides, instance_path, limits)
    with _landing(staging, key):
        # One replacement at a time (PostgreSQL; SQLite's write lock already is one); the folder read under it.
        db.session.execute(select(Deck.id).where(Deck.id == deck.id).with_for_update())
        # The old notes as they are now, under the lock: an edit saved while the slides rendered is carried too.
        current = db.session.scalars(select(Slide).where(Slide.deck_id == deck.id).order_by(Slide.number)
                                     .execution_options(populate_existing=True)).all()
        slides = merge_notes(_carry_notes(current, slides), notes_md)
        lost = _lost_notes(current, slides)
        old_folder = deck_folder(instance_path, deck)
        deck.slides.clear()
        db.session.flush()  # the old rows go first: (deck, number) is unique
        deck.slides = _slide_rows(slides)
        deck.source_filename, deck.source_kind, deck.storage_key = safe_name(filename), kind, key
        deck.slide_count, deck.render_note = len(slides), warnings[0] if warnings else None
        deck.content_version += 1  # the chat index is stale until rebuilt
    if lost:
        warnings.append(f"The notes of old slide{'s' if len(lost) > 1 else ''} {', '.join(map(str, lost))} found no "
                        "slide with the same title in the new version; upload them again under Material if they "
                        "still apply.")
    shutil.rmtree(old_folder, ignore_errors=True)
    return warnings


def _title_key(title: str) -> str:
    """A slide title compared across versions: spacing and case do not count."""
    return " ".join(title.split()).casefold()


def _unique_titles(old: list[Slide], new: list[SlideContent]) -> set[str]:
    """The title keys that name exactly one slide in each version (a running header names none)."""
    old_count = Counter(_title_key(s.title) for s in old)
    new_count = Counter(_title_key(s.title) for s in new)
    return {key for key, n in old_count.items() if key and n == new_count[key] == 1}


def _carry_notes(old: list[Slide], new: list[SlideContent]) -> list[SlideContent]:
    """The new slides with the notes of old slides carried over by unique title where they have none of their
    own."""
    unique = _unique_titles(old, new)
    carried = {_title_key(s.title): s.notes for s in old if s.notes.strip() and _title_key(s.title) in unique}
    return [s if s.notes.strip() else SlideContent(s.number, s.title, s.text, carried.get(_title_key(s.title), ""))
            for s in new]


def _lost_notes(old: list[Slide], new: list[SlideContent]) -> list[int]:
    """The numbers of old slides whose notes are in no slide of the new version (notes files applied): neither
    the same text on some slide, nor new notes on the one slide that takes its unique title."""
    unique = _unique_titles(old, new)
    texts = {" ".join(s.notes.split()) for s in new if s.notes.strip()}
    noted = {_title_key(s.title) for s in new if s.notes.strip()}
    lost = []
    for s in old:
        key = _title_key(s.title)
        if not s.notes.strip() or " ".join(s.notes.split()) in texts:
            continue
        if key in unique and key in noted:
            continue  # the presenter wrote new notes for that slide
        lost.append(s.number)
    return lost


def _read_slides(slides_path: Path, limits: ImportLimits) -> tuple[str, list[SlideContent], str]:
    """Check and read an uploaded slides file: its kind ("pdf" or "pptx"), its slides and its document title."""
    kind = ingest.detect_kind(slides_path)
    document_title = ""
    if kind == "pptx":
        ingest.check_archive(slides_path, limits.max_unzipped)
        slides = ingest.extract_pptx_slides(slides_path)
        if not slides:
            raise UploadError("The presentation has no slides.")
        document_title = ingest.pptx_document_title(slides_path)
    else:
        slides = ingest.extract_pdf_slides(slides_path, limits.max_slides)
    if len(slides) > limits.max_slides:
        raise UploadError(f"The deck has {len(slides)} slides; the limit is {limits.max_slides}.")
    return kind, slides, document_title


def _stage(kind: str, slides_path: Path, slides: list[SlideContent], instance_path: str | Path,
           limits: ImportLimits) -> tuple[str, Path, list[str]]:
    """Copy the original and render its images into a new staging folder: (storage key, the folder, warnings);
    the caller renames the folder to the key once the rows are in, or removes it."""
    key = uuid.uuid4().hex
    staging = storage_root(instance_path) / f".staging-{key}"
    staging.mkdir(parents=True)
    try:
        shutil.copyfile(slides_path, staging / f"original.{kind}")
        render_note = _render(kind, slides_path, slides, staging, limits)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return key, staging, [render_note] if render_note else []


@contextmanager
def _landing(staging: Path, key: str) -> Iterator[None]:
    """Commit the rows the block changes together with the staged files moved to their folder `key`; on any
    failure neither lands: the session is rolled back and the staging folder removed."""
    final = staging.parent / key
    try:
        lock_for_writing()  # the request's read snapshot is long past (rendering takes seconds)
        yield
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


def _slide_rows(slides: list[SlideContent]) -> list[Slide]:
    """Slide rows for parsed slides."""
    return [Slide(number=s.number, title=s.title[:300], text=s.text, notes=s.notes) for s in slides]


def parse_faq(faq_md: str) -> list[FaqEntry]:
    """FAQ entries, or an UploadError that says how the file should look."""
    try:
        return parse_faq_markdown(faq_md)
    except ValueError as exc:
        raise UploadError(f"FAQ: {exc}", "faq") from exc


def _default_title(filename: str, slides: list[SlideContent], document_title: str = "") -> str:
    """The title set in the file's properties, else the first slide's title, else the file name made readable."""
    for title in (document_title, slides[0].title if slides else ""):
        if title.strip():
            return title.strip()[:200]
    return ingest.pretty_stem(safe_name(filename))[:200] or "Untitled deck"


def merge_notes(slides: list[SlideContent], notes_md: str | None) -> list[SlideContent]:
    """Apply notes from a Markdown file with '## Slide N' headings over the slides' own notes."""
    if not notes_md:
        return slides
    try:
        notes = parse_notes_markdown(notes_md)
    except ValueError as exc:
        raise UploadError(f"Speaker notes: {exc}", "notes") from exc
    beyond = sorted(n for n in notes if not 1 <= n <= len(slides))
    if beyond:
        raise UploadError(f"Speaker notes name slide {beyond[0]}, but the deck has {len(slides)} slides.", "notes")
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


TITLE_MAX = 200


def clean_title(title: str) -> str:
    """A deck title as stored: whitespace (line breaks too) collapsed, no control characters; ValueError if empty or long."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in title or "").split())
    if not cleaned:
        raise ValueError("The title cannot be empty.")
    if len(cleaned) > TITLE_MAX:
        raise ValueError(f"The title can be at most {TITLE_MAX} characters.")
    return cleaned


def rename_deck(deck: Deck, title: str) -> bool:
    """Give a deck a new title; return whether it changed. The title is plain text: pages escape it."""
    cleaned = clean_title(title)
    if cleaned == deck.title:
        return False
    deck.title = cleaned
    db.session.commit()
    return True


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

