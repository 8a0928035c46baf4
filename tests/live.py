"""A real `deckchat serve` (gunicorn) on a free loopback port, over a prepared instance folder."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """Prepare an instance with the CLI, serve it with gunicorn, stop it on exit."""

    def __init__(self, instance: Path, env: dict[str, str] | None = None):
        self.instance = instance
        self.env = {**os.environ, "DECKCHAT_INSTANCE_PATH": str(instance), "HF_HUB_OFFLINE": "1",
                    "DECKCHAT_TRACK_RATE_LIMIT": "100000 per minute", **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> dict:
        """Run `deckchat ARGS --json` against the instance and return its JSON."""
        out = subprocess.run([sys.executable, "-m", "deckchat", *args, "--json"], env=self.env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def __enter__(self) -> LiveServer:
        self.cli("init")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deckchat", "serve", "--port", str(self.port), "--threads", "8"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.instance / "server.log", "w"),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/login", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.instance / "server.log").read_text())
                time.sleep(0.2)
        raise RuntimeError("server did not start in 60 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
