"""Share links: creation with access rules, resolution of a token to its state, revocation."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import current_app

from ..extensions import db
from ..models import Deck, ShareLink, utcnow
from .notify import private_target_error, valid_webhook_url

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
    """Create and store a share link for a deck (with an optional end-of-visit webhook URL and its secret).

    Raises ValueError for a webhook URL that is not http(s), or that points to a private or local address
    while WEBHOOK_ALLOW_PRIVATE is off (the server must not be made to call its own network).
    """
    webhook_url = (webhook_url or "").strip() or None
    if webhook_url and not valid_webhook_url(webhook_url):
        raise ValueError("the webhook must be an http:// or https:// URL")
    if webhook_url and not current_app.config.get("WEBHOOK_ALLOW_PRIVATE", False):
        refusal = private_target_error(webhook_url)
        if refusal:
            raise ValueError(refusal)
    link = ShareLink(
        deck=deck,
        label=label.strip()[:120],
        require_email=require_email,
        allow_download=allow_download,
        expires_at=expires_at or (utcnow() + expires_in if expires_in else None),
    )
    link.set_password(password or None)
    link.set_webhook(webhook_url)
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
