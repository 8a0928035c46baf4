"""`deckchat init`, `user create/password`, `deck import/list/replace/rename/delete` and `demo` (links: links.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask_migrate import upgrade

from ..domain import sharing
from ..domain.accounts import AccountError, create_user, find_user, set_new_password
from ..domain.analytics import iso
from ..domain.decks import (
    ImportLimits,
    delete_deck,
    import_deck,
    read_document,
    read_text_upload,
    rename_deck,
    replace_slides,
)
from ..domain.ingest import UploadError
from ..extensions import db
from ..ml.indexing import drop_index, reindex
from ..ml.runtime import describe_engine
from ..models import Deck
from .base import emit, fail, main


@main.command("init")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def init_cmd(as_json: bool) -> None:
    """Create the instance folder and bring the database schema to the latest migration."""
    upgrade()
    emit({"instance_path": current_app.instance_path, "database": db.engine.url.render_as_string(hide_password=True)},
         as_json, f"Database ready in {current_app.instance_path}")


@main.group()
def user() -> None:
    """Owner accounts."""


@user.command("create")
@click.argument("email")
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--json", "as_json", is_flag=True)
def user_create(email: str, password: str, as_json: bool) -> None:
    """Create an owner account."""
    try:
        new = create_user(email, password)
    except AccountError as exc:
        fail(str(exc))
    emit({"user_id": new.id, "email": new.email}, as_json, f"Created {new.email}")


@user.command("password")
@click.argument("email")
@click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True,
              help="At least 8 characters (asked for when left out).")
@click.option("--json", "as_json", is_flag=True)
def user_password(email: str, password: str, as_json: bool) -> None:
    """Set a new password for an owner (one who forgot theirs); their sessions end."""
    owner = find_user(email)
    if owner is None:
        fail(f"no owner with email {email}")
    try:
        set_new_password(owner, password)
    except AccountError as exc:
        fail(str(exc))
    emit({"user_id": owner.id, "email": owner.email}, as_json, f"New password set for {owner.email}")


@main.group()
def deck() -> None:
    """Decks: import, list, share, new versions, delete."""


def _read_text(path: Path | None, label: str, field: str) -> str | None:
    """Text of an optional file given on the command line."""
    return read_text_upload(path.read_bytes(), label, field) if path else None


@deck.command("import")
@click.argument("slides_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--owner", required=True, help="Owner email.")
@click.option("--title")
@click.option("--notes", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Markdown, '## Slide N'.")
@click.option("--faq", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Markdown, '##' per question.")
@click.option("--doc", "docs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-index", is_flag=True, help="Skip building the chat index.")
@click.option("--json", "as_json", is_flag=True)
def deck_import(slides_file, owner, title, notes, faq, docs, no_index, as_json) -> None:
    """Import a PDF or PPTX deck with optional notes, FAQ and documents."""
    owner_user = find_user(owner)
    if owner_user is None:
        fail(f"no owner with email {owner}; create one with `deckchat user create`")
    try:
        documents = [read_document(p.name, p) for p in docs]
        new, warnings = import_deck(
            owner=owner_user, instance_path=current_app.instance_path, slides_path=slides_file,
            filename=slides_file.name, title=title, notes_md=_read_text(notes, "speaker notes", "notes"),
            faq_md=_read_text(faq, "FAQ", "faq"), documents=documents, limits=ImportLimits.from_config(current_app.config),
        )
    except UploadError as exc:
        fail(str(exc))
    if not no_index:
        warnings += reindex(new.id, current_app.instance_path, current_app.config["EMBED_MODEL"], progress=True)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    emit({"deck_id": new.id, "title": new.title, "slides": new.slide_count, "notes": new.notes_count}, as_json,
         f"Imported deck {new.id} “{new.title}”: {new.slide_count} slides, notes on {new.notes_count}")


@deck.command("list")
@click.option("--owner", help="Only this owner's decks (email).")
@click.option("--json", "as_json", is_flag=True)
def deck_list(owner, as_json) -> None:
    """Every deck (or one owner's), newest first, with its slides and links."""
    query = db.select(Deck).order_by(Deck.created_at.desc(), Deck.id.desc())
    if owner:
        found = find_user(owner)
        if found is None:
            fail(f"no owner with email {owner}")
        query = query.where(Deck.owner_id == found.id)
    decks = [{"deck_id": d.id, "title": d.title, "owner": d.owner.email, "slides": d.slide_count,
              "links": len(d.links), "active_links": sum(1 for lk in d.links if lk.state() == "active"),
              "created_at": iso(d.created_at)} for d in db.session.scalars(query)]
    emit({"decks": decks}, as_json, "\n".join(
        f"{d['deck_id']:>5}  {d['title']}  ({d['slides']} slides, {d['active_links']} active links, {d['owner']})"
        for d in decks) or "No decks yet.")


@deck.command("delete")
@click.argument("deck_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
def deck_delete(deck_id, yes, as_json) -> None:
    """Delete a deck with its files, links, visits, chat log and index."""
    target = get_deck(deck_id)
    title = target.title
    if not yes:
        if not sys.stdin.isatty():
            fail("nothing deleted: add --yes to delete without being asked")
        if not click.confirm(f"Delete “{title}”, its links and all visits?", err=True):
            fail("nothing deleted")
    drop_index(target.id, current_app.instance_path)
    delete_deck(target, current_app.instance_path)
    emit({"deck_id": deck_id, "deleted": True}, as_json, f"Deleted deck {deck_id} “{title}”")


def get_deck(deck_id: int) -> Deck:
    """The deck or a clean CLI error."""
    found = db.session.get(Deck, deck_id)
    if found is None:
        fail(f"no deck with id {deck_id}")
    return found


@deck.command("replace")
@click.argument("deck_id", type=int)
@click.argument("slides_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--notes", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Markdown, '## Slide N'.")
@click.option("--no-index", is_flag=True, help="Skip rebuilding the chat index (the next question rebuilds it).")
@click.option("--json", "as_json", is_flag=True)
def deck_replace(deck_id, slides_file, notes, no_index, as_json) -> None:
    """Put a new version of a deck's slides (PDF or PPTX) in place; links, FAQ, documents and analytics stay."""
    target = get_deck(deck_id)
    before = target.slide_count
    try:
        warnings = replace_slides(target, instance_path=current_app.instance_path, slides_path=slides_file,
                                  filename=slides_file.name, notes_md=_read_text(notes, "speaker notes", "notes"),
                                  limits=ImportLimits.from_config(current_app.config))
    except UploadError as exc:
        fail(str(exc))
    if not no_index:
        warnings += reindex(target.id, current_app.instance_path, current_app.config["EMBED_MODEL"], progress=True)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    emit({"deck_id": target.id, "slides": target.slide_count, "previous_slides": before,
          "notes": target.notes_count, "source_filename": target.source_filename}, as_json,
         f"Deck {target.id} now has {target.slide_count} slides from {target.source_filename} (was {before}), "
         f"notes on {target.notes_count}")


@deck.command("rename")
@click.argument("deck_id", type=int)
@click.argument("title")
@click.option("--json", "as_json", is_flag=True)
def deck_rename(deck_id: int, title: str, as_json: bool) -> None:
    """Give a deck a new title (1 to 200 characters; surrounding spaces are dropped)."""
    target = get_deck(deck_id)
    old = target.title
    try:
        changed = rename_deck(target, title)
    except ValueError as exc:
        fail(str(exc))
    warnings: list[str] = []
    if changed:
        from ..ml.index import read_manifest  # noqa: PLC0415
        from ..ml.indexing import index_root  # noqa: PLC0415

        if read_manifest(target.id, index_root(current_app.instance_path)) is not None:  # its fingerprint has the title
            warnings = reindex(target.id, current_app.instance_path, current_app.config["EMBED_MODEL"])
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    emit({"deck_id": target.id, "title": target.title, "previous_title": old, "changed": changed}, as_json,
         f"Renamed deck {target.id} to “{target.title}”" if changed else f"Deck {target.id} is already “{old}”")


@main.command("demo")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
@click.option("--serve/--no-serve", default=None,
              help="Start the server afterwards (the default, except with --json, which prints one object and exits).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def demo_cmd(ctx: click.Context, host: str, port: int, serve: bool | None, as_json: bool) -> None:
    """Prepare the demo (database, an owner, the demo deck, a share link), print how to open it, then serve it."""
    import secrets  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from ..domain import demo  # noqa: PLC0415

    upgrade()
    email = "demo@deckchat.local"
    password = secrets.token_urlsafe(9)
    owner = find_user(email) or create_user(email, password)
    owner.set_password(password)  # a fresh password each run, printed below
    db.session.commit()
    existing = db.session.scalar(db.select(Deck).filter_by(owner_id=owner.id, title=demo.TITLE))
    warnings: list[str] = []
    if existing is None:
        with tempfile.TemporaryDirectory() as tmp:
            files = demo.write_demo_files(Path(tmp))
            try:
                existing, warnings = import_deck(
                    owner=owner, instance_path=current_app.instance_path, slides_path=files["slides"],
                    filename=files["slides"].name, title=demo.TITLE, faq_md=files["faq"].read_text(),
                    documents=[read_document(files["doc"].name, files["doc"])],
                    limits=ImportLimits.from_config(current_app.config),
                )
            except UploadError as exc:
                fail(str(exc))
        warnings += reindex(existing.id, current_app.instance_path, current_app.config["EMBED_MODEL"], progress=True)
    link = next((lk for lk in existing.links if lk.label == "demo" and lk.state() == "active"), None) \
        or sharing.create_link(existing, label="demo")
    base = f"http://{host}:{port}"
    info = {"url": f"{base}/login", "email": email, "password": password, "deck_id": existing.id,
            "share_url": f"{base}/s/{link.token}", "chat_engine": describe_engine(current_app.config),
            "warnings": warnings}
    if serve is None:
        serve = not as_json  # a script that asked for JSON reads one object and goes on
    emit(info, as_json, "\n".join([
        "Deck Chat demo is ready.",
        f"  Owner login:  {info['url']}  email {email}  password {password}",
        f"  Share link:   {info['share_url']}",
        f"  Chat engine:  {info['chat_engine']}",
        *[f"  Note: {w}" for w in warnings],
        "Starting the server (Ctrl+C stops it)..." if serve else
        f"Start the server with: python -m deckchat serve --host {host} --port {port}",
    ]))
    if serve:
        from .serve import serve_cmd  # noqa: PLC0415

        sys.stdout.flush()
        ctx.invoke(serve_cmd, host=host, port=port)
