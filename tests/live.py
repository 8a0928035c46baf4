"""A real `deckchat serve` (gunicorn) on a free loopback port, over a prepared instance folder.

With DECKCHAT_TEST_DATABASE_URL set, the server uses that PostgreSQL database (emptied first, unless
`reset_database=False` lets a second server join the first one's database).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_url() -> str | None:
    """The PostgreSQL URL the suite runs against, or None for SQLite in each instance folder."""
    return os.environ.get("DECKCHAT_TEST_DATABASE_URL") or None


def reset_postgres(url: str) -> None:
    """Empty the PostgreSQL database's public schema."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        engine.dispose()


class LiveServer:
    """Prepare an instance with the CLI, serve it with gunicorn, stop it on exit."""

    def __init__(self, instance: Path, env: dict[str, str] | None = None, *, serve_args: tuple[str, ...] = (),
                 database_url: str | None = None, reset_database: bool = True, wait_for: str = "/healthz"):
        self.instance = instance
        self.database_url = database_url or postgres_url()
        base = {"DECKCHAT_INSTANCE_PATH": str(instance), "HF_HUB_OFFLINE": "1",
                "DECKCHAT_TRACK_RATE_LIMIT": "100000 per minute", "DECKCHAT_LOG_FORMAT": "json"}
        if self.database_url:
            # A shared database means a shared secret key (`deckchat serve` refuses to start without one).
            base.update(DATABASE_URL=self.database_url, DECKCHAT_SECRET_KEY="live-test-secret")
        self.env = {**os.environ, **base, **(env or {})}
        self.serve_args, self.reset_database, self.wait_for = serve_args, reset_database, wait_for
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = instance / "server.log"
        self.proc: subprocess.Popen | None = None
        self._initialised = False

    def cli(self, *args: str) -> dict:
        """Run `deckchat ARGS --json` against the instance and return its JSON."""
        out = subprocess.run([sys.executable, "-m", "deckchat", *args, "--json"], env=self.env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def query(self, sql: str, **params) -> list:
        """Rows of a SQL query on the server's database (SQLite file or PostgreSQL)."""
        engine = create_engine(self.database_url or f"sqlite:///{self.instance / 'deckchat.db'}")
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).all()
        finally:
            engine.dispose()

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        return self.log_path.read_text() if self.log_path.exists() else ""

    def init(self) -> LiveServer:
        """Create the instance folder and the schema (once), so the CLI can prepare data before serving."""
        if not self._initialised:
            self.instance.mkdir(parents=True, exist_ok=True)
            if self.database_url and self.reset_database:
                reset_postgres(self.database_url)
            self.cli("init")
            self._initialised = True
        return self

    def start(self) -> LiveServer:
        """Start gunicorn and wait until `wait_for` answers 200."""
        self.init()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deckchat", "serve", "--port", str(self.port), "--threads", "8",
             *self.serve_args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"),
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + self.wait_for, timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.log()) from None
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer {self.wait_for} in 120 s:\n{self.log()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Send `sig` to gunicorn's master and wait for it to exit; returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
