"""Typed SQLAlchemy models: owners, decks and their material, share links, visits and slide views."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db


def utcnow() -> datetime:
    """Timezone-naive UTC now, as stored in the database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_token(nbytes: int = 18) -> str:
    """An unguessable URL-safe token."""
    return secrets.token_urlsafe(nbytes)


class User(UserMixin, db.Model):
    """A presenter who owns decks."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decks: Mapped[list[Deck]] = relationship(back_populates="owner", cascade="all, delete-orphan")

    def set_password(self, password: str) -> None:
        """Store a salted hash of the password."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    @property
    def session_key(self) -> str:
        """Changes with the password: a log-in session carries it, so a new password ends every other session."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: the id and the session key (web/setup.py checks both)."""
        return f"{self.id}:{self.session_key}"


class Deck(db.Model):
    """An uploaded deck with its slides, notes, FAQ and documents."""

    __tablename__ = "decks"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    source_filename: Mapped[str] = mapped_column(String(255))
    source_kind: Mapped[str] = mapped_column(String(8))  # "pdf" or "pptx"
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)  # folder under instance/decks/
    slide_count: Mapped[int] = mapped_column(default=0)
    render_note: Mapped[str | None] = mapped_column(Text)  # why slide images are placeholders, if they are
    # Bumped whenever notes, FAQ, documents, examples or the slides change; the index records the version it was
    # built from.
    content_version: Mapped[int] = mapped_column(default=1)
    persona: Mapped[str | None] = mapped_column(Text)  # the bot's preamble; None: the default persona
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(back_populates="decks")
    slides: Mapped[list[Slide]] = relationship(
        back_populates="deck", order_by="Slide.number", cascade="all, delete-orphan"
    )
    documents: Mapped[list[Document]] = relationship(
        back_populates="deck", order_by="Document.id", cascade="all, delete-orphan"
    )
    faq_items: Mapped[list[FaqItem]] = relationship(
        back_populates="deck", order_by="FaqItem.position", cascade="all, delete-orphan"
    )
    examples: Mapped[list[ExampleQA]] = relationship(
        back_populates="deck", order_by="ExampleQA.id", cascade="all, delete-orphan"
    )
    links: Mapped[list[ShareLink]] = relationship(
        back_populates="deck", order_by="ShareLink.id.desc()", cascade="all, delete-orphan"
    )
    guardrails: Mapped[list[Guardrail]] = relationship(
        back_populates="deck", order_by="Guardrail.id", cascade="all, delete-orphan"
    )

    @property
    def notes_count(self) -> int:
        """How many slides have speaker notes."""
        return sum(1 for s in self.slides if s.notes.strip())

    @property
    def images_version(self) -> str:
        """Changes whenever the slides are replaced: image URLs carry it, so no browser shows a cached old slide."""
        return self.storage_key[:12]


