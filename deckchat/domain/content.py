"""A deck's material as plain data: what the index, the prompts and the chain read (no Flask here)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field



@dataclass(frozen=True)
class SlideContent:
    """One slide's words: title, visible text and speaker notes."""

    number: int  # 1-based
    title: str
    text: str
    notes: str


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ question with its answer."""

    question: str
    answer: str


@dataclass(frozen=True)
class DocumentContent:
    """An extra document's file name and cleaned text (Markdown headings kept)."""

    filename: str
    kind: str  # "md", "txt" or "pdf"
    text: str


@dataclass(frozen=True)
class DeckContent:
    """Everything a deck's bot may answer from, detached from the database."""

    deck_id: int
    title: str
    version: int
    slides: list[SlideContent] = field(default_factory=list)
    faq: list[FaqEntry] = field(default_factory=list)
    documents: list[DocumentContent] = field(default_factory=list)
    examples: list[FaqEntry] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A hash of the material, so an index built from other material is detected as stale."""
        data = asdict(self)
        data.pop("version")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
