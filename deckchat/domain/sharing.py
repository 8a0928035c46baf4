"""Share links: creation with access rules, changes to them, resolution of a token to its state, revocation."""
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
    webhook_url = checked_webhook(webhook_url)
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


def _stored_url(url: str | None) -> str | None:
    """A webhook URL as stored: stripped, None when empty."""
    return (url or "").strip() or None


def checked_webhook(url: str | None) -> str | None:
    """A webhook URL as stored (stripped; None when empty); ValueError for one that is not http(s), or that
    points to a private or local address while WEBHOOK_ALLOW_PRIVATE is off."""
    url = _stored_url(url)
    if url and not valid_webhook_url(url):
        raise ValueError("the webhook must be an http:// or https:// URL")
    if url and not current_app.config.get("WEBHOOK_ALLOW_PRIVATE", False):
        refusal = private_target_error(url)
        if refusal:
            raise ValueError(refusal)
    return url


KEEP = object()  # `update_link`: leave this rule as it is


def update_link(
    link: ShareLink,
    *,
    label: str | None = None,
    password: object = KEEP,
    expires_at: object = KEEP,
    require_email: bool | None = None,
    allow_download: bool | None = None,
    webhook_url: object = KEEP,
) -> list[str]:
    """Change an active link's rules; return the names of those that changed. KEEP (the default) leaves a rule
    as it is, and so does None for `label`, `require_email` and `allow_download`.

    `password`: a string sets it (browsers that unlocked with the old one must unlock again), None removes it.
    `expires_at`: a time, or None for never. `webhook_url`: None or "" removes it; a new URL gets a new secret.
    Raises ValueError for a revoked or expired link, a past expiry or a webhook `checked_webhook` refuses;
    nothing is stored then.
    """
    if link.state() != "active":
        raise ValueError(f"this link is {link.state()}; create a new one instead")
    changes: list[str] = []
    # The edit form sends the current webhook back unchanged: it is not checked again (each delivery checks the
    # address anyway), so a receiver's DNS hiccup cannot stop the owner from changing the label or the expiry.
    unchanged = webhook_url is not KEEP and _stored_url(webhook_url) == link.webhook_url
    url = KEEP if webhook_url is KEEP or unchanged else checked_webhook(webhook_url)
    if expires_at is not KEEP and expires_at is not None and expires_at <= utcnow():
        raise ValueError("the new expiry is in the past")
    if label is not None and label.strip()[:120] != link.label:
        link.label = label.strip()[:120]
        changes.append("label")
    if password is not KEEP and (password or link.password_hash):
        link.set_password(password or None)
        changes.append("password" if password else "password removed")
    if expires_at is not KEEP and expires_at != link.expires_at:
        link.expires_at = expires_at
        changes.append("expiry")
    for name, value in (("require_email", require_email), ("allow_download", allow_download)):
        if value is not None and bool(value) != getattr(link, name):
            setattr(link, name, bool(value))
            changes.append(name.replace("_", " "))
    if url is not KEEP and url != link.webhook_url:
        link.set_webhook(url)
        changes.append("webhook" if url else "webhook removed")
    db.session.commit()
    return changes


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