class Slide(db.Model):
    """One slide: its extracted text, speaker notes and rendered images."""

    __tablename__ = "slides"
    __table_args__ = (UniqueConstraint("deck_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]  # 1-based
    title: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    deck: Mapped[Deck] = relationship(back_populates="slides")


class Document(db.Model):
    """An extra document (Markdown, text or PDF) whose text the bot may answer from."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))  # "md", "txt" or "pdf"
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deck: Mapped[Deck] = relationship(back_populates="documents")


class FaqItem(db.Model):
    """One question and answer of the deck's FAQ."""

    __tablename__ = "faq_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    deck: Mapped[Deck] = relationship(back_populates="faq_items")


class ExampleQA(db.Model):
    """A presenter's own example answer, used as a few-shot turn in the prompt."""

    __tablename__ = "example_qas"
    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    deck: Mapped[Deck] = relationship(back_populates="examples")


class ShareLink(db.Model):
    """A link through which investors open a deck, with its access rules."""

    __tablename__ = "share_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)
    label: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str | None] = mapped_column(String(256))
    expires_at: Mapped[datetime | None]
    require_email: Mapped[bool] = mapped_column(default=False)
    allow_download: Mapped[bool] = mapped_column(default=False)
    revoked_at: Mapped[datetime | None]
    webhook_url: Mapped[str | None] = mapped_column(String(500))  # called with a summary when a visit ends
    webhook_secret: Mapped[str | None] = mapped_column(String(64))  # signs each delivery (HMAC-SHA256)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deck: Mapped[Deck] = relationship(back_populates="links")
    visits: Mapped[list[Visit]] = relationship(back_populates="link", cascade="all, delete-orphan")

    def set_password(self, password: str | None) -> None:
        """Protect the link with a password, or remove protection with None."""
        self.password_hash = generate_password_hash(password) if password else None

    def set_webhook(self, url: str | None) -> None:
        """Point the end-of-visit webhook at a URL with a fresh signing secret, or remove it with None."""
        # A new secret for every new URL: a receiver that held the old one cannot sign for the new one.
        self.webhook_url = url or None
        self.webhook_secret = secrets.token_hex(32) if url else None

    def check_password(self, password: str) -> bool:
        """Whether the password opens this link."""
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def state(self, now: datetime | None = None) -> str:
        """"active", "revoked" or "expired"."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and (now or utcnow()) >= self.expires_at:
            return "expired"
        return "active"


class Visit(db.Model):
    """One opening of a share link by one browser."""

    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)  # what the browser reports to
    link_id: Mapped[int] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"), index=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    visitor_id: Mapped[str] = mapped_column(String(64), index=True)  # from a long-lived cookie
    email: Mapped[str | None] = mapped_column(String(254))
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[datetime | None]  # when the end-of-visit webhook was delivered
    notify_attempts: Mapped[int] = mapped_column(default=0, server_default="0")  # webhook deliveries tried
    notify_next_at: Mapped[datetime | None]  # no delivery before this: a sweeper's claim, or the retry back-off
    notify_error: Mapped[str | None] = mapped_column(String(300))  # why the last delivery failed
    link: Mapped[ShareLink] = relationship(back_populates="visits")
    views: Mapped[list[SlideView]] = relationship(back_populates="visit", cascade="all, delete-orphan")


class SlideView(db.Model):
    """One continuous stay on a slide during a visit, with the seconds it was actually visible.

    The browser reports the running total for a stay (on heartbeat, slide change and hide), so a
    repeated or reordered report can only raise the total to the largest value seen: nothing is
    counted twice and nothing sent is lost.
    """

    __tablename__ = "slide_views"
    __table_args__ = (
        UniqueConstraint("visit_id", "view_key"),
        Index("ix_slide_views_deck_slide", "deck_id", "slide"),
        # Covers the dashboard's fold of a deck's stays into (visit, slide) totals without touching the table.
        Index("ix_slide_views_deck_visit", "deck_id", "visit_id", "slide", "visible_ms"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"))
    view_key: Mapped[str] = mapped_column(String(64))
    slide: Mapped[int]
    visible_ms: Mapped[int] = mapped_column(default=0)
    events: Mapped[int] = mapped_column(default=1)  # reports received for this stay
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    visit: Mapped[Visit] = relationship(back_populates="views")


class Guardrail(db.Model):
    """A topic the deck's bot must not discuss, with the reply it gives instead."""

    __tablename__ = "guardrails"
    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    topic: Mapped[str] = mapped_column(String(300))
    reply: Mapped[str] = mapped_column(Text)
    deck: Mapped[Deck] = relationship(back_populates="guardrails")


class ChatExchange(db.Model):
    """One question and the bot's answer, with what it was grounded on and how fast it came."""

    __tablename__ = "chat_exchanges"
    __table_args__ = (Index("ix_chat_exchanges_deck_created", "deck_id", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    slide: Mapped[int | None]  # the slide on screen when the question was asked
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="")
    answerable: Mapped[bool] = mapped_column(default=True)
    kind: Mapped[str] = mapped_column(String(16), default="model")  # model, faq, guardrail, unknown, error
    sources: Mapped[list] = mapped_column(JSON, default=list)  # [{"source", "slide", "score", "passage"}]
    engine: Mapped[str] = mapped_column(String(40), default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    ttft_ms: Mapped[float | None]
    total_ms: Mapped[float | None]
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    feedback: Mapped[int | None]  # +1 thumbs up, -1 thumbs down
    gap_closed_at: Mapped[datetime | None]  # for unanswerable questions: when the owner answered them
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComparisonRun(db.Model):
    """One model comparison started from a deck's owner page: its settings, progress and report."""

    __tablename__ = "comparison_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, waiting, running, done, failed
    source: Mapped[str] = mapped_column(String(16), default="example")  # example or replay
    models: Mapped[list] = mapped_column(JSON, default=list)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)  # runs, load_format, confirmed memory notice
    progress: Mapped[dict] = mapped_column(JSON, default=dict)  # done, total, model, message
    error: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    beat_at: Mapped[datetime | None]  # the job's heartbeat: a stale one means the server restarted mid-run


class ComparisonVote(db.Model):
    """A blind ballot between two models' answers to one question; `winner` is empty until the owner votes."""

    __tablename__ = "comparison_votes"
    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparison_runs.id", ondelete="CASCADE"), index=True)
    question_index: Mapped[int]
    left_model: Mapped[str] = mapped_column(String(300))
    left_run: Mapped[int]
    right_model: Mapped[str] = mapped_column(String(300))
    right_run: Mapped[int]
    winner: Mapped[str | None] = mapped_column(String(8))  # left, right or tie
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    voted_at: Mapped[datetime | None]
