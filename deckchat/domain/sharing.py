"""Share links: creation with access rules, resolution of a token to its state, revocation."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from ..extensions import db
from ..models import Deck, ShareLink, utcnow
from .notify import valid_webhook_url

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.I)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """Parse "30m", "12h", "7d" or "2w" into a timedelta; raise ValueError otherwise."""
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 12h, 7d or 2w)")
    return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})


def create_link(
    deck: Deck,
    *,
    password: str | None = None,
    expires_in: timedelta | None = None,
    expires_at: datetime | None = None,
    require_email: bool = False,
    allow_download: bool = False,
    label: str = "",
    webhook_url: str | None = None,
) -> ShareLink:
    """Create and store a share link for a deck (with an optional end-of-visit webhook URL)."""
    if webhook_url and not valid_webhook_url(webhook_url.strip()):
        raise ValueError("the webhook must be an http:// or https:// URL")
    link = ShareLink(
        deck=deck,
        label=label.strip()[:120],
        webhook_url=(webhook_url or "").strip() or None,
        require_email=require_email,
        allow_download=allow_download,
        expires_at=expires_at or (utcnow() + expires_in if expires_in else None),
    )
    link.set_password(password or None)
    db.session.add(link)
    db.session.commit()
    return link


def revoke_link(link: ShareLink) -> None:
    """Revoke a link for good; it then answers 410 Gone."""
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        db.session.commit()


def find_link(token: str) -> ShareLink | None:
    """The link with this token, if any (revoked and expired ones too)."""
    if not token or len(token) > 64:
        return None
    return db.session.execute(db.select(ShareLink).filter_by(token=token)).scalar_one_or_none()
