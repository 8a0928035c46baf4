"""`deckchat deck share/link/links`: share links from the command line."""
from __future__ import annotations

import click

from ..domain import sharing
from ..domain.analytics import iso
from ..models import utcnow
from .base import emit, fail
from .decks import deck, get_deck


@deck.command("share")
@click.argument("deck_id", type=int)
@click.option("--password")
@click.option("--expires-in", help="e.g. 30m, 12h, 7d, 2w")
@click.option("--require-email", is_flag=True)
@click.option("--allow-download", is_flag=True)
@click.option("--label", default="")
@click.option("--webhook", help="http(s) URL called with a signed summary when a visit ends (public hosts).")
@click.option("--json", "as_json", is_flag=True)
def deck_share(deck_id, password, expires_in, require_email, allow_download, label, webhook, as_json) -> None:
    """Create a share link for a deck."""
    target = get_deck(deck_id)
    try:
        expires = sharing.parse_duration(expires_in) if expires_in else None
    except ValueError as exc:
        fail(str(exc))
    try:
        link = sharing.create_link(target, password=password, expires_in=expires, require_email=require_email,
                                   allow_download=allow_download, label=label, webhook_url=webhook)
    except ValueError as exc:
        fail(str(exc))
    out = {"token": link.token, "url": f"/s/{link.token}"}
    text = out["url"]
    if link.webhook_secret:  # the receiver needs it to check each delivery's signature
        out["webhook_secret"] = link.webhook_secret
        text += f"\nwebhook secret: {link.webhook_secret}"
    emit(out, as_json, text)


@deck.command("link")
@click.argument("token")
@click.option("--label")
@click.option("--password", help="A new password (browsers that unlocked must unlock again).")
@click.option("--no-password", is_flag=True, help="Remove the password.")
@click.option("--expires-in", help="From now: e.g. 30m, 12h, 7d, 2w; or 'never'.")
@click.option("--require-email/--no-require-email", default=None)
@click.option("--allow-download/--no-allow-download", default=None)
@click.option("--webhook", help="A new webhook URL (it gets a new secret); '' removes the webhook.")
@click.option("--json", "as_json", is_flag=True)
def deck_link(token, label, password, no_password, expires_in, require_email, allow_download, webhook,
              as_json) -> None:
    """Change an active share link's rules (TOKEN from `deck share`); options left out stay as they are."""
    link = sharing.find_link(token)
    if link is None:
        fail(f"no link with token {token}")
    if password and no_password:
        fail("give --password or --no-password, not both")
    try:
        expires = sharing.KEEP if expires_in is None else None if expires_in == "never" else (
            utcnow() + sharing.parse_duration(expires_in))
        changes = sharing.update_link(
            link, label=label, password=None if no_password else password or sharing.KEEP, expires_at=expires,
            require_email=require_email, allow_download=allow_download,
            webhook_url=sharing.KEEP if webhook is None else webhook)
    except ValueError as exc:
        fail(str(exc))
    out = {"token": link.token, "changed": changes, "label": link.label, "password": bool(link.password_hash),
           "require_email": link.require_email, "allow_download": link.allow_download,
           "expires_at": iso(link.expires_at),
           "webhook_url": link.webhook_url}
    text = f"Link /s/{link.token}: " + (", ".join(changes) + " changed" if changes else "nothing changed")
    if "webhook" in changes:  # the receiver needs the new secret to check signatures
        out["webhook_secret"] = link.webhook_secret
        text += f"\nwebhook secret: {link.webhook_secret}"
    emit(out, as_json, text)


@deck.command("links")
@click.argument("deck_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def deck_links(deck_id, as_json) -> None:
    """A deck's share links, newest first: token, label, rules, state and visits."""
    target = get_deck(deck_id)
    links = [{"link_id": lk.id, "token": lk.token, "url": f"/s/{lk.token}", "label": lk.label, "state": lk.state(),
              "password": bool(lk.password_hash), "require_email": lk.require_email,
              "allow_download": lk.allow_download, "expires_at": iso(lk.expires_at),
              "webhook_url": lk.webhook_url, "visits": len(lk.visits)} for lk in target.links]
    emit({"deck_id": target.id, "links": links}, as_json, "\n".join(
        f"/s/{lk['token']}  {lk['state']:<8} {lk['visits']:>4} visits  {lk['label']}" for lk in links)
        or "No links yet: create one with `deckchat deck share`.")
