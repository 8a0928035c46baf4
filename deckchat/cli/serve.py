"""`deckchat serve` (gunicorn with deckchat/gunicorn_conf.py) and `deckchat backup` (SQLite online backup)."""
from __future__ import annotations

import os
import sqlite3
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click
from flask import current_app

from ..extensions import db
from ..serving import plan_serving, secret_key_problem
from .base import emit, fail, main


def _key_is_configured() -> bool:
    """Whether the secret key came from the environment or instance/config.py, not the generated file."""
    generated = Path(current_app.instance_path) / "secret_key"
    return not generated.exists() or generated.read_text().strip() != current_app.config["SECRET_KEY"]


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", type=int, help="Default 1; one per core with Redis rate limits, remote model.")
@click.option("--threads", type=int, help="Threads per worker (default 16; a streamed answer holds one).")
@click.option("--grace", type=int, help="Seconds open answers may take to finish after SIGTERM (default 30).")
@click.option("--dry-run", is_flag=True, help="Print the plan and exit without serving.")
@click.option("--json", "as_json", is_flag=True)
def serve_cmd(host, port, workers, threads, grace, dry_run, as_json) -> None:
    """Serve the app with gunicorn: one worker that owns the model (hf), or several (openai, extractive)."""
    env = dict(os.environ)  # the workers' environment; this process's own stays as it was
    env["DECKCHAT_INSTANCE_PATH"] = current_app.instance_path
    env["DECKCHAT_BIND"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for name, value in (("DECKCHAT_WORKERS", workers), ("DECKCHAT_THREADS", threads),
                        ("DECKCHAT_GRACE_SECONDS", grace)):
        if value is not None:
            env[name] = str(value)
    # The workers read the engine from the app's config too (instance/config.py may set it).
    env.setdefault("DECKCHAT_ENGINE", current_app.config.get("ENGINE") or "extractive")
    try:
        plan = plan_serving(env)
    except ValueError as exc:
        fail(str(exc))
    problem = secret_key_problem(current_app.config["SQLALCHEMY_DATABASE_URI"], _key_is_configured())
    if problem:
        fail(problem)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if dry_run:
        emit({**asdict(plan), "bind": env["DECKCHAT_BIND"]}, as_json)
        return
    db.engine.dispose()  # no connection of this process may leak into the workers
    args = [sys.executable, "-m", "gunicorn", "--config", "python:deckchat.gunicorn_conf",
            "deckchat.wsgi:app"]
    os.execve(sys.executable, args, env)


@main.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def backup_cmd(dest: Path, as_json: bool) -> None:
    """Copy the SQLite database to DEST while the server keeps running (PostgreSQL: use pg_dump)."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite":
        fail("the database is PostgreSQL: back it up with pg_dump -Fc (see the README's Deployment section)")
    if dest.exists():
        fail(f"{dest} exists; choose a new file name")
    started = time.perf_counter()
    source = sqlite3.connect(url.database)
    target = sqlite3.connect(dest)
    try:
        # SQLite's online backup API: a consistent snapshot, while WAL lets writers carry on meanwhile.
        source.backup(target)
        check = target.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        target.close()
        source.close()
    if check != "ok":
        fail(f"the backup failed its integrity check: {check}")
    seconds = round(time.perf_counter() - started, 3)
    emit({"backup": str(dest), "bytes": dest.stat().st_size, "seconds": seconds}, as_json,
         f"Backed up the database to {dest}")
